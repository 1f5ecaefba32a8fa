"""Training clips streamed from LitData shards (genre_cnn.data.streamed): every clip once an epoch, windows cut
from the right clip, shards never read half-written, and a run of two processes that splits them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("litdata", reason="litdata is not installed: bash setup.sh installs it")

from genre_cnn.data import streamed  # noqa: E402
from genre_cnn.data.streamed import COMPLETE, flatten_crops, streamed_windows, write_shards  # noqa: E402
from tests.conftest import DEMO_ARGS  # noqa: E402
from tests.test_datamodule import make_dm, tone_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIPS, CHANNELS, FRAMES, WINDOW = 7, 3, 40, 9


@pytest.fixture
def entries(tmp_path):
    """Cache entries whose spectrogram says where it came from: spec[c, t] = 1000 * clip + t."""
    paths = []
    for i in range(CLIPS):
        paths.append(tmp_path / "cache" / f"{i}.npz")
        paths[-1].parent.mkdir(exist_ok=True)
        spec = (1000 * i + np.arange(FRAMES) + np.zeros((CHANNELS, 1))).astype(np.float32)  # (C, T)
        np.savez(paths[-1], spec=spec, hand=np.zeros(4, np.float32))
    return paths, np.arange(CLIPS) % 3, [f"g/clip{i}" for i in range(CLIPS)]


def epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_each_epoch_reads_every_clip_once_and_cuts_its_windows_from_it(entries, tmp_path):
    from litdata import StreamingDataLoader

    paths, labels, keys = entries
    out = write_shards(paths, labels, keys, "spec", tmp_path / "shards")
    assert (out / COMPLETE).is_file()
    loader = StreamingDataLoader(streamed_windows(str(out), WINDOW, crops=2, seed=0), batch_size=3,
                                 collate_fn=flatten_crops)
    orders = []
    for _ in range(2):
        x, y = epoch(loader)
        assert x.shape == (2 * CLIPS, CHANNELS, WINDOW) and x.dtype == torch.float32
        clip = (x[:, 0, 0] // 1000).long()  # which clip each window was cut from
        assert Counter(clip.tolist()) == {i: 2 for i in range(CLIPS)}  # every clip, crops times
        assert torch.equal(y, torch.from_numpy(labels)[clip])  # with its own label
        frames = x[:, 0] - 1000 * clip[:, None]  # (N, W): the frame numbers of each window
        assert torch.equal(frames - frames[:, :1], torch.arange(WINDOW).float().expand_as(frames))  # contiguous
        assert frames.min() >= 0 and frames.max() <= FRAMES - 1 and len(set(frames[:, 0].tolist())) > 3  # random
        orders.append(clip[::2].tolist())
    assert orders[0] != orders[1]  # shuffled anew each epoch


@pytest.mark.parametrize("fault", [OSError, KeyboardInterrupt])  # a failed read; a writer process killed
def test_an_interrupted_write_is_never_read_and_is_done_again(entries, tmp_path, monkeypatch, fault):
    paths, labels, keys = entries
    out = tmp_path / "shards"
    real = streamed._item

    def dies_at_clip_4(entry, name):
        if entry[2] == "g/clip4":
            raise fault("disk gone")
        return real(entry, name)

    monkeypatch.setattr(streamed, "_item", dies_at_clip_4)
    with pytest.raises(Exception, match="clip4|stopped after"):  # litdata's error, or ours for a killed writer
        write_shards(paths, labels, keys, "spec", out)
    assert not out.exists()  # nothing a reader would take for shards
    monkeypatch.setattr(streamed, "_item", real)
    write_shards(paths, labels, keys, "spec", out)
    assert (out / COMPLETE).is_file() and not list(tmp_path.glob("shards.partial-*"))  # the leftovers removed
    from litdata import StreamingDataset

    assert sorted(item["key"] for item in StreamingDataset(str(out))) == sorted(keys)


def test_the_datamodule_streams_the_training_clips_and_evaluates_from_the_cache(tmp_path):
    root = tone_folder(tmp_path / "a")
    dm = make_dm(root, streaming=True, crops_per_clip=2)
    shards = Path(dm.shards)
    assert shards.parent == dm.cache_dir and (shards / COMPLETE).is_file()
    x, y = epoch(dm.train_dataloader())
    assert x.shape == (2 * len(dm.train_idx), 140, dm.window)  # every training clip, twice
    assert sorted(y.tolist()) == sorted(np.repeat(dm.labels[dm.train_idx], 2).tolist())
    assert len(next(iter(dm.train_dataloader()))[1]) == 8  # batch_size windows: 4 clips of 2
    in_ram = make_dm(root, crops_per_clip=2)
    for part in ("val_dataloader", "test_dataloader"):  # evaluation is not streamed
        for (xa, ya), (xb, yb) in zip(getattr(dm, part)(), getattr(in_ram, part)(), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    refit = make_dm(root, streaming=True, fit_on="train+val")
    assert refit.shards != dm.shards  # other training clips, other shards
    dense = make_dm(root, streaming=True, family="dense")
    assert not dense.streams and not isinstance(dense.train_dataloader().dataset, type(dm.train_dataloader().dataset))


def test_streaming_without_litdata_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    from genre_cnn.errors import SettingsError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litdata" else real(name, *a))
    with pytest.raises(SettingsError, match="--data.streaming needs LitData.*bash setup.sh"):
        make_dm(tone_folder(tmp_path / "a"), streaming=True)


@pytest.mark.slow
def test_two_processes_stream_their_own_share_and_test_as_one_process_does(project_home, demo_dir, tmp_path):
    """DDP on CPU (gloo), training clips streamed: each clip of an epoch read by one process only, fewer than
    processes x clips-per-batch left out (LitData gives every process the same whole number of batches), and the
    test confusion matrix that one process with the features in RAM finds for the same checkpoint."""
    args = [*DEMO_ARGS, "--models", "[cnn]", "--output_root", str(tmp_path), "--run_name", "ddp",
            "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--data.streaming", "true", "--data.features.in_memory", "false",
            "--data.crops_per_clip", "2", "--data.batch_size", "8",  # 4 clips a batch
            "--data.source.clips_per_genre", "11"]  # 44 clips: 26 training clips, not whole batches for two processes
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    probe = [sys.executable, str(REPO / "tests" / "ddp_probe.py"), str(tmp_path)]
    proc = subprocess.run([*probe, *args], capture_output=True, text=True, timeout=400, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reads = [[line.split() for line in (tmp_path / f"rank{r}.txt").read_text().splitlines()] for r in (0, 1)]
    streamed_keys = [[line[1] for line in rank if line[0] == "stream"] for rank in reads]
    (split,) = (tmp_path / "data" / "cache").glob("*/split-random-*.json")
    train = json.loads(split.read_text())["train"]
    share = len(train) // 2 // 4 * 4  # whole batches of 4 clips per process
    assert len(train) % 8 and len(streamed_keys[0]) == len(streamed_keys[1]) == share  # equal shares
    both = streamed_keys[0] + streamed_keys[1]
    assert len(set(both)) == len(both) and set(both) <= set(train)  # none twice; fewer than 8 left out
    report = json.loads((tmp_path / "runs" / "ddp" / "report.json").read_text())["cnn"]
    best = tmp_path / "checkpoints" / "ddp" / "cnn" / "best.ckpt"
    alone = subprocess.run([*probe, "--retest", str(best), *DEMO_ARGS, "--data.source.clips_per_genre", "11"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads(alone.stdout.strip().splitlines()[-1]) == report["confusion"]


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_damaged_shard_folder_is_written_again_and_damaged_shards_at_a_url_are_one_line(entries, tmp_path, damage,
                                                                                        monkeypatch, caplog):
    from genre_cnn.data import layout

    monkeypatch.setattr(layout, "_WARNED", set())
    paths, labels, keys = entries
    out = write_shards(paths, labels, keys, "spec", tmp_path / "shards")
    (chunk, *_) = sorted(out.glob("*.bin"))
    size = chunk.stat().st_size
    if damage == "deleted":
        chunk.unlink()
        problem = f"{chunk.name}, listed in {COMPLETE}, is missing"
    else:
        chunk.write_bytes(chunk.read_bytes()[: size // 2])
        problem = f"{chunk.name} holds {size // 2} bytes where {COMPLETE} lists {size}"
    assert streamed.shards_problem(str(out)) == streamed.shards_problem(f"local:{out}") == problem
    write_shards(paths, labels, keys, "spec", out)
    assert f"the LitData shards in {out} are damaged ({problem}): written again from the feature cache" in caplog.text
    assert streamed.shards_problem(str(out)) is None and chunk.stat().st_size == size
    from litdata import StreamingDataset

    assert sorted(item["key"] for item in StreamingDataset(str(out))) == sorted(keys)


def test_a_url_of_damaged_shards_is_one_line_and_streaming_a_vector_family_says_so(tmp_path, monkeypatch, caplog):
    import logging

    from genre_cnn.data import layout
    from genre_cnn.data.layout import DataError

    monkeypatch.setattr(layout, "_WARNED", set())
    root = tone_folder(tmp_path / "a")
    shards = Path(make_dm(root, streaming=True).shards)
    (next(shards.glob("*.bin"))).unlink()  # a copy cut short, read as a URL: not rebuilt, said
    with pytest.raises(DataError, match=rf"^--data.stream_dir local:{shards}: \S+\.bin, listed in index.json, is "
                                        "missing; copy the shards there again"):
        make_dm(root, streaming=True, stream_dir=f"local:{shards}")
    with caplog.at_level(logging.INFO):
        dense = make_dm(root, streaming=True, family="dense")
    assert not dense.streams
    assert [r.getMessage() for r in caplog.records if "--data.streaming" in r.getMessage()] == [
        "--data.streaming true: the dense family trains on one vector per clip, held in RAM, not on windows: its "
        "training clips are not streamed"]
