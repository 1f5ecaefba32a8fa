"""A personal model of your own genres: what `genre-cnn learn FOLDER...` and `beet genrecnn --learn QUERY` run.

    genre-cnn learn ~/Music --genre-map genres.txt --min-tracks 10     # from the files' own genre tags
    from genre_cnn.app.learn import learn, track_of
    learn([track_of(item) for item in lib.items(query)], title="beets: genre:Jazz")   # trains; returns the exit code

`genre-cnn learn` trains on the folders' files as their tags say (`python train.py --config configs/library.yaml
--data.source.data_dir FOLDER`, in this process). For beets, the items' paths, genres (beets' `genres` list, or its
`genre` field with several genres joined by `,` or `;`), artists (else album artists) and albums are written to a
CSV of tracks under `<home>/data/library/`, and
`python train.py --config configs/library.yaml --data.source.tracks CSV` trains on it in a process of its own (the
dataset kind genre_cnn.data.sources.library, with the database's genres instead of the files' tags): the same
labelling rules, artist-disjoint cross-fitting, report and cache of embeddings as for a folder of music. The run
is then the latest trained on real music, so `beet genrecnn` and `genre-cnn` use it unless told otherwise (the
plugin's `ckpt`, or `--ckpt`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from genre_cnn.errors import GenreCnnError
from genre_cnn.paths import REPO, atomic_write_text, home

RECIPE = REPO / "configs" / "library.yaml"  # how a personal model is trained


class LearnError(GenreCnnError):
    """Nothing to learn from, or no recipe to learn with; one line."""


def track_of(item) -> dict[str, str]:
    """{path, genre, artist, album} of a beets item (any object with beets' fields and `get`); several genres are
    joined by `;`."""
    genres = item.get("genres")
    if not isinstance(genres, list) or not genres:
        genres = [item.get("genre") or ""]
    path = item.get("path")
    return {"path": os.fsdecode(path) if path else "", "genre": "; ".join(g for g in genres if g),
            "artist": item.get("artist") or item.get("albumartist") or "", "album": item.get("album") or ""}


def tracks_file(tracks: list[dict[str, str]], title: str) -> Path:
    """Writes the tracks as a CSV (path, genre, artist, album) under `<home>/data/library/`, named after `title`;
    returns its path."""
    out = io.StringIO()
    writer = csv.DictWriter(out, ["path", "genre", "artist", "album"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(tracks)
    name = hashlib.sha256(title.encode()).hexdigest()[:10]
    path = home() / "data" / "library" / f"tracks-{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, out.getvalue())
    return path


def command(tracks: Path, title: str, recipe: Path = RECIPE) -> list[str]:
    """The train.py command line that learns from the CSV of tracks."""
    return [sys.executable, "-m", "genre_cnn.training.train", "--config", str(recipe), "--data.source.data_dir",
            "null", "--data.source.tracks", str(tracks), "--data.source.title", title]


def folder_arguments(folders: list[str], mapping: Path | None = None, min_tracks: int = 10, multi: str = "first",
                     recipe: Path = RECIPE) -> list[str]:
    """train.py's arguments that learn from the genre tags of the files under `folders` (`genre-cnn learn`)."""
    if not recipe.is_file():
        raise LearnError(f"{recipe}: the recipe of personal models comes with genre_cnn's source checkout; "
                         "install it from there (pip install -e .)")
    dirs = [str(Path(d).expanduser().absolute()) for d in folders]
    args = ["--config", str(recipe), "--data.source.data_dir", dirs[0] if len(dirs) == 1 else json.dumps(dirs),
            "--data.source.min_tracks", str(min_tracks), "--data.source.multi", multi]
    return args + (["--data.source.mapping", str(Path(mapping).expanduser().absolute())] if mapping else [])


def learn(tracks: list[dict[str, str]], title: str, recipe: Path = RECIPE) -> int:
    """Trains a personal model on `tracks` (see `track_of`) in a process of its own, its output shown as it comes;
    returns its exit code. LearnError if no track has a genre or the recipe is missing."""
    if not any(t["genre"].strip() for t in tracks):
        raise LearnError(f"no item with a genre among the {len(tracks)} matching items: nothing to learn from")
    if not recipe.is_file():
        raise LearnError(f"{recipe}: the recipe of personal models comes with genre_cnn's source checkout; "
                         "install it from there (pip install -e .)")
    return subprocess.run(command(tracks_file(tracks, title), title, recipe)).returncode
