"""Test reports and the training console: per-model metrics from the test confusion matrix, a side-by-side
table, PNG figures, the hyperparameters TensorBoard shows, and what `python train.py` prints.

    python -m genre_cnn.training.report RUN_DIR     # prints the side-by-side table of a finished run's report.json
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger("genre_cnn")

# Lightning's info lines that repeat for every model and refit or that the phase lines say better
# (kept: "Restoring states from the checkpoint path", which only a resumed fit prints now)
LIGHTNING_NOISE = ("GPU available", "TPU available", "HPU available", "LOCAL_RANK", "💡 Tip",
                   "Loading `train_dataloader`", "Loaded model weights", "`Trainer.fit` stopped")
WARNING_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning 2.6 vs torch 2.13: nothing a user can act on
    r"The number of training batches .* is smaller than the logging interval",  # we log per epoch only
    r"Found \d+ module\(s\) in eval mode at the start of training",  # musicnn's tagger is frozen on purpose
)


class _Console(logging.Formatter):
    """Information as bare lines; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def setup_console() -> None:
    """What `python train.py` prints: genre_cnn's lines, progress bars, warnings that mean something to the user."""
    if not logging.getLogger().handlers:  # leaves a caller's (or pytest's) logging alone
        handler = logging.StreamHandler()
        handler.setFormatter(_Console())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("genre_cnn").setLevel(logging.INFO)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # every rank_zero_info of Lightning
    if not any(getattr(f, "genre_cnn", False) for f in rank_zero.filters):
        def quiet(record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(LIGHTNING_NOISE)
        quiet.genre_cnn = True
        rank_zero.addFilter(quiet)
    for pattern in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=pattern)


