"""Faces: what a detector returns, the Haar fallback detector, and pixel conversions.

The model was trained on face crops (FER-style: the face fills the frame), so a photo has
to be cut down to its faces first. `is_face_crop` decides when an image already is one;
a detector (`detectors.build_detector`: MTCNN, or OpenCV's Haar cascade here) finds faces in
the others as `Detection`s; `crops.face_crop` cuts each one out the way `predict` and
`serve` both do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import cv2.data
import numpy as np

from emotionkit.errors import DataError
from emotionkit.image_decode import convert_channels

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the input image
Point = tuple[float, float]  # x, y in pixels of the input image


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: (x, y, width, height) in the image's pixels.
        score: The detector's confidence (0-1), None when it gives none (Haar).
        landmarks: Left eye, right eye, nose, left and right mouth corner (left and right as
            seen in the image), when the detector finds them (MTCNN); else None.
    """

    box: Box
    score: float | None = None
    landmarks: tuple[Point, ...] | None = None


FaceDetector = Callable[[np.ndarray], Sequence[Box | Detection]]
"""A callable from an image to faces. It gets grey uint8 (H, W), or RGB uint8 (H, W, 3) when
it has `wants_rgb = True`; it returns `Detection`s or plain (x, y, w, h) boxes."""

DEFAULT_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
# An image whose longer side is at most this many model input sizes, and whose sides
# differ by at most CROP_MAX_ASPECT, is taken as a face crop: a 48 px model sees FER crops
# of 48-96 px whole, while a 640x480 photo, or a 96x48 strip, goes through the detector.
CROP_MAX_SIDE_FACTOR = 2
CROP_MAX_ASPECT = 1.5


def is_face_crop(shape: tuple[int, ...], image_size: int) -> bool:
    """Whether an image of `shape` is small and square enough to be a face crop already.

    Example:
        >>> is_face_crop((48, 48), 48), is_face_crop((480, 640, 3), 48)
        (True, False)
    """
    height, width = shape[:2]
    longer, shorter = max(height, width), max(1, min(height, width))
    return longer <= CROP_MAX_SIDE_FACTOR * image_size and longer / shorter <= CROP_MAX_ASPECT


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face cascade: no extra package, fast, but it misses
    turned and tilted faces and fires on face-like texture. Not thread-safe.

    Args:
        cascade: A cascade XML file; OpenCV's bundled frontal-face cascade by default.
        min_size: Smallest face side in pixels: smaller detections are mostly false
            positives, and too small to classify anyway.
    """

    name = "haar"
    wants_rgb = False
    # Context around a box, as a fraction of its side on each edge, to match FER2013's
    # framing: 1.5 %, measured by benchmarks/face_crop_calibration.py (the 10 % used
    # before cost 10 points of accuracy there).
    crop_margin = 0.015

    def __init__(self, cascade: Path | None = None, min_size: int = 32) -> None:
        path = DEFAULT_CASCADE if cascade is None else Path(cascade)
        if not hasattr(cv2, "CascadeClassifier"):
            raise DataError(
                f"OpenCV {cv2.__version__} has no Haar cascades (removed in 5.0): "
                "pip install 'opencv-python-headless>=4.8,<5', or use --detector mtcnn."
            )
        if not path.is_file():
            raise DataError(
                f"{path} not found: the face detector needs an OpenCV cascade XML file."
            )
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise DataError(f"{path} is not an OpenCV cascade classifier XML file.")
        self.min_size = min_size

    def __call__(self, gray: np.ndarray) -> list[Detection]:
        """Faces in `gray`, left to right; scale 1.1 / 5 neighbours are OpenCV's usual
        settings, trading a few missed faces for few false ones."""
        found = self.classifier.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size)
        )
        boxes = sorted((int(x), int(y), int(w), int(h)) for x, y, w, h in found)
        return [Detection(box) for box in boxes]


def as_pixels(image: np.ndarray) -> np.ndarray:
    """`image` as (H, W, C) with C in 1, 3, 4, uint8 or float32 0-255 pixel values."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise DataError(
            f"an image must be (H, W) or (H, W, C) with C = 1, 3 or 4; got shape {array.shape}."
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"image pixels must be numbers 0-255, got dtype {array.dtype}.")
    return array.astype(np.float32)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float 0-255 pixels rounded to uint8 (uint8 is returned as it is)."""
    return (
        pixels if pixels.dtype == np.uint8 else np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    )


def to_gray_uint8(pixels: np.ndarray) -> np.ndarray:
    """The (H, W) uint8 grayscale image a grey-input detector works on."""
    return to_uint8(convert_channels(pixels, 1)[..., 0])


def to_rgb_uint8(pixels: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image a colour-input detector works on."""
    return to_uint8(convert_channels(pixels, 3))


def find_faces(detector: FaceDetector, pixels: np.ndarray) -> list[Detection]:
    """Run `detector` on (H, W, C) pixels in the form it wants; faces left to right."""
    wants_rgb = getattr(detector, "wants_rgb", False)
    image = to_rgb_uint8(pixels) if wants_rgb else to_gray_uint8(pixels)
    found = [f if isinstance(f, Detection) else Detection(_as_box(f)) for f in detector(image)]
    return sorted(found, key=lambda face: face.box)


def _as_box(box: Sequence[float]) -> Box:
    x, y, w, h = (round(float(v)) for v in box)
    return x, y, w, h
