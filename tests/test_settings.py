"""Settings that cannot work are one line naming the option (exit code 2), before any run folder or cache
work; a full disk while caching leaves no temporary file behind.

    .venv/bin/python -m pytest tests/test_settings.py
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from genre_cnn.training.train import cli


def tiny_folder(root: Path, genres: dict[str, int], seconds: float = 4.0) -> Path:
    """A folder-per-genre data set of short tones: {genre: clip count}."""
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    for g, (genre, n) in enumerate(genres.items()):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * g + i) * t)
            soundfile.write(root / genre / f"{genre}.{i:05d}.wav", tone, sr)
    return root


def folder_args(root: Path) -> list[str]:
    return ["--data.source", "Folder", "--data.source.data_dir", str(root), "--data.features.clip_seconds", "4",
            "--data.features.workers", "1"]


CASES = {  # option named in the message: extra arguments
    "--trainer.max_epochs": ["--trainer.max_epochs", "0"],
    "--data.window_seconds": ["--data.window_seconds", "5"],  # longer than the 4-s clips it is cut from
    "--data.batch_size": ["--data.batch_size", "0"],
    "--data.crops_per_clip": ["--data.crops_per_clip", "0"],
    "--data.split.val_fraction": ["--data.split.val_fraction", "0"],
    "--data.split.fold": ["--data.split.kind", "kfold", "--data.split.fold", "5"],
    "--data.source.clips_per_genre": ["--data.source", "Demo", "--data.source.clips_per_genre", "0"],
    "--data.features.workers": ["--data.features.workers", "0"],
    "--frontend.hop_length": ["--frontend.hop_length", "0"],
    "--frontend.sample_rate": ["--frontend.sample_rate", "0"],
    "--frontend.n_fft": ["--frontend.n_fft", "1000000"],
    "--data.features.clip_seconds": ["--data.features.clip_seconds", "100000"],
    "--dense.lr": ["--dense.lr", "-1"],
    "--dense.dropout": ["--dense.dropout", "2"],
    "--dense.widths": ["--dense.widths", "[5000]"],
    "--dense.weight_decay": ["--dense.weight_decay", "-1"],
    "--dense.label_smoothing": ["--dense.label_smoothing", "5"],
    "--seed": ["--seed", "-1"],
    "--cnn.kernel_size": ["--cnn.kernel_size", "0"],
    "--cnn.widths": ["--cnn.widths", "[4096,4096]", "--cnn.kernel_size", "63"],  # too many weights
    "--cnn.widths ": ["--cnn.widths", "[]"],  # no convolutional block
    "--cnn.mixup_alpha": ["--cnn.mixup_alpha", "-1"],
    "--musicnn.dropout": ["--musicnn.dropout", "1.5"],
    "--musicnn.widths": ["--musicnn.widths", "[0]"],
    "--trainer.max_epochs ": ["--trainer.max_epochs", "100000"],  # its warm-up (a tenth of all steps) never ends
    "--trainer.max_epochs  ": ["--trainer.max_epochs", "1e21"],
    "--trainer.accumulate_grad_batches": ["--trainer.accumulate_grad_batches", "0"],
    "--trainer options": ["--trainer.devices", "0"],  # refused by Lightning's Trainer, built once to check
}


def run_cli(args: list[str], out: Path, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        cli([*args, "--output_root", str(out), "--trainer.enable_progress_bar", "false"])
    return exit_.value.code, capsys.readouterr().err.strip()


def assert_one_line_naming(option: str, code: int, err: str, out: Path) -> None:
    assert code == 2, err
    last = err.splitlines()[-1]  # after any progress bar of the feature cache
    assert "Traceback" not in err and last.startswith("error: ") and option in last, err
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())  # no run folder for a failed start


@pytest.mark.parametrize("option", sorted(CASES))
def test_out_of_range_setting_is_one_line_naming_it(option, tmp_path, capsys):
    data = tiny_folder(tmp_path / "data", {"a": 3, "b": 3})
    code, err = run_cli([*folder_args(data), *CASES[option]], tmp_path, capsys)
    assert_one_line_naming(option.strip(), code, err, tmp_path)
    assert len(err.splitlines()) == 1
    assert not any((tmp_path / "data").rglob("*.npz")) and "cache" not in os.listdir(tmp_path)


@pytest.mark.parametrize(("genres", "extra", "option"), [
    ({"rock": 3}, [], "--data.source"),  # one genre: nothing to classify
    ({"a": 1, "b": 1, "c": 1}, [], "--data.split.test_fraction"),  # one clip per genre: no stratified split
    ({"a": 3, "b": 3}, ["--data.split.test_fraction", "0.99"], "--data.split.test_fraction"),  # no clip to train on
], ids=["one-genre", "one-clip-per-genre", "test-fraction-0.99"])
def test_dataset_too_small_for_the_split_is_one_line(genres, extra, option, tmp_path, capsys):
    data = tiny_folder(tmp_path / "data", genres)
    code, err = run_cli([*folder_args(data), *extra], tmp_path, capsys)
    assert_one_line_naming(option, code, err, tmp_path)


def test_own_genres_without_dataset_folder_say_so(tmp_path, capsys):
    data = tiny_folder(tmp_path / "mine", {"chanson": 1, "fado": 1})
    code, err = run_cli(["--data.source.data_dir", str(data)], tmp_path, capsys)  # GTZAN by default
    assert_one_line_naming("--data.source Folder", code, err, tmp_path)
    assert "chanson, fado" in err


def test_full_disk_while_caching_leaves_no_temporary_file(tmp_path, monkeypatch):
    from genre_cnn.data.cache import FeatureSettings, build_cache
    from genre_cnn.data.layout import Clip

    data = tiny_folder(tmp_path / "data", {"a": 2})
    clips = [Clip(p, "a") for p in sorted((data / "a").glob("*.wav"))]

    def full_disk(f, **arrays):
        f.write(b"x" * 1000)  # part of the file made it to disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="No space left"):
        build_cache(clips, cache, FeatureSettings(clip_seconds=4.0), workers=1, progress=False)
    assert cache.is_dir() and not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_stale_temporary_files_of_a_killed_run_are_removed(tmp_path):
    from genre_cnn.data.cache import FeatureSettings, build_cache

    folder = tmp_path / "cache" / "clips" / "a"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".a.00000.wav.npz.k1ll3d.tmp", folder / ".a.00001.wav.npz.wr1t1ng.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written by a run that started after this one")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    build_cache([], tmp_path / "cache", FeatureSettings(), workers=1, progress=False)
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize(("typo", "closest"), [("--confg", "--config"), ("--data.bach_size", "--data.batch_size"),
                                               ("--dense.withs", "--dense.widths")])
def test_a_mistyped_option_is_one_line_naming_the_closest(typo, closest, tmp_path, capsys):
    code, err = run_cli([typo, "x"], tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err == f"error: unknown option {typo}: did you mean {closest}?"


def test_a_value_of_the_wrong_type_is_one_line_naming_the_option(tmp_path, capsys):
    code, err = run_cli(["--data.batch_size", "many"], tmp_path, capsys)
    assert code == 2 and err == "error: --data.batch_size: expected int, got many"


def test_resuming_a_run_that_does_not_exist_is_one_line_not_a_new_run(tmp_path, capsys):
    data = tiny_folder(tmp_path / "data", {"a": 3, "b": 3})
    code, err = run_cli([*folder_args(data), "--resume", "true", "--run_name", "nosuchrun"], tmp_path, capsys)
    assert code == 1 and err.startswith("error: --resume: no run 'nosuchrun'") and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()


def test_a_run_in_use_by_another_train_py_is_one_line(tmp_path, capsys):
    from genre_cnn.training.runs import lock_run

    data = tiny_folder(tmp_path / "data", {"a": 3, "b": 3})
    run = tmp_path / "runs" / "twin"
    with lock_run(run):  # as another train.py holds it (flock: per open file, so this process is refused too)
        code, err = run_cli([*folder_args(data), "--resume", "true", "--run_name", "twin", "--models", "[dense]",
                             "--trainer.max_epochs", "1"], tmp_path, capsys)
    assert code == 1 and err == f"error: run 'twin' is in use by another train.py (pid {os.getpid()}): wait for it " \
                                "to end, or pick another --run_name"
    assert not (tmp_path / "checkpoints").exists()  # nothing trained
    with lock_run(run):  # released by the refused run
        pass


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import io

    import torch

    import genre_cnn.paths
    from genre_cnn.training.runs import RunError, atomic_checkpoint_io

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(genre_cnn.paths.os, "fdopen", lambda fd, mode: FullDisk(fd, "wb"))
    with pytest.raises(RunError) as err:  # torch.save's zip writer turns the OSError into a RuntimeError
        atomic_checkpoint_io().save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "best.ckpt")
    assert str(err.value) == (f"cannot write the checkpoint {tmp_path / 'best.ckpt'}: No space left on device; "
                              "free some space and continue with --resume true")
    assert os.listdir(tmp_path) == []


def test_half_written_checkpoints_of_a_killed_run_are_swept(tmp_path):
    from genre_cnn.training.runs import sweep_partial_checkpoints

    model = tmp_path / "checkpoints" / "r" / "cnn"
    model.mkdir(parents=True)
    stale = [model / ".best.ckpt.k1ll3d.tmp", model / ".last.ckpt.x2.tmp", model / ".refit.ckpt.x3.tmp"]
    kept = [model / "best.ckpt", model / ".best.ckpt", tmp_path / "checkpoints" / "r" / "notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert sweep_partial_checkpoints(tmp_path / "checkpoints" / "r") == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_config_file_saved_as_utf16_or_with_a_byte_order_mark_is_read(encoding, tmp_path):
    from genre_cnn.training.train import build_parser

    config = tmp_path / "run.yaml"
    text = "seed: 7\nrun_name: Musique été\ndata:\n  batch_size: 5\n"
    config.write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))  # BOM, as Notepad
    for args in (["--config", str(config)], [f"--config={config}"]):
        cfg = build_parser().parse_args(args)
        assert (cfg.seed, cfg.run_name, cfg.data.batch_size) == (7, "Musique été", 5)


def test_a_config_file_in_another_encoding_is_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_bytes("run_name: Musique été\n".encode("latin-1"))
    code, err = run_cli(["--config", str(config)], tmp_path, capsys)
    assert code == 2 and err == (f"error: --config {config}: not UTF-8 text (byte 0xe9 at offset 18): save it as "
                                 "UTF-8 (e.g. in Notepad: Save as, Encoding UTF-8)")
