"""The face detectors by name, for `predict --detector` and `serve --detector`.

| name | what | needs |
|---|---|---|
| `mtcnn` | MTCNN on onnxruntime: turned and tilted faces, five landmarks | `emotionkit[faces]` |
| `haar` | OpenCV's frontal-face Haar cascade | nothing (OpenCV 4.x) |
| `none` | no detector: every image is classified whole | |
| `auto` | `mtcnn` when installed, else `haar` | |
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from emotionkit.errors import DataError
from emotionkit.predict.faces import Detection, FaceDetector, HaarFaceDetector
from emotionkit.predict.mtcnn import MtcnnFaceDetector, mtcnn_weights_dir

DETECTOR_NAMES = ("auto", "mtcnn", "haar", "none")


def resolve_detector_name(name: str, cascade: Path | None = None) -> str:
    """`auto` made concrete: `haar` with a cascade file, else `mtcnn` if installed, else `haar`."""
    if name not in DETECTOR_NAMES:
        raise DataError(
            f"unknown face detector {name!r}: choose one of {', '.join(DETECTOR_NAMES)}."
        )
    if cascade is not None and name not in ("auto", "haar"):
        raise DataError(f"--cascade is a Haar cascade file: it needs --detector haar, not {name}.")
    if name != "auto":
        return name
    return "haar" if cascade is not None or mtcnn_weights_dir() is None else "mtcnn"


def build_detector(
    name: str = "auto", cascade: Path | None = None, thread_safe: bool = False
) -> FaceDetector | None:
    """The detector called `name` (see the module table); None for `none`.

    Args:
        name: auto, mtcnn, haar or none.
        cascade: An OpenCV cascade XML for `haar` (OpenCV's frontal-face one by default).
        thread_safe: For callers that detect from several threads (the server): the Haar
            cascade is then one per thread (MTCNN's onnxruntime sessions are thread-safe).

    Raises:
        DataError: an unknown name, `mtcnn` not installed, or an unreadable cascade.
    """
    resolved = resolve_detector_name(name, cascade)
    if resolved == "none":
        return None
    if resolved == "mtcnn":
        return MtcnnFaceDetector()
    HaarFaceDetector(cascade)  # fails now, naming the file, rather than on the first image
    return PerThreadHaarDetector(cascade) if thread_safe else HaarFaceDetector(cascade)


class PerThreadHaarDetector:
    """A Haar detector that gives every calling thread its own `HaarFaceDetector`: OpenCV's
    `CascadeClassifier` keeps per-image buffers in the object."""

    name = HaarFaceDetector.name
    wants_rgb = HaarFaceDetector.wants_rgb
    crop_margin = HaarFaceDetector.crop_margin

    def __init__(self, cascade: Path | None = None) -> None:
        self.cascade = cascade
        self._local = threading.local()

    def __call__(self, gray: np.ndarray) -> list[Detection]:
        """The faces in `gray`, found with this thread's cascade (created on first use)."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = HaarFaceDetector(self.cascade)
        return detector(gray)
