"""The published numbers: every accuracy, macro-F1 and per-genre precision/recall comes from
`metrics_from_confusion`, checked here against scikit-learn computed from the predictions themselves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from genre_cnn.training.report import metrics_from_confusion

GENRES = ["blues", "classical", "country", "disco", "hiphop"]


def predictions_of(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) with exactly the counts of `confusion` (rows = true genre)."""
    pairs = [(t, p) for (t, p), n in np.ndenumerate(confusion) for _ in range(n)]
    y_true, y_pred = zip(*pairs)
    return np.array(y_true), np.array(y_pred)


def sklearn_metrics(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> dict:
    """The same metrics, independently: scikit-learn over every class (absent ones included, scored 0)."""
    labels = list(range(n))
    kw = {"labels": labels, "zero_division": 0}
    return {
        "clip_acc": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro", **kw),
        "precision": precision_score(y_true, y_pred, average=None, **kw),
        "recall": recall_score(y_true, y_pred, average=None, **kw),
        "support": np.bincount(y_true, minlength=n),
    }


def check_against_sklearn(confusion: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    ours = metrics_from_confusion(confusion, GENRES)
    ref = sklearn_metrics(y_true, y_pred, len(GENRES))
    assert ours["clips"] == len(y_true)
    assert ours["clip_acc"] == pytest.approx(ref["clip_acc"], abs=1e-12)
    assert ours["macro_f1"] == pytest.approx(ref["macro_f1"], abs=1e-12)
    assert list(ours["per_genre"]) == GENRES
    for g, precision, recall, support in zip(GENRES, ref["precision"], ref["recall"], ref["support"]):
        assert ours["per_genre"][g] == pytest.approx({"precision": precision, "recall": recall, "support": support},
                                                     abs=1e-12), g
    assert ours["confusion"] == confusion.tolist()
    return ours


def test_hand_made_confusion_with_an_unpredicted_and_an_unsupported_genre():
    confusion = np.array([  # rows = true genre, columns = predicted genre
        [5, 1, 0, 2, 0],  # blues
        [0, 6, 0, 1, 0],  # classical
        [2, 1, 0, 3, 0],  # country: never predicted (column of zeros), so precision and F1 are 0
        [1, 0, 0, 4, 2],  # disco
        [0, 0, 0, 0, 0],  # hiphop: no test clip (row of zeros), yet predicted twice: recall 0, precision 0
    ])
    y_true, y_pred = predictions_of(confusion)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, labels=list(range(len(GENRES)))), confusion)
    ours = check_against_sklearn(confusion, y_true, y_pred)
    # spelled out, so that a wrong reference call cannot make both sides agree
    assert ours["clip_acc"] == pytest.approx(15 / 28)
    assert ours["per_genre"]["blues"]["precision"] == pytest.approx(5 / 8)  # column: 5 of 8 predicted blues
    assert ours["per_genre"]["blues"]["recall"] == pytest.approx(5 / 8)
    assert ours["per_genre"]["classical"] == pytest.approx({"precision": 6 / 8, "recall": 6 / 7, "support": 7})
    assert ours["per_genre"]["country"] == {"precision": 0.0, "recall": 0.0, "support": 6}
    assert ours["per_genre"]["hiphop"] == {"precision": 0.0, "recall": 0.0, "support": 0}
    f1 = [5 / 8, 2 * (6 / 8) * (6 / 7) / (6 / 8 + 6 / 7), 0.0, 2 * (4 / 10) * (4 / 7) / (4 / 10 + 4 / 7), 0.0]
    assert ours["macro_f1"] == pytest.approx(np.mean(f1))  # every genre counts, absent ones as 0


@pytest.mark.parametrize("seed", range(5))
def test_random_predictions_agree_with_sklearn(seed):
    """Real-looking predictions: mostly right, unbalanced classes, confusion built from y_true/y_pred."""
    rng = np.random.default_rng(seed)
    n = len(GENRES)
    y_true = rng.choice(n, size=int(rng.integers(20, 200)), p=rng.dirichlet(np.ones(n)))
    right = rng.random(y_true.size) < rng.uniform(0.3, 0.9)
    y_pred = np.where(right, y_true, rng.choice(n, size=y_true.size, p=rng.dirichlet(np.ones(n))))
    confusion = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    check_against_sklearn(confusion, y_true, y_pred)
