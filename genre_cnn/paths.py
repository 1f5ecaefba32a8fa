"""Where things live, and writing files safely: the bottom of the package (imports nothing of genre_cnn).

    python -m genre_cnn.paths      # prints the project folder that data/, runs/ and checkpoints/ go to

`project_root()` is the repository, or `GENRE_CNN_HOME` if set; `resolve()` turns a user's path into an
absolute one; `atomic_write()` is the one way files that are later trusted (cache entries, splits,
checkpoints, manifests) are written: to a temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """Where data/, runs/ and checkpoints/ live: the repository, or GENRE_CNN_HOME if set."""
    return Path(os.environ.get("GENRE_CNN_HOME", REPO))


def resolve(path: str | Path) -> Path:
    """A user's path: absolute, or relative to the working directory if it exists there, else to the repository
    (so that configs/ can name ../shared/gtzan_mini wherever the command runs)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else REPO / p


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


def die_with_parent(parent: int) -> None:
    """Starts a daemon thread that ends this (worker) process soon after the process `parent` is gone, even
    when it was killed with SIGKILL, so an interrupted run leaves no pool workers behind."""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def atomic_write_text(dest: Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text (JSON records, manifests)."""
    return atomic_write(dest, lambda f: f.write(text.encode()))


if __name__ == "__main__":
    print(project_root())
