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

from emotionkit.predict.crops import CropPolicy, face_crop
from emotionkit.predict.detectors import build_detector
from emotionkit.predict.faces import Box, Detection, FaceDetector, HaarFaceDetector, is_face_crop
from emotionkit.predict.inputs import FrameResult, Skipped, predict_inputs, read_image
from emotionkit.predict.mtcnn import MtcnnFaceDetector
from emotionkit.predict.onnx_model import ModelInfo
from emotionkit.predict.predictor import Prediction, Predictor
from emotionkit.predict.tracking import FaceTracker, smooth_results

__all__ = [
    "Box",
    "CropPolicy",
    "Detection",
    "FaceDetector",
    "FaceTracker",
    "FrameResult",
    "HaarFaceDetector",
    "ModelInfo",
    "MtcnnFaceDetector",
    "Prediction",
    "Predictor",
    "Skipped",
    "build_detector",
    "face_crop",
    "is_face_crop",
    "predict_inputs",
    "read_image",
    "smooth_results",
]
