"""Features read from disk (genre_cnn.data.ondisk): the same arrays and the same batches as in RAM, nothing
stacked in the process, and the choice between the two."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genre_cnn.data import ondisk
from genre_cnn.data.ondisk import OnDisk, keep_in_memory
from tests.conftest import DEMO_ARGS
from tests.test_datamodule import make_dm, tone_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def entries(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 11)).astype(np.float16) for _ in range(5)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"{i}.npz")
        np.savez(paths[-1], spec=a, hand=np.full(4, i, np.float32))
    return paths, np.stack(arrays)


def test_indexing_reads_what_the_stacked_array_holds(entries):
    paths, stacked = entries
    spec = OnDisk(paths, "spec")
    assert spec.shape == stacked.shape and len(spec) == 5 and spec.dtype == np.float16
    assert spec.nbytes == stacked.nbytes
    for i in range(5):
        np.testing.assert_array_equal(spec[i], stacked[i])
        np.testing.assert_array_equal(spec[i, :, 2:7], stacked[i, :, 2:7])
    rows = np.array([4, 1, 3])
    subset = spec[rows]
    assert isinstance(subset, OnDisk) and subset.shape == (3, 3, 11)
    for j, r in enumerate(rows):
        np.testing.assert_array_equal(subset[j], stacked[r])
    np.testing.assert_array_equal(spec[1:3][1], stacked[2])
    np.testing.assert_array_equal(OnDisk(paths, "hand")[3], np.full(4, 3, np.float32))
    assert spec[0].flags.writeable  # as np.load's are: torch.from_numpy takes it without a warning


def test_entries_laid_out_otherwise_are_read_right(entries):
    """Each entry's bytes are read where the first entry's lie, after checking the headers there: an entry
    compressed, or with its arrays in another order, is read whole instead, and gives the same values."""
    paths, stacked = entries
    np.savez_compressed(paths[1], spec=stacked[1], hand=np.zeros(4, np.float32))
    np.savez(paths[3], source=np.arange(3), hand=np.zeros(4, np.float32), spec=stacked[3])
    spec = OnDisk(paths, "spec")
    for i in range(5):
        np.testing.assert_array_equal(spec[i], stacked[i])
    compressed = OnDisk(paths[1:2], "spec")  # a first entry that cannot be read in place
    np.testing.assert_array_equal(compressed[0], stacked[1])


def test_an_entry_of_another_shape_is_refused_by_name(entries):
    paths, _ = entries
    np.savez(paths[2], spec=np.zeros((3, 9), np.float16))
    with pytest.raises(ValueError, match=r"2\.npz: spec has shape \(3, 9\), the others \(3, 11\)"):
        OnDisk(paths, "spec")[2]


def test_the_choice_follows_the_option_else_the_size(monkeypatch):
    monkeypatch.setattr(ondisk, "physical_memory", lambda: 1000)
    assert keep_in_memory(250, None) and not keep_in_memory(251, None)
    assert keep_in_memory(10**9, True) and not keep_in_memory(1, False)


def batches(loader, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    return list(loader)


@pytest.mark.parametrize("family", ["cnn", "dense"])
def test_the_datamodule_serves_the_same_batches_from_disk_as_from_memory(tmp_path, family):
    root = tone_folder(tmp_path / "a")
    ram, disk = make_dm(root, family=family, in_memory=True), make_dm(root, family=family, in_memory=False)
    assert ram.clipset.in_memory and isinstance(ram.features, np.ndarray)
    if family == "cnn":
        assert not disk.clipset.in_memory and isinstance(disk.features, OnDisk)
    else:  # one pooled vector per clip: always held
        assert disk.clipset.in_memory
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        a, b = batches(getattr(ram, loader)(), 3), batches(getattr(disk, loader)(), 3)
        assert len(a) == len(b) > 0
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_the_default_holds_small_sets_in_memory_and_large_ones_on_disk(tmp_path, monkeypatch):
    root = tone_folder(tmp_path / "a")
    assert make_dm(root).clipset.in_memory
    monkeypatch.setattr(ondisk, "physical_memory", lambda: 1000)  # a machine too small for these features
    assert not make_dm(root).clipset.in_memory


@pytest.mark.slow
def test_two_processes_read_their_own_share_from_disk_and_test_as_one_process_does(project_home, demo_dir, tmp_path):
    """DDP on CPU (gloo), features read from disk: every training item of the epoch read by exactly one process,
    every test clip evaluated exactly once, and the test confusion matrix that one process with the features in
    RAM finds for the same checkpoint."""
    args = [*DEMO_ARGS, "--models", "[cnn]", "--output_root", str(tmp_path), "--run_name", "ddp",
            "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--data.features.in_memory", "false", "--data.crops_per_clip", "2",
            "--data.source.clips_per_genre", "11"]  # 44 clips: 9 test clips, an odd number for two processes
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path)}  # its own demo set
    probe = [sys.executable, str(REPO / "tests" / "ddp_probe.py"), str(tmp_path)]
    proc = subprocess.run([*probe, *args], capture_output=True, text=True, timeout=400, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All distributed processes registered" in proc.stderr and "features read from" in proc.stderr
    reads = [[line.split() for line in (tmp_path / f"rank{r}.txt").read_text().splitlines()] for r in (0, 1)]
    train = [{int(line[1]) for line in rank if line[0] == "train"} for rank in reads]
    length = {int(line[2]) for rank in reads for line in rank if line[0] == "train"}
    assert len(length) == 1 and train[0] and train[1] and not train[0] & train[1]  # each item by one process
    assert train[0] | train[1] == set(range(length.pop()))  # and none left out
    tested = [line[1] for rank in reads for line in rank if line[0] == "test"]
    report = json.loads((tmp_path / "runs" / "ddp" / "report.json").read_text())["cnn"]
    assert len(tested) == len(set(tested)) == report["clips"] == 9
    assert all(any(line[0] == "test" for line in rank) for rank in reads)  # both processes took a share
    best = tmp_path / "checkpoints" / "ddp" / "cnn" / "best.ckpt"
    alone = subprocess.run([*probe, "--retest", str(best), *DEMO_ARGS, "--data.source.clips_per_genre", "11"],
                           capture_output=True, text=True,
                           timeout=300, cwd=tmp_path, env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads(alone.stdout.strip().splitlines()[-1]) == report["confusion"]


@pytest.mark.slow
def test_torchrun_starts_every_process_of_one_run(project_home, demo_dir, tmp_path):
    """The launch of a run on several machines (torchrun on each), here two processes on one: they join one named
    run."""
    with socket.socket() as s:  # a free port on the loopback for the two processes to meet at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]
    args = [str(REPO / "train.py"), *DEMO_ARGS, "--models", "[cnn]", "--output_root", str(tmp_path),
            "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--data.features.in_memory", "false", "--data.crops_per_clip", "2"]
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    named = subprocess.run([*torchrun, *args, "--run_name", "tr"], capture_output=True, text=True, timeout=400,
                           cwd=tmp_path, env=env)
    assert named.returncode == 0, named.stderr[-3000:]
    report = json.loads((tmp_path / "runs" / "tr" / "report.json").read_text())["cnn"]
    (split,) = (tmp_path / "data" / "cache").glob("*/split-random-*.json")
    assert report["clips"] == len(json.loads(split.read_text())["test"])  # every test clip once, across both
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tr"]  # one run folder for both processes
    assert (tmp_path / "checkpoints" / "tr" / "cnn" / "best.ckpt").is_file()


@pytest.mark.parametrize("launcher", [{"WORLD_SIZE": "2", "RANK": "1"},  # torchrun
                                      {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "4"}])  # srun
def test_a_process_of_a_launched_run_without_run_name_stops_at_once(project_home, demo_dir, tmp_path, monkeypatch,
                                                                    launcher):
    """One of several processes started by torchrun or SLURM (their environment) needs the run's name: without it,
    it stops before anything is written, saying so."""
    from genre_cnn.errors import SettingsError
    from genre_cnn.training.train import main

    for name, value in launcher.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="give --run_name NAME"):
        main([*DEMO_ARGS, "--models", "[cnn]", "--output_root", str(tmp_path)])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()
