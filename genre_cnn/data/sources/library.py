"""Your own music as a dataset: each file labelled by the genre in its tags, split so that an artist's tracks (and
an album's) are all on one side.

    python -m genre_cnn.data.sources Library ~/Music          # its genres and track counts, and what was left out
    python train.py --config configs/library.yaml --data.source.data_dir ~/Music    # a personal model of its genres

Every audio file under `data_dir` (sub-folders included) is read once, read-only (genre_cnn.data.tagged: the genre
field `genre-cnn tag` writes, in every format it writes, with the artist, album and a digest of the audio), then
again only where a file changed. A file's label is its genre after these rules, in order:
- names that differ only in case, accents, spaces or punctuation are one genre (`Hip Hop` = `Hip-Hop` = `hiphop`;
  genre_cnn.genres), spelt as the ID3v1 list spells it if it is one of GTZAN's, else as most of the files spell it;
- `mapping`, a file of `name: genre` lines (genre_cnn.genres.load_mapping), renames genres and merges several into
  one (`Blues: Jazz & Blues` and `Jazz: Jazz & Blues`); `name: -` says a name is no genre (`Other: -`);
- a file naming several genres (a field's values, or one value joined by `;` or `,`) takes the first of them after
  mapping (`multi: first`), or is left out (`multi: drop`); files without a genre are left out, and counted;
- two files with the same audio (a digest of it without the tags) are one track: the first, by path, is kept;
- a genre with fewer than `min_tracks` tracks is left out, one line each.
A track's artist is its artist tag, else its album artist; a file with neither is grouped with the other files of
its folder (said once). Tracks of one artist, and of one album (its title with its album artist, or its folder), are
one group: `groups()` gives the groups that cross-fitting deals into folds (configs/library.yaml), and the dataset's
own split (the default) puts a fifth of the groups in test and a fifth in validation. A clip's key is its genre and
its path below `data_dir`; its features are cached by its audio's digest (`Clip.content`), so a moved, renamed or
retagged file is not computed again. `tracks` takes a CSV of tracks instead (`path,genre,artist,album`, what
`beet genrecnn --learn` writes), whose genres replace the files' own.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from genre_cnn.audio.decode import DECODE_EXTENSIONS
from genre_cnn.bounds import out_of
from genre_cnn.data.layout import Clip, DataError, csv_rows, warn_once
from genre_cnn.data.sources import Source
from genre_cnn.data.splits import deal_groups
from genre_cnn.data.tagged import TagIndex, Track, UnreadableTags, split_genres
from genre_cnn.errors import SettingsError
from genre_cnn.genres import SPELLINGS, display, load_mapping, normalise
from genre_cnn.paths import resolve

MAX_NAME = 100  # characters of a genre name a checkpoint holds


@dataclass
class Listing:
    """What a library holds: its clips, each clip's group, and what was left out and why (lines for the report)."""

    clips: list[Clip] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # clip key -> group id
    artists: dict[str, str] = field(default_factory=dict)  # group id -> its most common artist (or folder)
    dropped: dict[str, int] = field(default_factory=dict)  # genre left out -> its track count
    notes: list[str] = field(default_factory=list)


