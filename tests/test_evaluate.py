"""Classification metrics agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from emotionkit.evaluate import classification_metrics


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
