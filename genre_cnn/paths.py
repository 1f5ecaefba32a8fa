"""Where things live, and writing files safely: the bottom of the package (imports nothing of genre_cnn).

    python -m genre_cnn.paths      # prints the folder that data/, runs/ and checkpoints/ go to

`home()` is that folder, the one place every write outside the user's own paths goes: `GENRE_CNN_HOME` when
set, else the source checkout when genre_cnn runs from one, else the user's data folder of the platform
(`~/.local/share/genre_cnn` on Linux, `~/Library/Application Support/genre_cnn` on macOS,
`%LOCALAPPDATA%\\genre_cnn` on Windows), so an installed package never writes beside its own code.
`resolve()` turns a user's path into an absolute one; `atomic_write()` is the one way files that are later
trusted (cache entries, splits, checkpoints, manifests) are written: to a temporary name in the same folder,
then renamed. `Run` is the one description of a training run's folders: `runs/<run>/` (its config, reports,
results and TensorBoard logs) and `checkpoints/<run>/<model>/` (best, last and refit checkpoints).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parents[1]  # the source checkout, when genre_cnn runs from one


def in_checkout() -> bool:
    """Whether genre_cnn runs from its source checkout (an editable install included), not from an installed
    copy in site-packages."""
    return (REPO / "pyproject.toml").is_file() and (REPO / "train.py").is_file()


def home() -> Path:
    """Where data/ (datasets, feature and ONNX caches, converted weights), runs/ and checkpoints/ live:
    GENRE_CNN_HOME if set, else the source checkout, else the platform's user data folder (platformdirs)."""
    if os.environ.get("GENRE_CNN_HOME"):
        return Path(os.environ["GENRE_CNN_HOME"]).expanduser().absolute()
    if in_checkout():
        return REPO
    import platformdirs

    return Path(platformdirs.user_data_dir("genre_cnn", appauthor=False))


def resolve(path: str | Path) -> Path:
    """A user's path made absolute: relative to the working directory if it exists there, else (in a source
    checkout) to the checkout, so that configs/ can name ../shared/gtzan_mini wherever the command runs."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not in_checkout():
        return p.absolute()
    return REPO / p


def atomic_write(dest: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Writes `dest` through `write(file)` so that it either holds the whole content or is left as it was.

    The content goes to a temporary file in the same folder (unique per process and call), is flushed to
    disk, then renamed over `dest`; on any failure (a full disk included) the temporary file is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended: no such process, or (on Linux) a zombie that no one has reaped yet.
    (A pool's workers may be children of a fork server, so their own parent id says nothing.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # after "pid (comm)"
    except (OSError, IndexError):
        return False


def die_with_parent(parent: int) -> None:
    """Ties this (worker) process to the process `parent` that started its pool, so an interrupted run leaves no
    pool workers behind and no tracebacks of theirs: a daemon thread ends it soon after that process is gone,
    even when it was killed with SIGKILL and not yet reaped; Ctrl-C, which the terminal sends to the parent and
    its workers alike, is left to the parent (it stops handing out work, lets the files in progress finish, and
    says it was interrupted)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if _gone(parent):
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@dataclass(frozen=True)
class Run:
    """The folders and files of training run `name` under `root` (genre_cnn.paths.home() by default)."""

    root: Path
    name: str

    CHECKPOINTS = ("refit.ckpt", "best.ckpt")  # a model's tested checkpoint: the first of these it has

    @classmethod
    def of_model_dir(cls, model_dir: Path) -> Run:
        """The run whose checkpoints/<run>/<model>/ folder `model_dir` is."""
        return cls(model_dir.parent.parent.parent, model_dir.parent.name)

    @property
    def dir(self) -> Path:
        """runs/<run>/: config.yaml, report.md, report.json, result_<model>.json, TensorBoard logs per model."""
        return self.root / "runs" / self.name

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints" / self.name

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    def result(self, model: str) -> Path:
        """The test result of a model, written once it is tested (a resumed run reuses it)."""
        return self.dir / f"result_{model}.json"

    def checkpoint(self, model: str, which: str) -> Path:
        """checkpoints/<run>/<model>/<which>.ckpt: "best" (validated), "last" (to resume) or "refit"."""
        return self.checkpoints / model / f"{which}.ckpt"

    def tested(self, model: str) -> Path | None:
        """The model's checkpoint that answers for it (refit.ckpt over best.ckpt), or None."""
        return next((p for p in (self.checkpoints / model / n for n in self.CHECKPOINTS) if p.is_file()), None)


def atomic_write_text(dest: Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text (JSON records, manifests)."""
    return atomic_write(dest, lambda f: f.write(text.encode()))


if __name__ == "__main__":
    print(home())
