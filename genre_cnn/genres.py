"""Genre names as people write them: one normal form for comparing, the usual spellings for writing, and a
user's own mapping.

    from genre_cnn.genres import display, load_mapping, normalise, same
    normalise("Hip Hop") == normalise("hip-hop") == "hiphop"
    display("hiphop")                                    # "Hip-Hop", the spelling of the ID3v1 genre list
    display("hiphop", load_mapping(Path("genres.txt")))  # the user's own spelling, e.g. "Rap"
    same(["Jazz"], ["jazz"])                             # True: only case or punctuation differs

A genre differs from another only if its normal form does: case, accents, spaces, hyphens and other punctuation
do not count ("Hip-Hop", "hip hop", "HipHop" and "hiphop" are one genre). The model's class names (GTZAN's
`hiphop`, `jazz`...) are written as the ID3v1 genre list spells them (Blues, Classical, Country, Disco,
Hip-Hop, Jazz, Metal, Pop, Reggae, Rock), the spellings most music libraries already hold; any other name is
written as given. A mapping file changes that, one `name: spelling` per line (`#` starts a comment), the name
in any case or punctuation, in the way beets' lastgenre plugin canonicalises genres:

    # genre-cnn genre spellings
    hiphop: Hip Hop
    classical: Classical Music
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from genre_cnn.errors import GenreCnnError

# the usual spelling of each GTZAN class, from the ID3v1 genre list
SPELLINGS = ("Blues", "Classical", "Country", "Disco", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock")


class GenreMapError(GenreCnnError):
    """A genre mapping file that cannot be read; the message is one line naming the file (and line)."""

    exit_code = 2


def normalise(name: str) -> str:
    """The form in which two spellings of one genre are equal: letters and digits only, case and accents
    folded ("Hip-Hop" -> "hiphop", "Música Latina" -> "musicalatina")."""
    decomposed = unicodedata.normalize("NFKD", str(name).casefold())
    return "".join(c for c in decomposed if c.isalnum())


def display(name: str, mapping: dict[str, str] | None = None) -> str:
    """How `name` is written into tags: the mapping's spelling if it has one, else the usual spelling of a
    known genre, else `name` itself."""
    key = normalise(name)
    if mapping and key in mapping:
        return mapping[key]
    return _usual().get(key, name)


@functools.cache
def _usual() -> dict[str, str]:
    return {normalise(s): s for s in SPELLINGS}


def same(a: list[str], b: list[str]) -> bool:
    """Whether two lists of genres name the same genres in the same order, spelling aside."""
    return [normalise(g) for g in a] == [normalise(g) for g in b]


def load_mapping(path: Path) -> dict[str, str]:
    """{normal form: spelling} from a mapping file (see the module docstring). Raises GenreMapError."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise GenreMapError(f"{path}: the genre mapping cannot be read "
                            f"({getattr(err, 'strerror', None) or err})") from None
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, spelling = line.partition(":")
        if not colon or not normalise(name) or not spelling.strip():
            raise GenreMapError(f"{path}, line {number}: expected `name: spelling`, got {line[:60]!r}")
        mapping[normalise(name)] = spelling.strip()
    return mapping

