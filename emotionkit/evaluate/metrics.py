"""Evaluate stage: logits on a split -> accuracy, macro-F1, per-class scores, confusion matrix.

Computed in NumPy from predictions, so the same function scores a Keras model, a SavedModel
or an ONNX session, on either backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotionkit.confusion import confusion_matrix


@dataclass(frozen=True)
class SplitLogits:
    """A model's logits on every image of a split, from one pass over it (`split_logits`)."""

    single_view: np.ndarray  # of each image itself: the first view of every TTA mode
    averaged: np.ndarray  # the mean over the TTA mode's views (the single view for `none`)
    targets: np.ndarray  # the dataset's target rows: one-hot, distributions or multi-hot

    @property
    def labels(self) -> np.ndarray:
        """Integer labels: the targets' argmax (the majority vote of soft targets)."""
        return self.targets.argmax(axis=-1)


def batch_logits(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """`model`'s logits of one NumPy batch; TTA views (strided slices) are made contiguous."""
    return lambda images: np.asarray(model.predict_on_batch(np.ascontiguousarray(images)))


def split_logits(model: Any, dataset: Any, tta: str = "none") -> SplitLogits:
    """Every view of `tta` (`emotionkit.tta`) of every batch of an (images, targets) dataset,
    scored once: the single-view and the view-averaged logits come from the same pass, since
    each mode's first view is the image itself."""
    from emotionkit.tta import mean_logits, views

    logits_of = batch_logits(model)
    single, averaged, targets = [], [], []
    for images, rows in dataset.as_numpy_iterator():
        per_view = [logits_of(view) for view in views(images, tta)]
        single.append(np.asarray(per_view[0], np.float32))  # as `mean_logits` of one view
        averaged.append(mean_logits(per_view))
        targets.append(rows)
    return SplitLogits(np.concatenate(single), np.concatenate(averaged), np.concatenate(targets))


def predict_logits(model: Any, dataset: Any, tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Logits (the mean over the `tta` views) and integer labels (the targets' argmax) for
    every batch of an (images, one-hot or distribution targets) dataset."""
    scored = split_logits(model, dataset, tta)
    return scored.averaged, scored.labels


def split_metrics(scored: SplitLogits, class_names: list[str], tta: str) -> dict[str, Any]:
    """`classification_metrics` of the mean logits over the views of `tta` (what an export
    with that `export.tta` scores); with views, the single-view accuracy and macro-F1 too,
    under `single_view`."""
    single_view = classification_metrics(scored.labels, scored.single_view, class_names)
    if tta == "none":
        return single_view
    return {
        **classification_metrics(scored.labels, scored.averaged, class_names),
        "tta": tta,
        "single_view": {key: single_view[key] for key in ("accuracy", "macro_f1")},
    }


def classification_metrics(
    labels: np.ndarray, logits: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 (mean over classes that occur), per-class P/R/F1/support, confusion.

    Per-class precision is 0 where a class is never predicted, as scikit-learn's
    `zero_division=0`, so macro-F1 matches `sklearn.metrics.f1_score(average="macro")`.
    """
    predicted = logits.argmax(axis=-1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    precision = np.divide(
        true_positive, predicted_count, out=np.zeros_like(true_positive), where=predicted_count > 0
    )
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    present = (support > 0) | (predicted_count > 0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "num_images": len(labels),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: the row max is subtracted first)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_k_accuracy(labels: np.ndarray, logits: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the k highest logits (ties: the first k)."""
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=-1).mean())


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """Expected calibration error of the top-1 prediction, as in Guo et al. (2017).

    Confidences fall into `bins` equal-width bins `(lo, hi]` on [0, 1]; the ECE is the mean
    over bins of |accuracy - mean confidence|, weighted by the fraction of images in each.
    15 bins is the paper's (and most libraries') default, so numbers are comparable.

    Args:
        probabilities: (N, K) predicted class distributions.
        labels: (N,) integer true classes.
        bins: number of equal-width confidence bins.

    Returns:
        The ECE in [0, 1]; 0.0 for no images.

    Example:
        >>> probabilities = np.array([[0.8, 0.2], [0.8, 0.2]])  # 80% confident, 100% right
        >>> round(expected_calibration_error(probabilities, np.array([0, 0])), 6)
        0.2
    """
    counts, accuracy, confidence = calibration_bins(probabilities, labels, bins)
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(np.sum(counts / total * np.abs(accuracy - confidence)))


def calibration_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: image count, accuracy and mean top-1 confidence (0 where empty)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"need (N, K) probabilities and (N,) labels, got "
                         f"{probabilities.shape} and {labels.shape}")  # fmt: skip
    confidence = probabilities.max(axis=1, initial=0.0)
    correct = (probabilities.argmax(axis=1) == labels) if len(labels) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left" puts a confidence equal to an edge in the lower bin: (lo, hi] bins.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(index, minlength=bins)
    zeros = np.zeros(bins)
    accuracy = np.divide(np.bincount(index, correct, bins), counts, out=zeros.copy(),
                         where=counts > 0)  # fmt: skip
    mean_confidence = np.divide(np.bincount(index, confidence, bins), counts, out=zeros,
                                where=counts > 0)  # fmt: skip
    return counts, accuracy, mean_confidence


def cohen_kappa(matrix: np.ndarray) -> float:
    """Agreement beyond chance between truth and prediction, from the confusion matrix."""
    total = matrix.sum()
    if total == 0:
        return 0.0
    observed = np.trace(matrix) / total
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum()) / total**2
    return float((observed - expected) / (1.0 - expected)) if expected < 1.0 else 1.0


def distribution_distances(
    targets: np.ndarray, probabilities: np.ndarray, ordinal: bool = False
) -> dict[str, float]:
    """Mean TVD and KL(target || predicted) in nats, as in training; with `ordinal` (the
    class axis is ordered, `data.ordinal`) the earth mover's distance too."""
    targets = targets.astype(np.float64)
    tvd = 0.5 * np.abs(probabilities - targets).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(targets > 0, targets * (np.log(targets) - np.log(probabilities)), 0.0)
    distances = {"tvd": float(tvd.mean()), "kl": float(terms.sum(axis=-1).mean())}
    if ordinal:
        cdf_gap = np.cumsum(probabilities, axis=-1) - np.cumsum(targets, axis=-1)
        distances["emd"] = float(np.abs(cdf_gap).sum(axis=-1).mean())
    return distances


def jensen_shannon(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean Jensen-Shannon divergence (nats): symmetric, and finite where either side is 0."""
    targets = targets.astype(np.float64)
    middle = (targets + probabilities) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        halves = [
            np.where(side > 0, side * np.log(side / middle), 0.0)
            for side in (targets, probabilities)
        ]
    return float((0.5 * halves[0].sum(axis=-1) + 0.5 * halves[1].sum(axis=-1)).mean())


def evaluation_metrics(
    targets: np.ndarray,
    logits: np.ndarray,
    class_names: list[str],
    soft: bool = False,
    ordinal: bool = False,
) -> dict[str, Any]:
    """Every number `emotionkit evaluate` reports, from (N, K) targets and (N, K) logits.

    Targets are distributions (one-hot for hard labels); the true class of a row is its argmax.
    Log-loss is the cross-entropy against the target rows, so it is sklearn's `log_loss` for
    hard labels. `soft` adds the distribution distances (EMD with `ordinal`).
    """
    labels = targets.argmax(axis=-1)
    base = classification_metrics(labels, logits, class_names)
    matrix = np.asarray(base["confusion_matrix"])
    support = matrix.sum(axis=1)
    recall = np.array([base["per_class"][name]["recall"] for name in class_names])
    f1 = np.array([base["per_class"][name]["f1"] for name in class_names])
    probabilities = softmax(logits)
    metrics: dict[str, Any] = {
        "num_images": base["num_images"],
        "accuracy": base["accuracy"],
        "top_k_accuracy": {
            str(k): top_k_accuracy(labels, logits, k) for k in (2, 3) if k < len(class_names)
        },
        "balanced_accuracy": float(recall[support > 0].mean()) if support.any() else 0.0,
        "macro_f1": base["macro_f1"],
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.any() else 0.0,
        "micro_f1": base["accuracy"],  # one label per image: micro P = micro R = accuracy
        "cohen_kappa": cohen_kappa(matrix),
        "log_loss": float(-(targets * log_softmax(logits)).sum(axis=-1).mean()),
        "ece": expected_calibration_error(probabilities, labels),
        "per_class": base["per_class"],
        "confusion_matrix": base["confusion_matrix"],
    }
    if soft:
        metrics["soft_label"] = {
            **distribution_distances(targets, probabilities, ordinal),
            "js": jensen_shannon(targets, probabilities),
        }
    return metrics
