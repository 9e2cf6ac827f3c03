"""Classification metrics agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from emotionkit.evaluate import classification_metrics
from emotionkit.evaluate.metrics import (
    evaluation_metrics,
    softmax,
)


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + np.eye(4)[labels] * 1.2
    names = ["a", "b", "c", "d"]
    result = classification_metrics(labels, logits, names)
    predicted = logits.argmax(-1)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert result["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"))
    np.testing.assert_array_equal(
        result["confusion_matrix"], skm.confusion_matrix(labels, predicted)
    )
    recall = skm.recall_score(labels, predicted, average=None)
    assert [result["per_class"][n]["recall"] for n in names] == pytest.approx(recall)


def test_never_predicted_class_counts_as_zero_f1() -> None:
    labels = np.array([0, 0, 1, 1])
    logits = np.array([[1.0, 0], [1, 0], [1, 0], [0, 1]])
    result = classification_metrics(labels, logits, ["x", "y"])
    expected = skm.f1_score(labels, logits.argmax(-1), average="macro", zero_division=0)
    assert result["macro_f1"] == pytest.approx(expected)
    assert result["per_class"]["y"]["precision"] == 1.0


def _fixture(classes: int = 5, count: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes)) + np.eye(classes)[labels] * 1.5
    return labels, logits


def test_evaluation_metrics_match_sklearn() -> None:
    labels, logits = _fixture()
    names = [f"c{i}" for i in range(5)]
    result = evaluation_metrics(np.eye(5)[labels], logits, names)
    predicted = logits.argmax(-1)
    probabilities = softmax(logits)
    assert result["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, predicted)
    )
    for average in ("macro", "weighted", "micro"):
        expected = skm.f1_score(labels, predicted, average=average)
        assert result[f"{average}_f1"] == pytest.approx(expected)
    assert result["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    assert result["log_loss"] == pytest.approx(skm.log_loss(labels, probabilities), rel=1e-9)
    for k in ("2", "3"):
        expected = skm.top_k_accuracy_score(labels, logits, k=int(k), labels=range(5))
        assert result["top_k_accuracy"][k] == pytest.approx(expected)
    precision = skm.precision_score(labels, predicted, average=None)
    assert [result["per_class"][n]["precision"] for n in names] == pytest.approx(precision)
    assert "soft_label" not in result


def test_soft_label_distances_by_hand() -> None:
    targets = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    logits = np.log(np.array([[0.25, 0.5, 0.25], [0.0 + 1e-300, 0.5, 0.5]]))
    result = evaluation_metrics(targets, logits, ["a", "b", "c"], soft=True, ordinal=True)[
        "soft_label"
    ]
    # TVD: row 1 = 0.5*(.25+0+.25) = .25, row 2 = 0.5*(0+.5+.5) = .5
    assert result["tvd"] == pytest.approx(0.375)
    # KL: row 1 = .5 ln(.5/.25) + .5 ln(.5/.5) = .5 ln 2; row 2 = ln(1/.5) = ln 2
    assert result["kl"] == pytest.approx(0.75 * np.log(2.0))
    # EMD: row 1 |cdf gaps| = |.25-.5| + |.75-1| + 0 = .5; row 2 = 0 + .5 + 0 = .5
    assert result["emd"] == pytest.approx(0.5)
    unordered = evaluation_metrics(targets, logits, ["a", "b", "c"], soft=True)["soft_label"]
    assert "emd" not in unordered  # emotion classes have no order: no EMD by default
    # JS: row 1 m = (.375, .5, .125): .5[.5 ln(.5/.375)] + .5[.25 ln(.25/.375) + .25 ln 2]
    row1 = 0.5 * (0.5 * np.log(0.5 / 0.375)) + 0.5 * (
        0.25 * np.log(0.25 / 0.375) + 0.25 * np.log(2)
    )
    # row 2 m = (0, .25, .75): .5[ln(1/.75)] + .5[.5 ln(.5/.25) + .5 ln(.5/.75)]
    row2 = 0.5 * np.log(1 / 0.75) + 0.5 * (0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75))
    assert result["js"] == pytest.approx((row1 + row2) / 2)
