"""Test reports: per-model metrics from the test confusion matrix, a side-by-side table, PNG figures.

    python -m genre_cnn.report RUN_DIR     # prints the side-by-side table of a finished run's report.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def metrics_from_confusion(confusion: np.ndarray, genres: list[str]) -> dict:
    """Clip accuracy, macro-F1 and per-genre precision/recall from a (n, n) matrix, rows = true genre."""
    cm = confusion.astype(np.float64)
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {
        "clips": int(cm.sum()),
        "clip_acc": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1.mean()),  # over every genre, as torchmetrics and scikit-learn count it
        "per_genre": {g: {"precision": float(p), "recall": float(r), "support": int(s)}
                      for g, p, r, s in zip(genres, precision, recall, cm.sum(1))},
        "confusion": confusion.astype(int).tolist(),
    }


def confusion_figure(confusion: np.ndarray, genres: list[str], title: str = "test confusion matrix"):
    """A labelled matplotlib Figure of the confusion matrix, counts in the cells, rows = true genre."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list stay untouched

    fig = Figure(figsize=(1.0 + 0.6 * len(genres), 0.8 + 0.55 * len(genres)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    ax.set(xticks=range(len(genres)), yticks=range(len(genres)), xlabel="predicted genre", ylabel="true genre",
           title=title)
    ax.set_xticklabels(genres, rotation=45, ha="right")
    ax.set_yticklabels(genres)
    high = confusion.max() / 2 if confusion.size else 0
    for (i, j), v in np.ndenumerate(confusion):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", color="white" if v > high else "black", fontsize=8)
    return fig


def side_by_side(results: dict[str, dict]) -> str:
    """A markdown table with one column per model."""
    names = list(results)
    rows = [("test clips", "clips", "{:d}"), ("clip accuracy", "clip_acc", "{:.1%}"),
            ("window accuracy", "window_acc", "{:.1%}"), ("macro-F1", "macro_f1", "{:.3f}"),
            ("best val accuracy", "val_acc", "{:.1%}"), ("epochs", "epochs", "{:d}"),
            ("train time (s)", "train_seconds", "{:.0f}")]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        cells = [fmt.format(results[n][key]) if results[n].get(key) is not None else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    genres = list(next(iter(results.values()))["per_genre"])
    lines += ["", "Per-genre precision / recall:", "",
              "| genre | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for g in genres:
        cells = [f"{results[n]['per_genre'][g]['precision']:.2f} / {results[n]['per_genre'][g]['recall']:.2f}"
                 for n in names]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: dict[str, dict], run_dir: Path) -> Path:
    """Writes report.json, report.md and confusion_<model>.png into run_dir; returns report.md's path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, r in results.items():
        genres = list(r["per_genre"])
        fig = confusion_figure(np.array(r["confusion"]), genres, f"{name}: test confusion matrix")
        fig.savefig(run_dir / f"confusion_{name}.png", dpi=120)
    (run_dir / "report.json").write_text(json.dumps(results, indent=1))
    md = run_dir / "report.md"
    md.write_text("# Test report\n\n" + side_by_side(results) + "\n")
    return md


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(side_by_side(json.loads((Path(sys.argv[1]) / "report.json").read_text())))
