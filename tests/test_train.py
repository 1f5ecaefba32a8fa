"""End to end on the demo data: both models learn, the report and TensorBoard curves are written,
a run resumes from `last`, a seed reproduces results, and two-process DDP on CPU works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import DEMO_ARGS

REPO = Path(__file__).resolve().parents[1]


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every TensorBoard event file under log_dir: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {}
    for events in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_demo_trains_every_model_well_above_chance(demo_run):
    results = demo_run["results"]
    assert set(results) == {"cnn", "dense", "musicnn"}
    # four balanced classes: chance is 25%; musicnn's tags were learnt on real music, not on these synthetic sounds
    floor = {"cnn": 0.8, "dense": 0.8, "musicnn": 0.6}
    for name, r in results.items():
        assert r["clip_acc"] >= floor[name], f"{name}: {r['clip_acc']:.2f}"
        assert r["clips"] == 10 and len(r["per_genre"]) == 4  # 20% of 48 clips
    run = demo_run["root"] / "runs" / "demo"
    report = (run / "report.md").read_text()
    assert "| clip accuracy |" in report and "| cnn | dense | musicnn |" in report
    assert json.loads((run / "report.json").read_text())["cnn"]["clip_acc"] == results["cnn"]["clip_acc"]
    for name in results:
        assert (run / f"confusion_{name}.png").stat().st_size > 5000
        for ckpt in ("best.ckpt", "last.ckpt"):
            assert (demo_run["root"] / "checkpoints" / "demo" / name / ckpt).is_file()
    assert "data:" in (run / "config.yaml").read_text()


def test_tensorboard_has_the_curves_and_the_confusion_matrix(demo_run):
    log_dir = demo_run["root"] / "runs" / "demo" / "cnn"
    tags = scalars(log_dir)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "val/window_acc", "val/f1"):
        assert len(tags.get(tag, [])) >= 2, f"{tag} missing: {sorted(tags)}"
    assert any(t.startswith("lr-") for t in tags)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        images |= set(acc.Tags()["images"])
    assert "test/confusion_matrix" in images


def test_checkpoint_rebuilds_the_model_and_its_scaler(demo_run):
    from genre_cnn.models.families.dense import HandcraftedClassifier

    path = demo_run["root"] / "checkpoints" / "demo" / "dense" / "best.ckpt"
    ckpt = torch.load(path, weights_only=True, map_location="cpu")
    assert ckpt["genre_cnn_class"] == "HandcraftedClassifier"
    model = HandcraftedClassifier.from_hparams(ckpt["hyper_parameters"])  # the plain module, no Lightning
    model.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()})
    assert model.genres == ["ambient", "techno", "noise", "chiptune"]
    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.training.datamodule import GenreDataModule

    dm = GenreDataModule(Demo(), FeatureStore(clip_seconds=8.0), family="dense")
    dm.setup("fit")
    train = dm.features[dm.idx["train"]]  # fitted on the training split only, and saved with the weights
    np.testing.assert_allclose(model.mean.numpy(), train.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.std.numpy(), train.std(0, ddof=1), rtol=1e-3, atol=1e-4)


def short_run(root: Path, name: str, *extra: str) -> dict:
    from genre_cnn.training.train import main

    return main([*DEMO_ARGS, "--models", "[cnn]", "--output_root", str(root), "--run_name", name,
                 "--trainer.max_epochs", "2", "--patience", "100", *extra])


@pytest.mark.parametrize("streaming", ["false", "true"])  # training clips from the cache, or from LitData shards
def test_resume_from_last_continues_where_it_stopped(project_home, demo_dir, tmp_path, streaming):
    short_run(tmp_path, "r", "--data.streaming", streaming)
    last = tmp_path / "checkpoints" / "r" / "cnn" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert first["epoch"] == 1
    before = len(scalars(tmp_path / "runs" / "r" / "cnn")["train/loss"])
    (tmp_path / "runs" / "r" / "result_cnn.json").unlink()  # as if killed before the test step
    result = short_run(tmp_path, "r", "--resume", "true", "--trainer.max_epochs", "4", "--data.streaming",
                       streaming)["cnn"]
    after = torch.load(last, weights_only=True)
    assert after["epoch"] == 3 and after["global_step"] == 2 * first["global_step"]  # 4 epochs' steps, not 6
    # only epochs 3 and 4 were trained again: two more train/loss points, not four
    assert len(scalars(tmp_path / "runs" / "r" / "cnn")["train/loss"]) == before + 2
    assert result["epochs"] == 4


def test_a_run_started_before_an_option_existed_resumes_as_it_was(project_home, demo_dir, tmp_path):
    import yaml

    short_run(tmp_path, "old", "--cnn.stem", "0", "--cnn.pitch_shift", "0")
    config = tmp_path / "runs" / "old" / "config.yaml"
    conf = yaml.safe_load(config.read_text())
    for key in ("stem", "pitch_shift"):  # the config of a run started before these options existed
        del conf["cnn"][key]
    config.write_text(yaml.safe_dump(conf))
    (tmp_path / "runs" / "old" / "result_cnn.json").unlink()
    result = short_run(tmp_path, "old", "--resume", "true", "--trainer.max_epochs", "3")["cnn"]
    assert result["epochs"] == 3
    hparams = torch.load(tmp_path / "checkpoints" / "old" / "cnn" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["stem"] == 0 and hparams["pitch_shift"] == 0


def test_same_seed_same_results(project_home, demo_dir, tmp_path):
    one = ("--trainer.max_epochs", "1")
    a = short_run(tmp_path, "a", "--seed", "7", *one)["cnn"]
    b = short_run(tmp_path, "b", "--seed", "7", *one)["cnn"]
    assert a["confusion"] == b["confusion"] and a["window_acc"] == b["window_acc"]
    wa = torch.load(tmp_path / "checkpoints" / "a" / "cnn" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "checkpoints" / "b" / "cnn" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    short_run(tmp_path, "c", "--seed", "8", *one)
    wc = torch.load(tmp_path / "checkpoints" / "c" / "cnn" / "last.ckpt", weights_only=True)["state_dict"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_refit_trains_on_train_and_val_and_resume_keeps_the_run_config(project_home, demo_dir, tmp_path):
    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.inference.predict import latest_checkpoint, load_model
    from genre_cnn.training.datamodule import GenreDataModule
    from genre_cnn.training.train import main

    args = [*DEMO_ARGS, "--models", "[dense]", "--output_root", str(tmp_path), "--run_name", "rf",
            "--trainer.max_epochs", "3", "--refit", "true", "--data.crops_per_clip", "2"]
    result = main(args)["dense"]
    assert result["refit_epochs"] == 3 and result["checkpoint"].endswith("refit.ckpt")
    ckpt = tmp_path / "checkpoints" / "rf" / "dense" / "refit.ckpt"
    assert latest_checkpoint(tmp_path, "dense") == ckpt
    dm = GenreDataModule(Demo(), FeatureStore(clip_seconds=8.0), family="dense")
    dm.setup("fit")
    seen = dm.features[np.concatenate([dm.idx["train"], dm.idx["val"]])]  # the refit's scaler saw train + val
    model = load_model(ckpt)
    np.testing.assert_allclose(model.mean.numpy(), seen.mean(0), rtol=1e-4, atol=1e-4)
    # a resume with no options reads the run's own config (demo data, dense only), not the defaults
    (tmp_path / "runs" / "rf" / "result_dense.json").unlink()
    last = tmp_path / "checkpoints" / "rf" / "dense" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    resumed = main(["--resume", "true", "--output_root", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    assert list(resumed) == ["dense"] and resumed["dense"]["clips"] == result["clips"]
    assert last.stat().st_mtime_ns == stamp  # the finished validated fit was not trained further
    assert resumed["dense"]["epochs"] == result["epochs"]


def test_resume_of_a_finished_run_reuses_it_and_says_so(project_home, demo_dir, tmp_path, caplog):
    import logging

    first = short_run(tmp_path, "f")["cnn"]
    config = tmp_path / "runs" / "f" / "config.yaml"
    saved, last = config.read_bytes(), tmp_path / "checkpoints" / "f" / "cnn" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="genre_cnn"):
        again = short_run(tmp_path, "f", "--resume", "true", "--trainer.max_epochs", "3")["cnn"]
    notice = [r.getMessage() for r in caplog.records if "already trained" in r.getMessage()]
    assert len(notice) == 1 and "(2 epochs)" in notice[0]
    assert "--trainer.max_epochs 3 does not retrain a finished model" in notice[0]
    assert again["epochs"] == first["epochs"] == 2 and again["clip_acc"] == first["clip_acc"]
    assert config.read_bytes() == saved and last.stat().st_mtime_ns == stamp  # nothing rewritten, nothing trained


@pytest.mark.slow
def test_a_resumed_run_removes_the_half_written_checkpoints_of_the_killed_one(project_home, demo_dir, tmp_path):
    short_run(tmp_path, "k")
    folder = tmp_path / "checkpoints" / "k" / "cnn"
    stale = folder / ".best.ckpt.k1ll3d.tmp"  # what kill -9 during a checkpoint write leaves
    stale.write_bytes(b"half a checkpoint")
    (tmp_path / "runs" / "k" / "result_cnn.json").unlink()  # as if killed before the test step
    short_run(tmp_path, "k", "--resume", "true", "--trainer.max_epochs", "3")
    assert not stale.exists() and not list(folder.glob(".*.tmp"))


@pytest.mark.slow
def test_a_model_at_the_edges_of_every_bound_trains_and_becomes_a_loadable_default(project_home, demo_dir, tmp_path):
    from genre_cnn.bounds import MAX_LAYERS, TRAINING
    from genre_cnn.inference.predict import latest_checkpoint, load_model
    from genre_cnn.training.train import main

    edges = ["--dense.widths", str([4] * MAX_LAYERS), "--seed", str(2**32 - 1)]
    for key, side in (("lr", 1), ("weight_decay", 1), ("label_smoothing", 1)):
        edges += [f"--dense.{key}", str(TRAINING[key][side])]
    edges += ["--dense.dropout", "1.0"]
    main([*DEMO_ARGS, "--models", "[dense]", "--output_root", str(tmp_path), "--run_name", "edge",
          "--trainer.max_epochs", "1", *edges])
    model = load_model(latest_checkpoint(tmp_path))  # what predict, sort and serve load by default
    assert len(model.net.net) == 3 * MAX_LAYERS + 1



def test_a_fit_that_early_stopping_ended_is_not_trained_further_on_resume(project_home, demo_dir, tmp_path):
    from genre_cnn.training.train import main

    args = [*DEMO_ARGS, "--models", "[dense]", "--output_root", str(tmp_path), "--run_name", "es",
            "--trainer.max_epochs", "15", "--patience", "0", "--trainer.enable_progress_bar", "false"]
    first = main(args)["dense"]
    assert first["epochs"] < 15  # early stopping ended it
    last = tmp_path / "checkpoints" / "es" / "dense" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    (tmp_path / "runs" / "es" / "result_dense.json").unlink()  # as if killed before the test step
    again = main([*args, "--resume", "true", "--trainer.max_epochs", "20"])["dense"]
    assert last.stat().st_mtime_ns == stamp and again["epochs"] == first["epochs"]
    assert again["confusion"] == first["confusion"]


def test_a_run_saved_by_an_earlier_version_is_read_in_todays_options(tmp_path):
    """tests/fixtures/legacy/config.yaml is the config.yaml an earlier version saved for a demo run (flat data
    options: dataset, demo_clips_per_genre, clip_seconds, cache_workers, seed...): --resume reads it so."""
    import yaml

    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.training.runs import upgrade_config
    from genre_cnn.training.train import build_parser, check_settings

    saved = yaml.safe_load((REPO / "tests" / "fixtures" / "legacy" / "config.yaml").read_text())
    assert saved["data"]["dataset"] == "demo"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(upgrade_config(saved)))
    parser = build_parser()
    cfg = parser.parse_args(["--config", str(config)])
    _, dm = check_settings(parser, cfg)
    assert type(dm.source) is Demo and dm.source.clips_per_genre == 8 and dm.source.seconds == 8.0
    assert dm.store.clip_seconds == 8.0 and dm.store.workers == 1 and dm.split_policy.seed == 0
    assert dm.split_kind == "random" and dm.crops_per_clip == 4 and cfg.cnn.widths == (8,)
    assert upgrade_config(upgrade_config(saved)) == upgrade_config(saved)  # today's options are left as they are
