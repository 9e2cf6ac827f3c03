"""Evaluate stage: score any artifact (run, .keras, SavedModel, ONNX) on a split, and report.

`metrics` holds the NumPy metric functions (shared with training callbacks); the other
modules load targets, run test-time augmentation, draw plots, Grad-CAM, the HTML report and
the run comparison.
"""

from emotionkit.evaluate.metrics import classification_metrics, confusion_matrix, predict_logits

__all__ = ["classification_metrics", "confusion_matrix", "predict_logits"]