class Library(Source):
    """Args:
    data_dir: the folder of your tagged music, or a list of folders (sub-folders are searched).
    tracks: a CSV file of tracks instead (columns `path`, `genre`, and `artist`, `album` if known; several genres
        joined by `;`): its genres replace the files' own, e.g. what `beet genrecnn --learn` writes.
    mapping: a file of `name: genre` lines that rename and merge genres (`name: -`: not a genre).
    min_tracks: genres with fewer tracks are left out.
    multi: a file naming several genres after mapping: "first" takes the first, "drop" leaves it out.
    title: how the model names what it was trained on (default: the library's folder).
    """

    name = "library"
    has_official_split = True

    def __init__(self, data_dir: str | list[str] | None = None, tracks: str | None = None, mapping: str | None = None,
                 min_tracks: int = 10, multi: Literal["first", "drop"] = "first", title: str | None = None):
        if (data_dir is None) == (tracks is None):
            raise SettingsError("--data.source Library: give --data.source.data_dir (a folder of tagged music) or "
                                "--data.source.tracks (a CSV of tracks), not both")
        self.data_dirs = [resolve(d) for d in ([] if data_dir is None else [data_dir] if isinstance(data_dir, str)
                                               else data_dir)]
        self.tracks = resolve(tracks) if tracks is not None else None
        if why := out_of(min_tracks, 1, 10**6):
            raise SettingsError(f"--data.source.min_tracks {why}")
        if multi not in ("first", "drop"):
            raise SettingsError(f"--data.source.multi must be first or drop, got {multi!r}")
        self.mapping_file = resolve(mapping) if mapping else None
        self.min_tracks, self.multi, self.title = min_tracks, multi, title
        super().__init__(self.tracks.parent if self.tracks else self.data_dirs[0] if self.data_dirs else Path("."))

    @functools.cached_property
    def mapping(self) -> dict[str, str]:
        """The mapping file's {normal form: genre}, empty without one; GenreMapError for a bad file."""
        return load_mapping(self.mapping_file) if self.mapping_file else {}

    def genre_of(self, name: str) -> str | None:
        """The normal form of the genre `name` stands for after the mapping, or None if it is no genre."""
        mapped = self.mapping.get(normalise(name), name)
        return None if mapped.strip() == "-" else normalise(mapped) or None

    def ensure(self) -> None:
        for folder in self.data_dirs:
            if not folder.is_dir():
                raise DataError(f"--data.source.data_dir {folder}: no such folder")
        if self.tracks is not None and not self.tracks.is_file():
            raise DataError(f"--data.source.tracks {self.tracks}: no such file")
        if len(self.genres()) < 2:
            raise DataError(f"{self.describe()}: fewer than 2 genres with at least {self.min_tracks} tracks "
                            f"(--data.source.min_tracks): {', '.join(self.genres()) or 'none'}; tag more files")

    def genres(self) -> list[str]:
        return sorted({c.genre for c in self.listing.clips}, key=str.casefold)

    def clips(self) -> list[Clip]:
        return self.listing.clips

    def groups(self) -> dict[str, str]:
        return self.listing.groups

    def official_split(self) -> dict[str, list[str]]:
        """A fifth of the groups (artists, albums) for test, a fifth for validation, the rest for training."""
        keys, genres = [c.key for c in self.clips()], self.genres()
        folds = deal_groups(keys, [genres.index(c.genre) for c in self.clips()], self.groups(), 5)
        return {"train": sorted(sum(folds[2:], [])), "val": folds[1], "test": folds[0]}

    def cache_source(self) -> str:
        return "library"  # features are filed by their audio's digest: every library and list shares them

    def describe(self) -> str:
        where = " + ".join(str(d) for d in self.data_dirs) if self.data_dirs else str(self.tracks)
        return self.title or f"the library {where}"

    def _files(self) -> list[tuple[Path, str, os.stat_result]]:
        """(file, its name in clip keys, its stat) of every audio file of the library, sorted by name."""
        found = []
        for folder in self.data_dirs:
            prefix = f"{folder.name}/" if len(self.data_dirs) > 1 else ""
            for top, dirs, names in os.walk(folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in names:
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in DECODE_EXTENSIONS:
                        path = Path(top) / name
                        try:
                            found.append((path, prefix + path.relative_to(folder).as_posix(), path.stat()))
                        except OSError:
                            continue  # gone, or a broken link
        return sorted(found, key=lambda item: item[1])

    def _listed(self) -> list[tuple[Path, str, dict]]:
        """(file, name, {genres, artist, album}) of every row of the tracks CSV whose file exists."""
        rows = csv_rows(self.tracks, "tracks")
        found, missing = [], 0
        for row in rows:
            path = (self.data_dir / (row.get("path") or "").strip()).absolute()
            if not path.is_file():
                missing += 1
                continue
            found.append((path, path.relative_to(path.anchor).as_posix(),
                          {"genres": split_genres([row.get("genre") or ""]),
                           "artist": (row.get("artist") or "").strip(), "album": (row.get("album") or "").strip()}))
        if missing:
            warn_once(f"{self.tracks}: {missing} listed file(s) not found: left out")
        return sorted(found, key=lambda item: item[1])

    def _read(self) -> tuple[list[tuple[Path, str, Track]], list[str]]:
        """(file, name, what it says) of every readable file, and one line per kind of file left out."""
        index, tracks, unreadable = TagIndex.load(), [], []
        listed = ([(p, n, p.stat(), given) for p, n, given in self._listed()] if self.tracks
                  else [(p, n, st, None) for p, n, st in self._files()])
        for path, name, st, given in listed:
            try:
                track = index.read(path, st)
            except UnreadableTags as err:
                unreadable.append(str(err))
                continue
            if given is not None:  # the list's genres, artist and album, the file's audio
                track = Track(given["genres"], given["artist"], given["album"], "", track.content)
            tracks.append((path, name, track))
        index.save()
        notes = [f"{len(unreadable)} file(s) whose tags cannot be read, e.g. {unreadable[0]}"] if unreadable else []
        if not listed:
            raise DataError(f"{self.describe()}: no audio files found")
        return tracks, notes

    @functools.cached_property
    def listing(self) -> Listing:
        """The library as the rules of the module docstring make it; read once per process."""
        tracks, notes = self._read()
        untagged = multi = duplicates = 0
        labelled, contents = [], set()
        spellings: dict[str, Counter] = {}
        for path, name, track in tracks:
            chosen = list(dict.fromkeys(g for g in map(self.genre_of, track.genres) if g))  # normal forms, in order
            if not chosen:
                untagged += 1
                continue
            if len(chosen) > 1:
                multi += 1
                if self.multi == "drop":
                    continue
            if track.content in contents:
                duplicates += 1
                continue
            contents.add(track.content)
            for given in track.genres:
                if self.genre_of(given) == chosen[0]:
                    spellings.setdefault(chosen[0], Counter())[self.mapping.get(normalise(given), given)] += 1
            labelled.append((path, name, track, chosen[0]))
        spelt = {genre: self._spelling(genre, counts) for genre, counts in spellings.items()}
        counts = Counter(genre for *_, genre in labelled)
        listing = Listing()
        for genre, n in sorted(counts.items(), key=lambda item: spelt[item[0]].casefold()):
            if n < self.min_tracks or len(spelt[genre]) > MAX_NAME:
                listing.dropped[spelt[genre]] = n
                why = (f"fewer than --data.source.min_tracks {self.min_tracks}" if n < self.min_tracks
                       else f"a name longer than {MAX_NAME} characters")
                warn_once(f"{self.describe()}: genre {spelt[genre]!r} left out: {n} track(s), {why}")
        kept = [(p, n, t, spelt[g]) for p, n, t, g in labelled if spelt[g] not in listing.dropped]
        listing.clips = [Clip(p, genre, n, t.content) for p, n, t, genre in kept]
        listing.groups, listing.artists, by_folder = _groups([(clip.key, clip.path, track) for clip, (_, _, track, _)
                                                              in zip(listing.clips, kept)])
        lines = [(untagged, "file(s) without a genre (after the mapping): left out"),
                 (multi, "file(s) naming several genres: " + ("the first taken" if self.multi == "first"
                                                              else "left out (--data.source.multi drop)")),
                 (duplicates, "file(s) with the same audio as another file: left out"),
                 (by_folder, "track(s) without an artist tag: grouped with the other files of their folder")]
        listing.notes = notes + [f"{n} {what}" for n, what in lines if n]
        for note in listing.notes:
            warn_once(f"{self.describe()}: {note}")
        return listing

    def _spelling(self, genre: str, counts: Counter) -> str:
        """How a genre is written: the mapping's spelling, else the usual spelling of a GTZAN genre, else the one
        most of its files use (ties: the first in sorted order)."""
        mapped = [s for s in self.mapping.values() if normalise(s) == genre]
        if mapped:
            name = mapped[0]
        elif genre in {normalise(s) for s in SPELLINGS}:
            name = display(genre)
        else:
            name = min(counts, key=lambda s: (-counts[s], s)).strip()
        parts = name.split("/")  # a clip's key starts with it: no empty, "." or ".." part
        return genre if any(p.strip() in ("", ".", "..") for p in parts) else name


def _groups(tracks: list[tuple[str, Path, Track]]) -> tuple[dict[str, str], dict[str, str], int]:
    """(clip key -> group id, group id -> its most common artist, tracks grouped by folder): tracks that share an
    artist, or an album (its title with its album artist, else its folder), are one group (union-find)."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    nodes, by_folder = {}, 0
    for key, path, track in tracks:
        artist = track.artist or track.album_artist
        by_folder += not artist
        mine = [f"artist:{normalise(artist)}" if normalise(artist) else f"folder:{path.parent}"]
        if normalise(track.album):
            mine.append(f"album:{normalise(track.album)}:{normalise(track.album_artist) or path.parent}")
        for node in mine[1:]:
            parent[find(node)] = find(mine[0])
        nodes[key] = (mine[0], artist or path.parent.name)
    groups = {key: find(node) for key, (node, _) in nodes.items()}
    names: dict[str, Counter] = {}
    for key, (_, artist) in nodes.items():
        names.setdefault(groups[key], Counter())[artist] += 1
    return groups, {g: min(c, key=lambda a: (-c[a], a)) for g, c in names.items()}, by_folder
