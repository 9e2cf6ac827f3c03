"""Scores for vote-distribution and multi-label targets, beside the single-class ones.

- `distribution` (soft labels): how far the predicted distribution is from the votes: KL
  (votes || predicted, nats), total variation, Jensen-Shannon (nats, symmetric and finite
  even where the model gives a class zero), and EMD where the classes are ordered
  (`data.ordinal`). Accuracy elsewhere
  is against the majority vote (the argmax of the votes).
- `multi_label`: each class decided by its own sigmoid against a per-class threshold chosen
  on the validation split (the F1-best one); exact-match accuracy, micro/macro F1 and
  per-class precision, recall and F1 at those thresholds. A test split is scored with the
  validation thresholds, never its own.

All NumPy, on targets and logits: the same code scores a Keras model and an exported file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emotionkit.evaluate.metrics import distribution_distances, jensen_shannon, softmax

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def target_metrics(
    kind: str, logits: np.ndarray, targets: np.ndarray, class_names: list[str],
    thresholds: list[float] | None = None, ordinal: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The `distribution` or `multi_label` scores of a split's logits (`{}` for `single`).

    `thresholds`: the validation split's, for a test split; `None` chooses them here.
    """
    if kind not in ("distribution", "multi_label"):
        return {}
    if kind == "distribution":
        return {"distribution": distribution_metrics(targets, logits, ordinal)}
    thresholds = thresholds or choose_thresholds(targets, logits)
    return {"multi_label": multi_label_metrics(targets, logits, thresholds, class_names)}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def distribution_metrics(
    targets: np.ndarray, logits: np.ndarray, ordinal: bool = False
) -> dict[str, float]:
    """KL, TVD, Jensen-Shannon (and EMD, `ordinal`) between the votes and the softmax, image
    means."""
    probabilities = np.clip(softmax(logits.astype(np.float64)), 1e-12, 1.0)
    targets = targets.astype(np.float64)
    return {
        **distribution_distances(targets, probabilities, ordinal),
        "js": jensen_shannon(targets, probabilities),
    }


def choose_thresholds(targets: np.ndarray, logits: np.ndarray) -> list[float]:
    """Per class, the grid threshold with the best F1 on these (validation) rows.

    Ties go to the threshold nearest 0.5; a class without positives keeps 0.5.
    """
    probabilities = sigmoid(logits)
    chosen = []
    for column in range(targets.shape[1]):
        truth = targets[:, column] > 0.5
        if not truth.any():
            chosen.append(0.5)
            continue
        scores = [_f1(truth, probabilities[:, column] >= t) for t in THRESHOLD_GRID]
        best = max(scores)
        ties = [t for t, s in zip(THRESHOLD_GRID, scores, strict=True) if s == best]
        chosen.append(float(min(ties, key=lambda t: abs(t - 0.5))))
    return chosen


def multi_label_metrics(
    targets: np.ndarray, logits: np.ndarray, thresholds: list[float], class_names: list[str]
) -> dict[str, Any]:
    """Exact match, micro/macro F1 and per-class scores of sigmoid >= threshold decisions."""
    truth = targets > 0.5
    decided = sigmoid(logits) >= np.asarray(thresholds)[None, :]
    per_class = {
        name: {
            "threshold": thresholds[column],
            "precision": _ratio(
                (truth[:, column] & decided[:, column]).sum(), decided[:, column].sum()
            ),
            "recall": _ratio((truth[:, column] & decided[:, column]).sum(), truth[:, column].sum()),
            "f1": _f1(truth[:, column], decided[:, column]),
            "support": int(truth[:, column].sum()),
        }
        for column, name in enumerate(class_names)
    }
    present = [scores["f1"] for scores in per_class.values() if scores["support"] > 0]
    return {
        "exact_match": float((truth == decided).all(axis=1).mean()),
        "micro_f1": _f1(truth.ravel(), decided.ravel()),
        "macro_f1": float(np.mean(present)) if present else 0.0,
        "per_class": per_class,
    }


def _f1(truth: np.ndarray, decided: np.ndarray) -> float:
    true_positive = float((truth & decided).sum())
    denominator = float(truth.sum() + decided.sum())
    return 2 * true_positive / denominator if denominator else 0.0


def _ratio(part: float, whole: float) -> float:
    return float(part / whole) if whole else 0.0
