"""The tables of benchmarks/openset.py on mixes of two genres and on the shipped detector's verdicts; mixes made here.

    .venv/bin/python benchmarks/openset.py         # runs these (this file has no command of its own)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_CONFIDENCE = 0.7  # sort's and tag's default


def mix(a: Path, b: Path, rate: int = 16000) -> np.ndarray:
    """Two clips at equal RMS, summed, scaled to peak 0.9 at most: (samples,) float32 at `rate`."""
    from genre_cnn.audio.decode import load_audio

    ya, yb = (load_audio(p, rate) for p in (a, b))
    n = min(ya.size, yb.size)
    y = ya[:n] / np.sqrt(np.mean(ya[:n] ** 2)) + yb[:n] / np.sqrt(np.mean(yb[:n] ** 2))
    return (y / max(1.0, np.abs(y).max() / 0.9)).astype(np.float32)


def mix_embeddings(model, pairs: list[tuple[Path, Path]], cache: Path) -> np.ndarray:
    """Clip-mean embeddings (M, 250) of each pair's mix, every patch of it (as `predict` hears a 30-s file);
    cached in `cache` (.npz)."""
    import torch

    key = [f"{a}+{b}" for a, b in pairs]
    done = dict(np.load(cache)) if cache.is_file() else {}
    if any(k not in done for k in key):
        for k, (a, b) in zip(key, pairs):
            if k not in done:
                with torch.inference_mode():
                    done[k] = model.patches(torch.from_numpy(mix(a, b))).mean(0).numpy()  # (P, 250) -> (250,)
        np.savez(cache, **done)
    return np.stack([done[k] for k in key])


def probs(logits: np.ndarray, t: float) -> np.ndarray:
    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def report_mixes(fits: dict, mixes: dict, ready, x_jm: np.ndarray, genres: list[str]) -> None:
    """What the heads answer on mixes of two genres: top probability, does it name one of the two, both in its top
    2; and what the shipped model (head and detector) answers on them."""
    import torch

    print("\nmixes of two genres (equal loudness): what the head answers\n| mixes | n | mean top probability | top "
          ">= 0.7 | top is one of the two | both in the top 2 | mean probability of the two genres | detector: "
          "music | placed (music, top >= 0.7) |\n|---|---|---|---|---|---|---|---|---|")
    pairs = np.concatenate([np.array(p) for p in mixes["pairs"]])
    x_mix = np.concatenate([mixes["A"], mixes["B"]])
    with torch.no_grad():
        shipped_mix = ready.calibrated(ready(torch.from_numpy(x_mix))).numpy(), ready.detector(torch.from_numpy(x_mix))
        shipped_jm = ready.calibrated(ready(torch.from_numpy(x_jm))).numpy(), ready.detector(torch.from_numpy(x_jm))
    jm = np.array([[genres.index("jazz"), genres.index("metal")]] * len(x_jm))
    rows = [("classical / jazz / rock pairs, test halves (protocol heads, no detector)",
             np.concatenate([probs(fits[h]["lg_mix"], fits[h]["t"]) for h in ("A", "B")]), pairs, None),
            ("the same mixes, the shipped model (trained on these clips)", shipped_mix[0], pairs, shipped_mix[1][2]),
            ("jazz + metal, gtzan_mini (the shipped model; clips it trained on)", shipped_jm[0], jm, shipped_jm[1][2])]
    for name, p, two, verdict in rows:
        top = p.argmax(1)
        top2 = np.argsort(-p, 1)[:, :2]
        one = (top == two[:, 0]) | (top == two[:, 1])
        both = np.array([set(a) == set(b) for a, b in zip(top2.tolist(), two.tolist())])
        each = np.take_along_axis(p, two, 1)  # (M, 2)
        music = "-" if verdict is None else f"{np.mean(verdict.numpy() == 0):.0%}"
        got = "-" if verdict is None else f"{np.mean((verdict.numpy() == 0) & (p.max(1) >= MIN_CONFIDENCE)):.0%}"
        print(f"| {name} | {len(p)} | {p.max(1).mean():.2f} | {np.mean(p.max(1) >= MIN_CONFIDENCE):.0%} | "
              f"{one.mean():.0%} | {both.mean():.0%} | {each[:, 0].mean():.2f} / {each[:, 1].mean():.2f} | {music} | "
              f"{got} |")
    p, verdict = shipped_jm[0], shipped_jm[1][2].numpy()
    print("jazz + metal, each mix (shipped model): " + ", ".join(
        f"{genres[i]} {q.max():.2f} ({['music', 'unfamiliar', 'not music'][v]})"
        for i, q, v in zip(p.argmax(1), p, verdict)))


def report_verdicts(sets: list, answers: dict, ready) -> None:
    """The shipped detector's verdicts on every set, as `predict` gives them."""
    from genre_cnn.models.openset import VERDICTS

    det = ready.detector
    print(f"\nverdicts of the shipped detector (max distance {det.max_distance.item():.2f}, music floor "
          f"{det.music_floor.item():.3f}), as predict gives them\n| set | role | recordings | "
          + " | ".join(VERDICTS) + " | median familiarity |\n|---|---|---|---|---|---|---|")
    for s in sets:
        a = list(answers[s.name].values())
        verdict = np.array([r["verdict"] for r in a])
        shares = [f"{np.mean(verdict == i):.0%}" for i in range(len(VERDICTS))]
        print(f"| {s.name} | {s.role} | {len(a)} | " + " | ".join(shares)
              + f" | {np.median([r['familiarity'] for r in a]):.3f} |")
