"""Metrics logged during training: accuracy, macro-F1, top-k, balanced accuracy, distances.

All take the model's logits and (N, K) targets (one-hot or distributions; the true class of a
soft target is its argmax). `accuracy` and `macro_f1` keep their names: checkpoints monitor
`val_macro_f1` / `val_accuracy`. With a soft-label loss the run also logs how far the
predicted distribution is from the target one: `tvd`, `kl` and `emd`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from emotionkit.training.losses import kl_divergence_per_sample
from emotionkit.training.registries import soft_label_losses


@keras.saving.register_keras_serializable(package="emotionkit")
class BalancedAccuracy(keras.metrics.Metric):
    """Mean per-class recall (scikit-learn's `balanced_accuracy_score`).

    Plain accuracy rewards predicting the majority class (FER2013's `happy` is 25 % of train,
    `disgust` 1.5 %); balanced accuracy weighs every class equally. Classes absent from the
    targets seen so far are left out of the mean, as scikit-learn does. The state is a
    (K, K) confusion matrix (rows: true class, columns: predicted), created on the first
    batch when K is known.
    """

    def __init__(self, name: str = "balanced_accuracy", dtype: Any = "float32") -> None:
        super().__init__(name=name, dtype=dtype)
        self.confusion: Any = None

    def _build(self, num_classes: int) -> None:
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype=self.dtype,
            name="confusion",
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = ops.convert_to_tensor(y_pred)
        num_classes = int(y_pred.shape[-1])
        if self.confusion is None:
            self._build(num_classes)
        true = ops.one_hot(ops.argmax(y_true, axis=-1), num_classes, dtype=self.dtype)
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), num_classes, dtype=self.dtype)
        if sample_weight is not None:
            weight = ops.cast(ops.reshape(sample_weight, (-1, 1)), self.dtype)
            true = true * weight
        # An outer product summed in float32, not a matmul: GPUs may run float32 matmuls in
        # TF32 (10-bit mantissa), which would round class-weighted counts.
        pairs = ops.expand_dims(true, 2) * ops.expand_dims(predicted, 1)
        self.confusion.assign_add(ops.sum(pairs, axis=0))

    def result(self) -> Any:
        if self.confusion is None:
            return ops.convert_to_tensor(0.0, dtype=self.dtype)
        support = ops.sum(self.confusion, axis=1)
        present = ops.cast(support > 0, self.dtype)
        recall = ops.diagonal(self.confusion) / ops.maximum(support, keras.config.epsilon())
        return ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def total_variation_distance(y_true: Any, y_pred: Any) -> Any:
    """0.5 * sum_k |p_k - q_k| per sample: the largest probability any event can differ by."""
    probabilities = ops.softmax(ops.cast(y_pred, "float32"), axis=-1)
    return 0.5 * ops.sum(ops.abs(probabilities - ops.cast(y_true, "float32")), axis=-1)


def earth_movers_distance(y_true: Any, y_pred: Any) -> Any:
    """sum_k |CDF_p(k) - CDF_q(k)| per sample: the 1-D Wasserstein distance, in class steps.

    It treats the class axis as ordered (moving mass from class 0 to 2 costs twice 0 to 1),
    so it means something for ordinal labels (intensity levels, valence bins); for nominal
    emotions it depends on the order of `data.classes`.
    """
    probabilities = ops.softmax(ops.cast(y_pred, "float32"), axis=-1)
    targets = ops.cast(y_true, "float32")
    gap = ops.cumsum(probabilities, axis=-1) - ops.cumsum(targets, axis=-1)
    return ops.sum(ops.abs(gap), axis=-1)


class _DistanceMean(keras.metrics.MeanMetricWrapper):
    """Mean over samples of a per-sample distance; the config is name and dtype only."""

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="emotionkit")
class TotalVariation(_DistanceMean):
    """Mean total variation distance between softmax(logits) and the target distribution."""

    def __init__(self, name: str = "tvd", dtype: Any = "float32") -> None:
        super().__init__(fn=total_variation_distance, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="emotionkit")
class KLDivergenceMetric(_DistanceMean):
    """Mean KL(target || softmax(logits)), in nats."""

    def __init__(self, name: str = "kl", dtype: Any = "float32") -> None:
        super().__init__(fn=kl_divergence_per_sample, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="emotionkit")
class EarthMovers(_DistanceMean):
    """Mean earth mover's distance over the ordered class axis (see `earth_movers_distance`)."""

    def __init__(self, name: str = "emd", dtype: Any = "float32") -> None:
        super().__init__(fn=earth_movers_distance, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="emotionkit")
class MultiLabelF1(keras.metrics.F1Score):
    """F1 of multi-label predictions from logits: class k is predicted when sigmoid > 0.5.

    Keras' F1Score thresholds probabilities; the model outputs logits, so they go through a
    sigmoid first (`threshold` must be in (0, 1]).
    """

    def __init__(self, average: str = "micro", name: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("threshold", None)
        super().__init__(
            average=average, threshold=0.5, name=name or f"multilabel_{average}_f1", **kwargs
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(y_true, keras.ops.sigmoid(y_pred), sample_weight)


def build_training_metrics(loss_name: str, top_k: int, ordinal: bool = False) -> list[Any]:
    """The metrics `compile_model` attaches, for `train.loss.name`, `train.top_k` and
    `data.ordinal` (EMD only where the class axis is ordered).

    Example:
        >>> [m.name for m in build_training_metrics("kl_divergence", top_k=2)]
        ['accuracy', 'macro_f1', 'top2_accuracy', 'balanced_accuracy', 'tvd', 'kl']
    """
    metrics = [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.F1Score(average="macro", name="macro_f1", dtype="float32"),
        keras.metrics.TopKCategoricalAccuracy(k=top_k, name=f"top{top_k}_accuracy"),
        BalancedAccuracy(),
    ]
    if loss_name in soft_label_losses():
        metrics += [TotalVariation(), KLDivergenceMetric()]
        metrics += [EarthMovers()] if ordinal else []
    if loss_name == "bce":  # multi-label: each class decided on its own
        metrics += [MultiLabelF1(average="micro"), MultiLabelF1(average="macro")]
    return metrics