def say(message: str) -> None:
    """A console line, from the first process only (DDP's others run the same code)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        log.info(message)


def seen(dm) -> str:
    """What one training epoch sees, e.g. "28 clips x 8 windows"."""
    per = "windows" if dm.classifier_class.inputs == "windows" else f"copies of their {dm.family} vectors"
    return f"{len(dm.train_idx)} clips x {dm.crops_per_clip} {per}"


def flat_hparams(config: dict, prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as one level of `a.b` keys with values TensorBoard's hparams plugin takes."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return flat


def log_hparams(logger, cfg, name: str, result: dict) -> None:
    """TensorBoard's HPARAMS tab for model `name`: the run's settings (`cfg`, the train.py namespace) beside its
    test figures, written once per model after its test."""
    settings = {"model": name, **{k: cfg[k] for k in ("seed", "patience", "refit")},
                "trainer.max_epochs": cfg.trainer.max_epochs}
    settings.update({group: cfg[group].as_dict() for group in ("data", "frontend", name)})
    metrics = {f"hparams/{k}": result[k] for k in ("clip_acc", "window_acc", "macro_f1")}
    logger.log_hyperparams(flat_hparams(settings), metrics)


def escape(cell: str) -> str:
    """A markdown table cell: a `|` in a genre or model name must not end the cell."""
    return str(cell).replace("|", "\\|")


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
    """A markdown table with one column per model. After a refit (`--refit true`) the tested checkpoint is
    refit.ckpt: the "validated fit" rows are the run that chose the epoch count, the "refit" row that retraining."""
    names = list(results)
    rows = [("test clips", "clips", "{:d}".format), ("clip accuracy", "clip_acc", "{:.1%}".format),
            ("window accuracy", "window_acc", "{:.1%}".format), ("macro-F1", "macro_f1", "{:.3f}".format),
            ("tested checkpoint", "checkpoint", lambda p: Path(p).name),
            ("split", "split", str),
            ("validated fit: epochs", "epochs", "{:d}".format),
            ("validated fit: best val accuracy", "val_acc", "{:.1%}".format),
            ("validated fit: best epoch", "best_epoch", "{:d}".format),
            ("refit: epochs on train+val", "refit_epochs", "{:d}".format),
            ("cross-fit: groups held out in turn", "cross_fit", ", ".join),
            ("cross-fit: steps of the model kept", "steps", "{:d}".format),
            ("train time (s)", "train_seconds", "{:.0f}".format)]
    head = "| metric | " + " | ".join(escape(n) for n in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        cells = [fmt(results[n][key]) if results[n].get(key) is not None else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    genres = list(next(iter(results.values()))["per_genre"])
    lines += ["", "Per-genre precision / recall:", "", head, "|---" * (len(names) + 1) + "|"]
    lines[-2] = lines[-2].replace("| metric |", "| genre |", 1)
    for g in genres:
        cells = [f"{results[n]['per_genre'][g]['precision']:.2f} / {results[n]['per_genre'][g]['recall']:.2f}"
                 for n in names]
        lines.append(f"| {escape(g)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tested(name: str, r: dict) -> str:
    """One line: which checkpoint of model `name` the test figures are from, and how it was trained."""
    if r.get("cross_fit"):
        return (f"{name}: {r['checkpoint']}, trained on every clip after its figures were measured by cross-fitting "
                f"(groups {', '.join(r['cross_fit'])}, each held out in turn; the temperature fitted on their "
                "out-of-fold predictions)")
    if r.get("refit_epochs") is not None:
        return (f"{name}: {r['checkpoint']}, a fresh model trained on train + val for {r['refit_epochs']} epochs "
                f"(the epochs of the validated fit, early stopping included), without validation")
    best = f"epoch {r['best_epoch']} of {r['epochs']}" if r.get("best_epoch") else f"{r['epochs']} epochs"
    return f"{name}: {r['checkpoint']}, the best validation accuracy of the validated fit ({best})"


def copies_markdown(duplicates: dict) -> str:
    """The report's section on copies of one recording in the dataset (genre_cnn.data.duplicates.Duplicates.summary),
    or "" if there are none."""
    kept, conflicting = duplicates.get("kept_together", []), duplicates.get("conflicting_genres", [])
    if not kept and not conflicting:
        return ""
    lines = ["## The same audio in several files", ""]
    if kept:
        lines += [f"{len(kept)} group(s) of copies, each kept on one side of the split:", ""]
        for group in kept:
            out = [f for f in group["files"] if f in group["left_out"]]
            files = ", ".join(f"`{f}`" for f in group["files"] if f not in out)
            shown = ", ".join(f"`{f}`" for f in out)
            left = f"; left out, as the split put them in another part: {shown}" if out else ""
            lines.append(f"- {escape(group['genre'])} ({group['part'] or 'in no part'}): {files}{left}")
        lines.append("")
    if conflicting:
        lines += [f"{len(conflicting)} recording(s) filed under several genres, left out of training and testing:", ""]
        lines += [f"- {', '.join(map(escape, g['genres']))}: {', '.join(f'`{f}`' for f in g['files'])}"
                  for g in conflicting]
        lines.append("")
    return "\n".join(lines)


def write_report(results: dict[str, dict], run_dir: Path, duplicates: dict | None = None) -> Path:
    """Writes report.json, report.md and confusion_<model>.png into run_dir; returns report.md's path.
    `duplicates`: the dataset's copies of one recording (genre_cnn.data.duplicates.Duplicates.summary), given to every
    model's entry of report.json and listed in report.md."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, r in results.items():
        genres = list(r["per_genre"])
        fig = confusion_figure(np.array(r["confusion"]), genres, f"{name}: test confusion matrix")
        fig.savefig(run_dir / f"confusion_{name}.png", dpi=120)
    if duplicates is not None:
        results = {name: {**r, "duplicates": duplicates} for name, r in results.items()}
    (run_dir / "report.json").write_text(json.dumps(results, indent=1))
    md = run_dir / "report.md"
    notes = "".join(f"- {tested(n, r)}\n" for n, r in results.items())
    copies = copies_markdown(duplicates or {})
    md.write_text("# Test report\n\n" + side_by_side(results) + "\n\nTested checkpoints:\n\n" + notes
                  + (f"\n{copies}" if copies else ""))
    return md


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(side_by_side(json.loads((Path(sys.argv[1]) / "report.json").read_text())))
