"""Evaluate stage: logits on a split -> accuracy, macro-F1, per-class scores, confusion matrix.

Computed in NumPy from predictions, so the same function scores a Keras model, a SavedModel
or an ONNX session, on either backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def predict_logits(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Logits and integer labels for every batch of a (images, one-hot labels) dataset."""
    logits, labels = [], []
    for images, one_hot in dataset.as_numpy_iterator():
        logits.append(np.asarray(model.predict_on_batch(images)))
        labels.append(one_hot.argmax(axis=-1))
    return np.concatenate(logits), np.concatenate(labels)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


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
