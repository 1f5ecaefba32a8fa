"""The open-set detector (genre_cnn.models.openset) on small generated embeddings: its maths, its rule, its export.

    .venv/bin/python -m pytest tests/test_openset.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_cnn.models.openset import VERDICTS, OpenSetDetector, fit_detector, fold_of, verdict_names

CLASSES, PER_CLASS, DIM = 4, 40, 250


def music_clusters(seed: int = 0, per_class: int = PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Four genres, Gaussian clusters around well-separated means in 250-d: (N, 250) float32, labels (N,)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (CLASSES, DIM))
    labels = np.repeat(np.arange(CLASSES), per_class)
    return (centres[labels] + rng.normal(0, 1, (len(labels), DIM))).astype(np.float32), labels


def non_music(seed: int = 1, n: int = 80) -> np.ndarray:
    """A cluster of its own, away from the music: (n, 250)."""
    rng = np.random.default_rng(seed)
    return (np.random.default_rng(7).normal(0, 3, DIM) + rng.normal(0, 1, (n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> OpenSetDetector:
    x, y = music_clusters()
    return fit_detector(x, y, non_music(), music_gate=True)


def run(det: OpenSetDetector, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        return tuple(t.numpy() for t in det(torch.from_numpy(np.asarray(x, np.float32))))


def test_new_music_is_music_and_far_points_are_not(fitted):
    fresh, _ = music_clusters(seed=5)  # the same genres, clips never seen
    familiarity, _, verdict = run(fitted, fresh)
    assert np.mean(verdict == 0) >= 0.9  # the rule keeps 97.5% of training music; new clips of it nearly as many
    assert np.median(familiarity) > 0.2
    far = fresh[:5] + 40.0  # far from every genre, on no side the negatives taught
    familiarity, _, verdict = run(fitted, far)
    assert (verdict != 0).all()
    assert np.allclose(familiarity, 1 / (PER_CLASS * CLASSES + 1))  # beyond every reference: the smallest p-value


def test_non_music_like_the_negatives_is_not_music(fitted):
    _, music, verdict = run(fitted, non_music(seed=3, n=30))
    assert (verdict == VERDICTS.index("not music")).all()
    assert (music < 0.5).all()
    assert verdict_names(verdict[:1]) == ["not music"]


def test_familiarity_is_the_conformal_p_value_of_the_distance(fitted):
    x, _ = music_clusters(seed=6, per_class=5)
    with torch.no_grad():
        d = fitted.distance(torch.from_numpy(x)).double().numpy()
        familiarity = fitted.familiarity(torch.from_numpy(d)).numpy()
    ref = fitted.references.double().numpy()
    expected = [(1 + np.sum(ref >= di)) / (1 + len(ref)) for di in d]
    np.testing.assert_allclose(familiarity, expected)
    with torch.no_grad():  # a reference itself counts as "at least as far" (the references are sorted, distinct)
        at_refs = fitted.familiarity(fitted.references[[0, 10]]).numpy()
    np.testing.assert_allclose(at_refs, [(1 + len(ref)) / (1 + len(ref)), (1 + len(ref) - 10) / (1 + len(ref))])


def test_distance_is_the_smallest_mahalanobis_distance(fitted):
    x, _ = music_clusters(seed=8, per_class=2)
    z = (x.astype(np.float64) - fitted.mean.double().numpy()) / fitted.std.double().numpy()
    p = fitted.precision.double().numpy()
    expected = [min(np.sqrt((zi - m) @ p @ (zi - m)) for m in fitted.class_means.double().numpy()) for zi in z]
    with torch.no_grad():
        got = fitted.distance(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)  # float32 sums over 250 dimensions


def test_the_rule_keeps_its_share_of_the_training_music_out_of_fold(fitted):
    ref = fitted.references.numpy()
    assert np.mean(ref <= fitted.max_distance.item()) == pytest.approx(0.975, abs=1 / len(ref))
    assert fitted.music_floor.item() > 0.5  # separable generated clusters: the training music's P(music) is high
    x, y = music_clusters()
    assert fit_detector(x, y).music_floor.item() == 0  # the gate only when asked (and with negatives)


def test_fitting_is_deterministic(fitted):
    x, y = music_clusters()
    a = fitted.state_dict()
    b = fit_detector(x, y, non_music(), music_gate=True).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_without_negatives_a_rejected_input_is_unfamiliar():
    x, y = music_clusters()
    det = fit_detector(x, y)
    _, music, verdict = run(det, x[:3] + 40.0)
    assert (music == 0.5).all() and (verdict == VERDICTS.index("unfamiliar")).all()


def test_folds_are_stratified():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2])
    assert fold_of(labels, 2).tolist() == [0, 1, 0, 0, 1, 0, 1, 0, 0]


def test_state_dict_round_trip_rebuilds_the_detector(fitted):
    clone = OpenSetDetector(classes=CLASSES, references=fitted.references.numel(), part="both")
    clone.load_state_dict(fitted.state_dict())
    x = np.concatenate([music_clusters(seed=4, per_class=3)[0], non_music(n=3)])
    for a, b in zip(run(fitted, x), run(clone, x)):
        np.testing.assert_array_equal(a, b)


def test_onnx_export_agrees_with_torch(fitted, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    x = np.concatenate([music_clusters(seed=2, per_class=4)[0], non_music(seed=4, n=6), music_clusters(seed=3)[0][:4]
                        + 40.0])
    path = tmp_path / "detector.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(fitted, (torch.from_numpy(x[:2]),), dynamo=True, verbose=False,
                                input_names=["embedding"], output_names=["familiarity", "music", "verdict"],
                                dynamic_shapes={"x": {0: batch}})
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path))
    familiarity, music, verdict = session.run(None, {"embedding": x})
    want = run(fitted, x)
    np.testing.assert_allclose(familiarity, want[0], atol=1.5 / fitted.references.numel())  # one reference apart
    np.testing.assert_allclose(music, want[1], atol=1e-5)
    assert (verdict == want[2]).all() and verdict.dtype == np.int64
