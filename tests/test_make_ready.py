"""genre_cnn.training.make_ready's protocol pieces: the half split keeps every test clip out of training, the two halves
cover gtzan_unseen once, the sources are linked into one folder per genre, and the class-balanced head learns a
minority genre that the unweighted one drowns."""

from __future__ import annotations

import numpy as np

from genre_cnn.training.make_ready import HALVES, clip_number, fit_head, half_split, link_sources

KEYS = [f"rock/rock.{n:05d}.wav" for n in range(10)] + [f"rock/rock.{n:05d}.flac" for n in range(70, 100)] + \
       [f"jazz/jazz.{n:05d}.flac" for n in range(70, 100)]
UNSEEN = {k for k in KEYS if k.endswith(".flac")}


def test_the_two_halves_test_each_unseen_clip_once_and_never_train_on_it():
    tested = []
    for half in (0, 1):
        train, test = half_split(KEYS, UNSEEN, half)
        assert not set(train) & set(test)
        assert {clip_number(KEYS[i]) for i in test} == set(HALVES[half])
        assert all(KEYS[i] in UNSEEN for i in test) and sorted([*train, *test]) == list(range(len(KEYS)))
        tested += [KEYS[i] for i in test]
    assert sorted(tested) == sorted(UNSEEN)


def test_sources_are_linked_into_one_folder_per_genre(tmp_path):
    for source, name in (("a", "rock.00001.wav"), ("b", "rock.00090.flac"), ("b", "jazz.00070.flac")):
        (tmp_path / source / name.split(".")[0]).mkdir(parents=True, exist_ok=True)
        (tmp_path / source / name.split(".")[0] / name).write_bytes(b"x")
    dest = link_sources([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "all")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.*")) == [
        "jazz/jazz.00070.flac", "rock/rock.00001.wav", "rock/rock.00090.flac"]
    assert (dest / "rock" / "rock.00090.flac").resolve() == (tmp_path / "b" / "rock" / "rock.00090.flac").resolve()


def test_the_balanced_head_recalls_a_rare_genre():
    rng = np.random.default_rng(0)
    y = np.array([0] * 190 + [1] * 10)  # 19:1
    x = rng.normal(size=(200, 250)).astype(np.float32)
    x[:, 200] += 1.5 * y  # the rare genre shifts one tag logit: overlapping classes
    head = {"embedding": "tags", "widths": [], "dropout": 0.0, "steps": 300, "batch": 32, "label_smoothing": 0.0}
    import torch

    x_test = rng.normal(size=(400, 250)).astype(np.float32)
    y_test = np.array([0] * 200 + [1] * 200)
    x_test[:, 200] += 1.5 * y_test
    recall = {}
    for balanced in (False, True):
        model = fit_head(x, y, ["common", "rare"], {**head, "balanced": balanced}, seed=0)
        with torch.no_grad():
            pred = model.window_logits(torch.from_numpy(x_test))[:, 0].argmax(-1).numpy()
        recall[balanced] = float(np.mean(pred[y_test == 1] == 1))
    assert recall[True] > recall[False] + 0.2, recall


def test_an_ensemble_averages_the_heads_of_consecutive_seeds_and_survives_a_checkpoint(tmp_path):
    import torch

    from genre_cnn.models.families.musicnn import MusicnnClassifier

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 250)).astype(np.float32), np.arange(60) % 3
    head = {"embedding": "both", "widths": [16], "dropout": 0.5, "balanced": True, "steps": 20, "batch": 8,
            "label_smoothing": 0.0}
    genres = ["a", "b", "c"]
    probe = torch.from_numpy(rng.normal(size=(5, 250)).astype(np.float32))
    singles = [fit_head(x, y, genres, head, seed) for seed in (3, 4, 5)]
    ensemble = fit_head(x, y, genres, {**head, "members": 3}, seed=3)
    with torch.no_grad():
        singles = [model(probe) for model in singles]  # (5, 3) each
        assert not torch.allclose(singles[0], singles[1], atol=1e-3)  # the members differ
        torch.testing.assert_close(ensemble(probe), torch.stack(singles).mean(0), atol=1e-5, rtol=1e-5)
        torch.save(ensemble.state_dict(), tmp_path / "head.pt")
        again = MusicnnClassifier(genres, embedding="both", widths=(16,), dropout=0.5, members=3).eval()
        again.load_state_dict(torch.load(tmp_path / "head.pt", weights_only=True))
        torch.testing.assert_close(again(probe), ensemble(probe))
