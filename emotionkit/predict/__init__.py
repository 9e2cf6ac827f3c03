"""Inference: classify faces in images and videos with an exported ONNX model.

Only onnxruntime, OpenCV and NumPy are imported on this path (never Keras, TensorFlow or
JAX), so `emotionkit predict` starts in about a second and the package can run where the
training stack is not installed. See docs/predict.md.

Example:
    >>> from emotionkit.predict import Predictor
    >>> predictor = Predictor("runs/quickstart")  # doctest: +SKIP
    >>> predictor.predict(face_48x48)[0].label  # doctest: +SKIP
    'happy'
"""

from __future__ import annotations

from emotionkit.predict.faces import Box, FaceDetector, HaarFaceDetector, is_face_crop
from emotionkit.predict.inputs import FrameResult, predict_inputs, read_image
from emotionkit.predict.onnx_model import ModelInfo
from emotionkit.predict.predictor import Prediction, Predictor

__all__ = [
    "Box",
    "FaceDetector",
    "FrameResult",
    "HaarFaceDetector",
    "ModelInfo",
    "Prediction",
    "Predictor",
    "is_face_crop",
    "predict_inputs",
    "read_image",
]
