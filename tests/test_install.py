"""An installed genre_cnn (a wheel, not editable) predicts from any folder and writes only to its home.

    .venv/bin/python -m pytest -q tests/test_install.py

The wheel is built from a copy of the package and installed with --no-deps into a fresh virtual environment
that borrows this environment's installed dependencies through a .pth file: offline, and quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn import paths

REPO = Path(__file__).resolve().parents[1]


def pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the user data folder checked is Linux's")
def test_home_is_genre_cnn_home_else_the_checkout_else_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("GENRE_CNN_HOME", str(tmp_path / "mine"))
    assert paths.home() == tmp_path / "mine"
    monkeypatch.delenv("GENRE_CNN_HOME")
    assert paths.in_checkout() and paths.home() == REPO
    monkeypatch.setattr(paths, "in_checkout", lambda: False)  # as installed in site-packages
    assert paths.home() == tmp_path / "user" / ".local" / "share" / "genre_cnn"
    monkeypatch.chdir(tmp_path)
    assert paths.resolve("../shared/x") == tmp_path / "../shared/x"  # a user's path, from where they are


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh environment's python, the installed package's folder)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(REPO / "genre_cnn", src / "genre_cnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy(REPO / name, src / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src))
    wheel = next((tmp / "dist").glob("genre_cnn-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True, timeout=120)
    python = tmp / "venv" / "bin" / "python"
    pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # after the install, so that pip never sees (nor touches) the editable genre_cnn of this environment
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site / "genre_cnn"


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    python, package = installed
    proc = subprocess.run([str(python), "-c", "import genre_cnn.paths as p; print(p.__file__, p.in_checkout())"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(package / "paths.py"), "False"]
    assert (package / "ready" / "LICENSE.musicnn").is_file()  # the ISC notice travels with the weights


@pytest.mark.slow
@pytest.mark.parametrize("own_home", [False, True], ids=["user-data-folder", "GENRE_CNN_HOME"])
def test_predict_from_another_folder_writes_only_to_its_home(installed, tmp_path, own_home):
    python, package = installed
    clip = tmp_path / "music" / "song.wav"
    clip.parent.mkdir()
    t = np.arange(5 * 22050) / 22050
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32), 22050)
    cwd, user = tmp_path / "elsewhere", tmp_path / "user"
    cwd.mkdir()
    drop = ("GENRE_CNN_HOME", "XDG_DATA_HOME", "PYTHONDONTWRITEBYTECODE")  # as for a user
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["HOME"] = str(user)  # platformdirs: $HOME/.local/share/genre_cnn on Linux
    home = tmp_path / "own_home" if own_home else user / ".local" / "share" / "genre_cnn"
    if own_home:
        env["GENRE_CNN_HOME"] = str(home)
    before = files_under(package.parent)  # site-packages: where a home computed from __file__ would land

    proc = subprocess.run([str(python.parent / "genre-cnn"), "predict", str(clip), "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "song.wav" in proc.stdout and str(package / "ready") in proc.stdout  # the ready model answered
    proc = subprocess.run([str(python.parent / "genre-cnn"), "export"], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(home / "ready.onnx")
    assert files_under(package.parent) == before  # nothing written inside (or beside) the installed package
    assert list(package.glob("ready/*.onnx"))  # the ready model's graph travels with the wheel ...
    assert not list(home.glob("data/onnx/*.onnx"))  # ... and answered: nothing was exported again into the home
    assert not any(cwd.iterdir())  # nor in the working folder
