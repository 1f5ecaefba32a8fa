"""The tables of benchmarks/openset.py on mixes of two genres and on the detector's verdicts; mixes are made here.

    .venv/bin/python benchmarks/openset.py         # runs these (this file has no command of its own)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_CONFIDENCE = 0.7  # sort's and tag's default


def mixes(pairs: list[tuple[Path, Path]], cache: Path) -> np.ndarray:
    """Clip-mean embeddings (M, 250) of each pair's clips at equal RMS, summed and scaled to peak 0.9 at most."""
    from openset import embed_wave

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.audio.frontend import FrontEnd
    from genre_cnn.models.musicnn import FRONTEND, load_pretrained

    key = [f"{a}+{b}" for a, b in pairs]
    done = dict(np.load(cache)) if cache.is_file() else {}
    if any(k not in done for k in key):
        model, front = load_pretrained(), FrontEnd(FRONTEND)
        for k, (a, b) in zip(key, pairs):
            if k in done:
                continue
            ya, yb = (load_audio(p, FRONTEND.sample_rate) for p in (a, b))
            n = min(ya.size, yb.size)
            y = ya[:n] / np.sqrt(np.mean(ya[:n] ** 2)) + yb[:n] / np.sqrt(np.mean(yb[:n] ** 2))
            done[k] = embed_wave(model, front, (y / max(1.0, np.abs(y).max() / 0.9)).astype(np.float32))
        np.savez(cache, **done)
    return np.stack([done[k] for k in key])


def probs(logits: np.ndarray, t: float) -> np.ndarray:
    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def report_mixes(halves: list[dict], lg_jm: np.ndarray, t_ready: float, genres: list[str]) -> None:
    """What the head says on mixes of two genres: top probability, does it name one of the two, both in its top 2."""
    print("\nmixes of two genres (equal loudness): what the head answers\n| mixes | n | mean top probability | top "
          ">= 0.7 | top is one of the two | both in the top 2 | mean probability of the two genres |\n|---|---|---|---|"
          "---|---|---|")
    rows = [("classical / jazz / rock pairs, test halves (protocol heads)",
             np.concatenate([probs(h["lg_mix"], h["t"]) for h in halves]),
             np.concatenate([np.array(h["pairs"]) for h in halves]))]
    jm = np.array([[genres.index("jazz"), genres.index("metal")]] * len(lg_jm))
    rows.append(("jazz + metal, gtzan_mini (shipped head; clips it trained on)", probs(lg_jm, t_ready), jm))
    for name, p, pairs in rows:
        top = p.argmax(1)
        top2 = np.argsort(-p, 1)[:, :2]
        one = (top == pairs[:, 0]) | (top == pairs[:, 1])
        both = np.array([set(a) == set(b) for a, b in zip(top2.tolist(), pairs.tolist())])
        two = np.take_along_axis(p, pairs, 1)  # (M, 2)
        print(f"| {name} | {len(p)} | {p.max(1).mean():.2f} | {np.mean(p.max(1) >= MIN_CONFIDENCE):.0%} | "
              f"{one.mean():.0%} | {both.mean():.0%} | {two[:, 0].mean():.2f} / {two[:, 1].mean():.2f} |")
    jazz_metal = probs(lg_jm, t_ready)
    print("jazz + metal, each mix: " + ", ".join(f"{genres[i]} {q.max():.2f}" for i, q in
                                                  zip(jazz_metal.argmax(1), jazz_metal)))


def report_verdicts(sets: dict, x: np.ndarray, y: np.ndarray, tune_neg: np.ndarray) -> None:
    """The verdicts of genre_cnn.models.openset fitted on all clips: without and with the music gate."""
    import torch

    from genre_cnn.models.openset import VERDICTS, fit_detector

    for gate in (False, True):
        det = fit_detector(x, y, tune_neg, music_gate=gate)
        print(f"\nverdicts, detector fitted on all {len(y)} clips and the tune sets, music gate {gate} (max distance "
              f"{det.max_distance.item():.2f}, music floor {det.music_floor.item():.3f})\n| set | role | "
              + " | ".join(VERDICTS) + " | median familiarity |\n|---|---|---|---|---|---|")
        for name, (s, e, _) in sets.items():
            with torch.no_grad():
                fam, _, verdict = det(torch.from_numpy(e))
            shares = [f"{np.mean(verdict.numpy() == i):.0%}" for i in range(len(VERDICTS))]
            print(f"| {name} | {s.role} | " + " | ".join(shares) + f" | {fam.median().item():.3f} |")

