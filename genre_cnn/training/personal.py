"""What a model trained on your own library learnt of it: the section `python train.py` adds to report.md and the
console when the dataset kind is a library (genre_cnn.data.sources.library), and `library.json` beside the report.

    python train.py --config configs/library.yaml --data.source.data_dir ~/Music    # ends with this section

For each genre: its tracks and artists, its recall on held-out artists (cross-fitting: each track answered by a
model trained without its artist's group; other splits: the test part's tracks), the genre most of its misses went
to, and the ready model's recall on the same files where it knows the genre; then the confusion matrix, and which
genres could not be learnt, by these rules:
- too small: fewer tracks than `min_tracks`: left out before training;
- too few artists: all its tracks by one artist (or album): held out, no other example of it was left to learn from,
  so its figure measures nothing, and the model kept may have learnt that artist's sound rather than the genre;
- too mixed: recall below chance (1 / the number of genres), or at least half of its tracks taken for one other
  genre (the report names it, and the mapping line that would merge the two);
- unheard: every file of it skipped as unusable audio (silent, too short, undecodable: logged one line each).
The ready model (genre_cnn/ready/) answers from the same cached clip embeddings; one of its ten genres counts as one
of yours when your genre's name, after your mapping file, is the same (its `blues` is your `Jazz & Blues` if the
mapping says `Blues: Jazz & Blues`). It was trained on GTZAN clips: on those, its figures are not on unheard music.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genre_cnn.training.report import escape, say


def unlearnt_genres(genres: list[str], confusion: np.ndarray, artists: dict[str, int]) -> dict[str, str]:
    """Genre -> why it could not be learnt (the module docstring's rules), for the genres that could not."""
    verdicts = {}
    for i, genre in enumerate(genres):
        row = confusion[i].astype(float)
        total = row.sum()
        if not total:
            verdicts[genre] = "no track of it could be heard (every file skipped as unusable, see above)"
            continue
        others = row.copy()
        others[i] = -1
        worst = int(others.argmax())
        if artists[genre] < 2:
            verdicts[genre] = "too few artists: all its tracks are by one artist or album"
        elif row[i] / total < 1 / len(genres):
            verdicts[genre] = f"too mixed: recall {row[i] / total:.0%}, below chance ({1 / len(genres):.0%})"
        elif row[worst] >= total / 2:
            verdicts[genre] = (f"too mixed: {row[worst] / total:.0%} of its tracks taken for {genres[worst]} (to "
                               f"merge them, a line `{genre}: {genres[worst]}` in the mapping file)")
    return verdicts


def ready_recall(data, result: dict) -> tuple[dict[str, float], int] | None:
    """The ready model's recall per genre it shares with the library, on the files the run's figures are from
    (every track after cross-fitting, else the test part), and how many files that is; None if it cannot tell."""
    import torch

    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.checkpoint import READY_MODEL
    from genre_cnn.models.families.musicnn import MusicnnClassifier

    if not READY_MODEL.is_file():
        return None
    ready = load_model(READY_MODEL)
    dm = data.like(family="musicnn")
    if not isinstance(ready, MusicnnClassifier) or dm.extractor.settings() != type(ready).features(None).settings():
        return None  # the ready model hears other features than those cached
    dm.prepare_data()
    dm.setup("fit")
    rows = np.concatenate([dm.idx[p] for p in dm.idx]) if result.get("cross_fit") else dm.idx["test"]
    with torch.no_grad():  # (N, 250) mean clip embeddings -> (N,) the ready model's genre
        answers = ready(torch.from_numpy(dm.features[rows]).float()).argmax(1).numpy()
    yours = {g.casefold(): i for i, g in enumerate(dm.genres)}
    source = data.source
    mine = {i: yours.get(_named(source, r, dm.genres)) for i, r in enumerate(ready.genres)}  # ready -> yours or None
    shared = sorted({m for m in mine.values() if m is not None})
    labels = dm.labels[rows]
    recall = {}
    for genre in shared:
        files = labels == genre
        if files.any():
            recall[dm.genres[genre]] = float(np.mean([mine[a] == genre for a in answers[files]]))
    return recall, int(len(rows))


def _named(source, ready_genre: str, genres: list[str]) -> str | None:
    """Which of the library's genres (casefolded) the ready model's genre is, after the library's mapping."""
    from genre_cnn.genres import normalise

    target = source.genre_of(ready_genre)
    return next((g.casefold() for g in genres if normalise(g) == target), None)


def personal_report(results: dict[str, dict], data, report: Path) -> dict | None:
    """Appends the library's section to `report` (report.md), prints it, and writes library.json beside it; does
    nothing for a dataset kind other than a library. Returns the section's figures."""
    from genre_cnn.data.sources.library import Library

    source = data.source
    if not isinstance(source, Library) or not results:
        return None
    name, result = next(iter(results.items()))
    genres = list(result["per_genre"])
    confusion = np.array(result["confusion"])
    listing = source.listing
    heard = {key for part in data.make_split().values() for key in part}  # tracks with usable audio, all split
    tracks = [c for c in listing.clips if c.key in heard]
    group_of = {c.key: listing.groups[c.key] for c in tracks}
    artists = {g: len({group_of[c.key] for c in tracks if c.genre == g}) for g in genres}
    verdicts = unlearnt_genres(genres, confusion, artists)
    ready = ready_recall(data, result)
    how = (f"each track answered by a {name} model trained without its artist's group (cross-fitting over "
           f"{len(result['cross_fit'])} folds of artists)" if result.get("cross_fit")
           else f"the {result['clips']} tracks of the test part, whose artists the model never heard")
    lines = [f"## What the model learnt of {source.describe()}", "",
             f"{len(tracks)} tracks of {len(genres)} genres by {len(set(group_of.values()))} artists (or albums)"
             + (f", besides {len(listing.clips) - len(tracks)} whose audio could not be used (see above)"
                if len(tracks) < len(listing.clips) else "") + f". Recall on held-out artists: {how}.", "",
             "| genre | tracks | artists | recall on held-out artists | most misses taken for | the ready model |",
             "|---|---|---|---|---|---|"]
    figures = {}
    for i, genre in enumerate(genres):
        row = confusion[i]
        others = row.copy()
        others[i] = -1
        missed = genres[int(others.argmax())] if row.sum() > row[i] else "-"
        theirs = ready[0].get(genre) if ready else None
        figures[genre] = {"tracks": int(sum(c.genre == genre for c in tracks)), "artists": artists[genre],
                          "recall": result["per_genre"][genre]["recall"], "ready_recall": theirs,
                          "verdict": verdicts.get(genre, "")}
        lines.append(f"| {escape(genre)} | {figures[genre]['tracks']} | {artists[genre]} | "
                     f"{figures[genre]['recall']:.0%} | {escape(missed)} | "
                     + ("-" if theirs is None else f"{theirs:.0%}") + " |")
    lines += ["", "Confusion matrix on held-out artists (rows: the genre in your tags; columns: the model's answer):",
              "", "| | " + " | ".join(escape(g) for g in genres) + " |", "|---" * (len(genres) + 1) + "|"]
    lines += [f"| {escape(g)} | " + " | ".join(str(int(v)) for v in confusion[i]) + " |" for i, g in enumerate(genres)]
    unlearnt = [f"- {escape(g)}: too small, {n} tracks (fewer than --data.source.min_tracks {source.min_tracks}); "
                "left out" for g, n in listing.dropped.items()]
    unlearnt += [f"- {escape(g)}: {why}" for g, why in verdicts.items()]
    lines += ["", "Genres it could not learn:", "", *unlearnt] if unlearnt else [
        "", "Every genre was learnt: none too small, by too few artists or too mixed."]
    lines += [""] + [f"Left out: {note}." for note in listing.notes]
    if ready and ready[0]:
        shared = list(ready[0])
        yours = np.mean([figures[g]["recall"] for g in shared])
        theirs = np.mean([ready[0][g] for g in shared])
        lines += ["", f"On the {len(shared)} genre(s) both know ({', '.join(escape(g) for g in shared)}), on the same "
                  f"files: mean recall {yours:.0%} for this model, {theirs:.0%} for the ready model (which chooses "
                  "among its ten GTZAN genres; it was trained on GTZAN clips, so on those it has heard them)."]
    elif ready is not None:
        lines += ["", "The ready model knows none of these genres (after your mapping): no comparison."]
    text = "\n".join(lines) + "\n"
    with open(report, "a", encoding="utf-8") as f:
        f.write("\n" + text)
    summary = {"library": source.describe(), "genres": figures, "dropped": listing.dropped, "notes": listing.notes}
    (report.parent / "library.json").write_text(json.dumps(summary, indent=1))
    for line in lines:
        say(line)
    return figures
