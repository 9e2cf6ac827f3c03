"""Metrics logged during training, against scikit-learn and NumPy on a small fixture."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from emotionkit.training.metrics import (
    BalancedAccuracy,
    EarthMovers,
    KLDivergenceMetric,
    MultiLabelF1,
    TotalVariation,
    build_training_metrics,
)

K = 4


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    """Imbalanced labels (class 0 dominates, class 3 never true but sometimes predicted)."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 0, 1])
    logits = rng.normal(scale=2.0, size=(len(labels), K))
    soft = rng.dirichlet(np.ones(K), size=len(labels))
    soft[:3, 2] = 0.0  # exact zeros in the targets
    return {
        "labels": labels,
        "logits": logits.astype("float32"),
        "one_hot": np.eye(K, dtype="float32")[labels],
        "soft": (soft / soft.sum(-1, keepdims=True)).astype("float32"),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def value(metric: Any) -> float:
    return float(keras.ops.convert_to_numpy(metric.result()))


def test_balanced_accuracy_matches_scikit_learn_over_several_batches(batch: Any) -> None:
    metric = BalancedAccuracy()
    predicted = batch["logits"].argmax(-1)
    assert 3 in predicted and 3 not in batch["labels"]  # the fixture covers that case
    metric.update_state(batch["one_hot"][:5], batch["logits"][:5])
    metric.update_state(batch["one_hot"][5:], batch["logits"][5:])

    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = balanced_accuracy_score(batch["labels"], predicted)
    assert value(metric) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    assert value(metric) == 0.0


def test_balanced_accuracy_honours_sample_weights(batch: Any) -> None:
    weights = np.linspace(0.2, 3.0, len(batch["labels"])).astype("float32")
    metric = BalancedAccuracy()
    metric.update_state(batch["one_hot"], batch["logits"], sample_weight=weights)
    predicted = batch["logits"].argmax(-1)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = balanced_accuracy_score(batch["labels"], predicted, sample_weight=weights)
    assert value(metric) == pytest.approx(expected, abs=1e-6)


def test_balanced_accuracy_takes_the_argmax_of_soft_targets(batch: Any) -> None:
    metric = BalancedAccuracy()
    metric.update_state(batch["soft"], batch["logits"])
    true, predicted = batch["soft"].argmax(-1), batch["logits"].argmax(-1)
    recalls = [(predicted[true == k] == k).mean() for k in np.unique(true)]
    assert value(metric) == pytest.approx(np.mean(recalls), abs=1e-6)


def test_top_k_accuracy_counts_the_true_class_among_the_k_best(batch: Any) -> None:
    (top3,) = [m for m in build_training_metrics("cross_entropy", top_k=3) if "top" in m.name]
    top3.update_state(batch["one_hot"], batch["logits"])
    best3 = np.argsort(-batch["logits"], axis=-1)[:, :3]
    expected = np.mean([label in row for label, row in zip(batch["labels"], best3, strict=True)])
    assert top3.name == "top3_accuracy"
    assert value(top3) == pytest.approx(expected)


def ref_tvd(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(_softmax(z) - t).sum(-1)


def ref_kl(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    p = _softmax(z.astype(np.float64))
    return np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0) / p), 0.0).sum(-1)


def ref_emd(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(np.cumsum(_softmax(z), -1) - np.cumsum(t, -1)).sum(-1)


@pytest.mark.parametrize(
    ("metric_class", "reference"),
    [(TotalVariation, ref_tvd), (KLDivergenceMetric, ref_kl), (EarthMovers, ref_emd)],
)
@pytest.mark.parametrize("targets", ["one_hot", "soft"])
def test_distribution_metrics_match_numpy(
    batch: Any, metric_class: Any, reference: Any, targets: str
) -> None:
    metric = metric_class()
    t = batch[targets]
    metric.update_state(t[:7], batch["logits"][:7])
    metric.update_state(t[7:], batch["logits"][7:])  # mean over all samples, not batches
    expected = reference(t.astype(np.float64), batch["logits"].astype(np.float64)).mean()
    assert value(metric) == pytest.approx(expected, rel=1e-5)


def test_emd_counts_class_steps_on_the_ordered_axis() -> None:
    metric = EarthMovers()
    # all mass predicted on class 0 (logit gap 100), target all on class 2: two steps
    metric.update_state(np.eye(K, dtype="float32")[[2]], np.array([[100.0, 0, 0, 0]], "float32"))
    assert value(metric) == pytest.approx(2.0, abs=1e-5)


def test_metric_names_stay_what_the_checkpoints_monitor() -> None:
    names = [m.name for m in build_training_metrics("focal", top_k=2)]
    assert names == ["accuracy", "macro_f1", "top2_accuracy", "balanced_accuracy"]
    soft = [m.name for m in build_training_metrics("mse", top_k=2)]
    assert soft == [*names, "tvd", "kl"]  # EMD needs ordered classes (data.ordinal)
    ordered = [m.name for m in build_training_metrics("mse", top_k=2, ordinal=True)]
    assert ordered == [*names, "tvd", "kl", "emd"]


@pytest.mark.parametrize(
    "metric_class",
    [BalancedAccuracy, TotalVariation, KLDivergenceMetric, EarthMovers, MultiLabelF1],
)
def test_metrics_round_trip_through_keras_serialization(metric_class: Any) -> None:
    metric = metric_class()
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is metric_class
    assert restored.get_config() == metric.get_config()


def test_multilabel_f1_thresholds_logits_at_zero_like_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    targets = (rng.uniform(size=(16, K)) < 0.4).astype("float32")
    logits = rng.normal(size=(16, K)).astype("float32")
    metrics = {m.name: m for m in build_training_metrics("bce", top_k=2)}
    for average in ("micro", "macro"):
        metric = metrics[f"multilabel_{average}_f1"]
        metric.update_state(targets, logits)
        expected = f1_score(targets, logits > 0, average=average, zero_division=0)
        assert value(metric) == pytest.approx(expected, abs=1e-5)
