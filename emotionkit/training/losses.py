"""Training losses on logits (`train.loss`): cross-entropy, focal, soft-label and multi-label.

Every loss takes the model's logits (N, K) and float targets (N, K): one-hot, smoothed or
distributions such as FER+ vote shares. They compute in float32 even under mixed precision
(softmax and log of bfloat16 logits keep ~3 significant digits), through `keras.ops` so that
the same code runs on JAX and TensorFlow, and they round-trip through `get_config`, so a
`.keras` file saved with its compile information reloads. Class weights from
`data.balance: class_weights` arrive as Keras sample weights and work with all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from emotionkit.data.pipeline import class_weights_from_counts
from emotionkit.errors import RecipeError
from emotionkit.training.registries import LOSSES

if TYPE_CHECKING:
    from emotionkit.training.spec import LossSpec

# Stands in for log(0) where a target is exactly 0: the term is then 0 * finite = 0.
_TINY = 1e-30


def _float32(x: Any) -> Any:
    return ops.cast(x, "float32")


def smooth_labels(targets: Any, label_smoothing: float) -> Any:
    """Mix targets with the uniform distribution: `targets * (1 - s) + s / K`."""
    if not label_smoothing:
        return targets
    num_classes = ops.shape(targets)[-1]
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes


def kl_divergence_per_sample(targets: Any, logits: Any) -> Any:
    """KL(targets || softmax(logits)) per sample, with 0 * log 0 = 0.

    Uses `log_softmax` rather than `log(softmax)`: no log(0) for a confident wrong logit.
    """
    targets, logits = _float32(targets), _float32(logits)
    log_targets = ops.log(ops.maximum(targets, _TINY))
    return ops.sum(targets * (log_targets - ops.log_softmax(logits, axis=-1)), axis=-1)


class LogitsLoss(keras.losses.Loss):
    """Base of our losses: float32 targets and logits in, one loss per sample out.

    Keras reduces the per-sample values (mean over the batch) and applies sample weights.
    """

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size") -> None:
        super().__init__(name=name, reduction=reduction, dtype="float32")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.per_sample(_float32(y_true), _float32(y_pred))

    def per_sample(self, targets: Any, logits: Any) -> Any:
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="emotionkit")
class FocalLoss(LogitsLoss):
    """Softmax focal loss (Lin et al. 2017): `-sum_k alpha_k (1 - p_k)^gamma t_k log p_k`.

    The (1 - p)^gamma factor down-weights classes the model already predicts confidently, so
    the gradient concentrates on hard (often minority-class) examples; gamma = 0 and no
    alpha is cross-entropy. Targets may be soft (smoothed, distributions): each class term is
    weighted by its target mass, as in Keras' `CategoricalFocalCrossentropy`, which takes a
    single alpha only.

    Args:
        gamma: focusing exponent, >= 0.
        alpha: one weight per class, or `None` for none.
        label_smoothing: mixes the targets with the uniform distribution first.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        name: str = "focal",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else [float(a) for a in alpha]
        self.label_smoothing = float(label_smoothing)

    def per_sample(self, targets: Any, logits: Any) -> Any:
        targets = smooth_labels(targets, self.label_smoothing)
        log_probs = ops.log_softmax(logits, axis=-1)
        # The floor keeps d/dp (1 - p)^gamma finite for gamma < 1 when p rounds to 1.
        remaining = ops.maximum(1.0 - ops.exp(log_probs), keras.config.epsilon())
        weights = ops.power(remaining, self.gamma)
        if self.alpha is not None:
            weights = weights * ops.convert_to_tensor(self.alpha, dtype="float32")
        return -ops.sum(weights * targets * log_probs, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="emotionkit")
class KLDivergenceLoss(LogitsLoss):
    """KL(target || softmax(logits)): cross-entropy minus the target's entropy.

    Same gradient as soft-target cross-entropy, but 0 when the prediction matches the target
    distribution, so the logged loss reads as a distance (distribution learning, e.g. FER+).
    """

    def __init__(self, name: str = "kl_divergence", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def per_sample(self, targets: Any, logits: Any) -> Any:
        return kl_divergence_per_sample(targets, logits)


@keras.saving.register_keras_serializable(package="emotionkit")
class DistributionMSE(LogitsLoss):
    """Mean over classes of (softmax(logits) - target)^2 (Keras' MSE convention)."""

    def __init__(self, name: str = "distribution_mse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def per_sample(self, targets: Any, logits: Any) -> Any:
        return ops.mean(ops.square(ops.softmax(logits, axis=-1) - targets), axis=-1)


@keras.saving.register_keras_serializable(package="emotionkit")
class DistributionL1(LogitsLoss):
    """Mean over classes of |softmax(logits) - target| (= 2 TVD / K): robust to noisy votes."""

    def __init__(self, name: str = "distribution_l1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def per_sample(self, targets: Any, logits: Any) -> Any:
        return ops.mean(ops.abs(ops.softmax(logits, axis=-1) - targets), axis=-1)


def focal_alpha(
    alpha: str | list[float] | None,
    class_counts: Sequence[int] | None,
    num_classes: int | None,
) -> list[float] | None:
    """`train.loss.alpha` as one weight per class.

    `auto` reuses `data.balance: class_weights`' inverse-frequency weights (average weight
    per train image 1), so focal alpha and class weights mean the same numbers.

    Raises:
        RecipeError: `auto` without class counts, or a list whose length is not the number
            of classes.
    """
    if alpha is None:
        return None
    if alpha == "auto":
        if class_counts is None:
            raise RecipeError(
                "train.loss.alpha: auto weighs classes by their train frequency, but no class "
                "counts were given (compile_model(class_counts=...)); set train.loss.alpha "
                "to null or to one weight per class."
            )
        weights = class_weights_from_counts(list(class_counts))
        alpha = [weights[index] for index in range(len(class_counts))]
    if num_classes is not None and len(alpha) != num_classes:
        raise RecipeError(
            f"train.loss.alpha has {len(alpha)} weights but the model has {num_classes} "
            "classes: give one weight per class, in data.classes order (or use auto)."
        )
    return [float(weight) for weight in alpha]


def build_loss(
    spec: LossSpec,
    class_counts: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Any:
    """The recipe's `train.loss` as a Keras loss on logits.

    Args:
        spec: the recipe's `train.loss`.
        class_counts: train images per class (needed by focal `alpha: auto`).
        num_classes: the model's output width, to check a per-class `alpha` list.

    Returns:
        A `keras.losses.Loss`.

    Raises:
        RecipeError: a focal `alpha` that does not fit the classes.

    Example:
        >>> loss = build_loss(LossSpec(name="focal", alpha="auto"), class_counts=[90, 10])
        >>> loss(keras.ops.one_hot([0, 1], 2), keras.ops.zeros((2, 2)))
    """
    alpha = focal_alpha(spec.alpha, class_counts, num_classes) if spec.name == "focal" else None
    return LOSSES.get(spec.name).build(spec, alpha)
