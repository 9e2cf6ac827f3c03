"""The model behind the server: one shared `Predictor`, and the JSON it answers with.

onnxruntime's `InferenceSession.run` is thread-safe, so one session serves every request.
OpenCV's `CascadeClassifier` is not (it keeps per-image buffers in the object), so each
worker thread gets its own Haar detector.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.bundled import PROVENANCE_KEYS
from emotionkit.predict import HaarFaceDetector, Predictor
from emotionkit.predict.faces import Box
from emotionkit.predict.predictor import FaceMode, Prediction
from emotionkit.serve.images import decode_image

# Metadata shown by GET /v1/model besides the training provenance; `recipe_yaml` (the
# whole recipe, kilobytes) is left out: `recipe_sha256` identifies it.
EXTRA_METADATA_KEYS = (
    "emotionkit_version",
    "export_parity_max_abs_diff",
    "pixel_mean",
    "pixel_std",
    "tta",  # `hflip`: the model averages each face with its mirror (export.tta)
)


class PerThreadHaarDetector:
    """A `FaceDetector` that gives every calling thread its own `HaarFaceDetector`."""

    def __init__(self, cascade: Path | None = None) -> None:
        self.cascade = cascade
        self._local = threading.local()

    def __call__(self, gray: np.ndarray) -> list[Box]:
        """The faces in `gray`, found with this thread's cascade (created on first use)."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = HaarFaceDetector(self.cascade)
        return detector(gray)


def load_predictor(model_path: Path) -> Predictor:
    """The server's one `Predictor`: `model_path`'s session and thread-safe face finding."""
    return Predictor(model_path, detector=PerThreadHaarDetector())


def model_id(predictor: Predictor) -> dict[str, str | None]:
    """What every answer names the model by: its bundled name (else file name) and recipe."""
    metadata = predictor.info.metadata
    return {
        "name": metadata.get("bundled_name") or predictor.info.path.name,
        "file": predictor.info.path.name,
        "recipe_sha256": metadata.get("recipe_sha256"),
    }


def model_description(predictor: Predictor, limits: dict[str, int]) -> dict[str, Any]:
    """The GET /v1/model answer: id, classes, the input the model takes, provenance, limits."""
    info = predictor.info
    keys = (*PROVENANCE_KEYS, *EXTRA_METADATA_KEYS)
    return {
        **model_id(predictor),
        "classes": list(info.class_names),
        "input": {
            "height": info.image_size,
            "width": info.image_size,
            "channels": info.channels,
            "range": info.metadata["input_range"],
        },
        "provenance": {key: info.metadata[key] for key in keys if key in info.metadata},
        "limits": limits,
    }


def classify_upload(
    predictor: Predictor, data: bytes, faces: FaceMode, max_pixels: int
) -> dict[str, Any]:
    """Decode an uploaded JPEG/PNG and classify its faces: the POST /v1/predict answer.

    Blocking (decoding, face finding and the model run are all CPU work): the app calls it
    in a worker thread. Raises `ImageError` for bytes that are not an acceptable image.
    """
    pixels = decode_image(data, max_pixels)
    predictions = predictor.predict(pixels, faces)
    height, width = pixels.shape[:2]
    return {
        "model": model_id(predictor),
        "image": {"width": width, "height": height},
        "faces": [face_json(p) for p in predictions if p.label is not None],
    }


def face_json(prediction: Prediction) -> dict[str, Any]:
    """One face: `box` [x, y, w, h] (null when the image was classified whole), label, scores."""
    return {
        "box": None if prediction.box is None else list(prediction.box),
        "label": prediction.label,
        "probabilities": prediction.probabilities,
    }
