"""One rule per setting for training and loading: each family's `bounds` and the shared ones of genre_cnn.bounds;
every edge value builds and round-trips through save -> check_contents -> load_model, one past it is refused by both
sides; tiny checkpoints whose settings imply a huge model are refused before anything is allocated (under an
address-space cap).

    .venv/bin/python -m pytest tests/test_checkpoint_bounds.py
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.bounds import FRONTEND, MAX_LAYERS, MAX_WIDTH, TRAINING
from genre_cnn.errors import SettingsError
from genre_cnn.inference.predict import load_model
from genre_cnn.models import families
from genre_cnn.models.checkpoint import CheckpointError, check_contents
from genre_cnn.training.lit import check_settings, option_sources

REPO = Path(__file__).resolve().parents[1]
GENRES = [f"g{i}" for i in range(10)]
SMALL = {"widths": [8]}  # every case but the widths' own is built small, so that each round trip takes milliseconds
CNN, DENSE, MUSICNN = (families.get(name) for name in ("cnn", "dense", "musicnn"))


def ranges(family: families.Family) -> dict[str, tuple]:
    """The (low, high) ranges of the family's options: its classifier's bounds and the shared training ones."""
    bounds = {**TRAINING, **family.classifier().bounds}
    return {k: v for k, v in bounds.items() if k in option_sources(family) and isinstance(v, tuple)}


def test_every_numeric_option_of_every_family_has_a_range():
    import inspect

    for family in families.all().values():
        numeric = {k for k, cls in option_sources(family).items()
                   if inspect.signature(cls).parameters[k].annotation in ("int", "float")}
        assert numeric and numeric <= set(ranges(family)), (family.name, numeric - set(ranges(family)))


def past(low, high, side: str):
    """One step outside [low, high] on `side`: the next whole number, or the next float."""
    if isinstance(low, int) and isinstance(high, int):
        return low - 1 if side == "low" else high + 1
    return math.nextafter(low, -math.inf) if side == "low" else math.nextafter(high, math.inf)


def save(family: families.Family, settings: dict, path: Path) -> Path:
    """A checkpoint as training writes it (class name, hyperparameters, "model."-prefixed state dict)."""
    hp = {"genres": GENRES, "frontend": FrontEndConfig().as_dict(), **settings}
    state = {f"model.{k}": v for k, v in family.build(hp).state_dict().items()}
    torch.save({"genre_cnn_class": family.class_name, "hyper_parameters": hp, "state_dict": state}, path)
    return path


CASES = [(family, key, side) for family in (CNN, DENSE, MUSICNN) for key in ranges(family) for side in ("low", "high")]


@pytest.mark.parametrize(("family", "key", "side"), CASES, ids=[f"{f.name}.{k}-{s}" for f, k, s in CASES])
def test_each_edge_round_trips_and_one_past_is_refused_by_both(family, key, side, tmp_path):
    low, high = ranges(family)[key]
    edge = {**SMALL, key: low if side == "low" else high}
    check_settings(family, edge)  # training accepts it ...
    model = load_model(save(family, edge, tmp_path / "edge.ckpt"))  # ... and so does loading
    assert type(model) is family.classifier()
    bad = {**edge, key: past(low, high, side)}
    with pytest.raises(SettingsError, match=f"^--{family.name}.{key} must be"):
        check_settings(family, bad)
    checkpoint = torch.load(save(family, edge, tmp_path / "bad.ckpt"), weights_only=True)
    checkpoint["hyper_parameters"][key] = bad[key]
    with pytest.raises(CheckpointError, match=f"hyperparameter {key} must be"):
        check_contents(tmp_path / "bad.ckpt", checkpoint)


@pytest.mark.parametrize("widths", [[], [1], [MAX_WIDTH], [4] * MAX_LAYERS],
                         ids=["linear", "one-unit", "widest", "deepest"])
def test_widths_at_their_edges_round_trip_for_the_dense_network(widths, tmp_path):
    check_settings(DENSE, {"widths": widths})
    assert len(load_model(save(DENSE, {"widths": widths}, tmp_path / "w.ckpt")).net.net) == 3 * len(widths) + 1


def test_a_cnn_without_a_block_is_refused_by_both(tmp_path):
    with pytest.raises(SettingsError, match=r"^--cnn.widths: the CNN needs at least one convolutional block"):
        check_settings(CNN, {"widths": []})
    checkpoint = torch.load(save(CNN, {"widths": [4]}, tmp_path / "c.ckpt"), weights_only=True)
    checkpoint["hyper_parameters"]["widths"] = []
    with pytest.raises(CheckpointError, match="does not fit .*the CNN needs at least one convolutional block"):
        check_contents(tmp_path / "c.ckpt", checkpoint)


@pytest.mark.parametrize("members", [0, 17, 2.5])
def test_an_ensemble_of_too_many_or_no_heads_is_refused_on_loading(members, tmp_path):
    from genre_cnn.models.checkpoint import READY_MODEL

    checkpoint = torch.load(READY_MODEL, weights_only=True)  # five heads: its settings are within the bounds
    check_contents(READY_MODEL, checkpoint)
    checkpoint["hyper_parameters"]["members"] = members
    with pytest.raises(CheckpointError, match="hyperparameter members must be"):
        check_contents(tmp_path / "many.ckpt", checkpoint)


@pytest.mark.parametrize("widths", [[0], [MAX_WIDTH + 1], [4] * (MAX_LAYERS + 1)],
                         ids=["zero", "too-wide", "too-deep"])
def test_widths_past_their_edges_are_refused_by_both(widths, tmp_path):
    with pytest.raises(SettingsError, match="^--dense.widths must be"):
        check_settings(DENSE, {"widths": widths})
    checkpoint = torch.load(save(DENSE, SMALL, tmp_path / "w.ckpt"), weights_only=True)
    checkpoint["hyper_parameters"]["widths"] = widths
    with pytest.raises(CheckpointError, match="hyperparameter widths must be"):
        check_contents(tmp_path / "w.ckpt", checkpoint)


@pytest.mark.parametrize("key", sorted(FRONTEND))
def test_front_end_edges_are_accepted_by_both_and_one_past_refused_by_both(key, tmp_path):
    low, high = FRONTEND[key]
    edges = {"n_fft": {"low": {"hop_length": 16, "n_mels": 8}}, "hop_length": {"high": {"n_fft": 16384}}}
    for side in ("low", "high"):
        settings = {key: low if side == "low" else high, **edges.get(key, {}).get(side, {})}
        hp = {"genres": GENRES, "frontend": FrontEndConfig(**settings).as_dict(), **SMALL}
        state = {k: v for k, v in DENSE.build(hp).state_dict().items()}
        check_contents(Path("edge.ckpt"), {"genre_cnn_class": "HandcraftedClassifier", "hyper_parameters": hp,
                                           "state_dict": state})
        bad = {**hp["frontend"], key: past(low, high, side)}
        with pytest.raises(SettingsError, match=f"--frontend.{key} must be"):
            FrontEndConfig(**bad)
        with pytest.raises(CheckpointError, match=f"frontend.{key} must be"):
            check_contents(Path("bad.ckpt"), {"genre_cnn_class": "HandcraftedClassifier", "state_dict": state,
                                              "hyper_parameters": {**hp, "frontend": bad}})


def test_settings_that_imply_too_many_weights_are_refused_by_training_too():
    with pytest.raises(SettingsError, match=r"^--cnn.widths .* weights, more than"):
        check_settings(CNN, {"widths": [MAX_WIDTH] * 2, "kernel_size": 63})


def test_weights_of_another_shape_than_the_settings_build_are_refused(tmp_path):
    checkpoint = torch.load(save(DENSE, {"widths": [8, 4]}, tmp_path / "d.ckpt"), weights_only=True)
    checkpoint["hyper_parameters"]["widths"] = [8, 5]
    with pytest.raises(CheckpointError, match=r"has shape \[4, 8\], its settings build \[5, 8\]"):
        check_contents(tmp_path / "d.ckpt", checkpoint)


HOSTILE = {  # name: (class, hyperparameters); each file holds one small tensor
    "cnn-4096x2-k63": ("WindowClassifier", {"widths": [4096, 4096], "kernel_size": 63}),  # 1.1 G weights: 4.4 GB
    "cnn-4096x16": ("WindowClassifier", {"widths": [4096] * 16, "kernel_size": 3}),  # 3.0 GB
    "dense-4096x16": ("HandcraftedClassifier", {"widths": [4096] * 16}),  # 1.0 GB
}


def hostile_checkpoints(folder: Path) -> dict[str, Path]:
    """Tiny files (a few KB) whose settings would build models of gigabytes."""
    files = {}
    for name, (cls, settings) in HOSTILE.items():
        hp = {"genres": GENRES, "frontend": FrontEndConfig().as_dict(), **settings}
        files[name] = folder / f"{name}.ckpt"
        torch.save({"genre_cnn_class": cls, "hyper_parameters": hp, "state_dict": {"model.net.x": torch.zeros(10)}},
                   files[name])
    return files


def test_tiny_hostile_checkpoints_are_refused_without_allocating_the_model(tmp_path):
    files = hostile_checkpoints(tmp_path)
    assert all(p.stat().st_size < 8000 for p in files.values())
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30,) * 2)  # less than any of these models\n"
            "from genre_cnn.inference.predict import CheckpointError, load_model\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n        load_model(path)\n        print('loaded')\n"
            "    except CheckpointError as err:\n        print(err)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, files.values())], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    *lines, peak_kb = proc.stdout.splitlines()
    assert len(lines) == len(files) and all("its settings imply" in line for line in lines), lines
    assert int(peak_kb) < 1536 * 1024  # peak RSS under 1.5 GB
