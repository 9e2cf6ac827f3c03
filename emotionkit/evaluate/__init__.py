"""Evaluate stage: score any artifact (run, .keras, SavedModel, ONNX) on a split, and report.

`metrics` holds the NumPy metric functions (the confusion matrix and its renderer live
below both this stage and training, in `emotionkit.confusion`); the other modules load targets, run
test-time augmentation, draw plots, Grad-CAM, the HTML report and the run comparison.
"""

from emotionkit.confusion import confusion_png
from emotionkit.evaluate.metrics import classification_metrics, confusion_matrix, predict_logits

__all__ = ["classification_metrics", "confusion_matrix", "confusion_png", "predict_logits"]
