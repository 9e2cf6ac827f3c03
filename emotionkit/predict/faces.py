"""Finding faces and turning pixels into model inputs, with OpenCV only.

The model was trained on face crops (FER-style: the face fills the frame), so a photo has
to be cut down to its faces first. `is_face_crop` decides when an image already is one;
`HaarFaceDetector` finds faces in the others; `to_model_pixels` converts a crop to the
model's channels and size the way training did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import cv2.data
import numpy as np

from emotionkit.errors import DataError

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the input image
FaceDetector = Callable[[np.ndarray], Sequence[Box]]
"""Any callable from a grayscale uint8 image (H, W) to face boxes (x, y, w, h)."""

DEFAULT_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
# An image whose longer side is at most this many model input sizes, and whose sides
# differ by at most CROP_MAX_ASPECT, is taken as a face crop: a 48 px model sees FER crops
# of 48-96 px whole, while a 640x480 photo, or a 96x48 strip, goes through the detector.
CROP_MAX_SIDE_FACTOR = 2
CROP_MAX_ASPECT = 1.5
# Extra context around a detected box, as a fraction of its side on each edge: Haar boxes
# are tighter than FER2013's crops, which include the forehead and chin.
FACE_MARGIN = 0.1


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
    """OpenCV's Viola-Jones frontal-face cascade: fast on a CPU, no extra download.

    Args:
        cascade: A cascade XML file; OpenCV's bundled frontal-face cascade by default.
        min_size: Smallest face side in pixels: smaller detections are mostly false
            positives, and too small to classify anyway.
    """

    def __init__(self, cascade: Path | None = None, min_size: int = 32) -> None:
        path = DEFAULT_CASCADE if cascade is None else Path(cascade)
        if not hasattr(cv2, "CascadeClassifier"):
            raise DataError(
                f"OpenCV {cv2.__version__} has no Haar cascades (removed in 5.0): "
                "pip install 'opencv-python-headless>=4.8,<5', or pass Predictor(detector=...)."
            )
        if not path.is_file():
            raise DataError(
                f"{path} not found: the face detector needs an OpenCV cascade XML file."
            )
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise DataError(f"{path} is not an OpenCV cascade classifier XML file.")
        self.min_size = min_size

    def __call__(self, gray: np.ndarray) -> list[Box]:
        """Face boxes in `gray`, left to right; scale 1.1 / 5 neighbours are OpenCV's
        usual settings, trading a few missed faces for few false ones."""
        found = self.classifier.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size)
        )
        return sorted((int(x), int(y), int(w), int(h)) for x, y, w, h in found)


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


def to_gray_uint8(pixels: np.ndarray) -> np.ndarray:
    """The (H, W) uint8 grayscale image the face detector works on."""
    gray = convert_channels(pixels, 1)[..., 0]
    return gray if gray.dtype == np.uint8 else np.clip(np.round(gray), 0, 255).astype(np.uint8)


def convert_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) RGB(A) or gray pixels -> (H, W, `channels`), with cv2's BT.601 weights
    (the same as tf.image.rgb_to_grayscale, which training used, to 3 decimals)."""
    have = pixels.shape[-1]
    codes = {
        (1, 3): cv2.COLOR_GRAY2RGB,
        (3, 1): cv2.COLOR_RGB2GRAY,
        (4, 1): cv2.COLOR_RGBA2GRAY,
        (4, 3): cv2.COLOR_RGBA2RGB,
    }
    if have == channels:
        return pixels
    converted = cv2.cvtColor(pixels, codes[(have, channels)])
    return converted[..., None] if converted.ndim == 2 else converted


def expand_box(box: Box, shape: tuple[int, ...], margin: float = FACE_MARGIN) -> Box:
    """`box` grown by `margin` x its size on each side, clipped to an image of `shape`."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(shape[1], x + w + dx), min(shape[0], y + h + dy)
    return left, top, right - left, bottom - top


def to_model_pixels(pixels: np.ndarray, channels: int, image_size: int) -> np.ndarray:
    """A crop -> float32 (size, size, channels), resized and rounded as training did.

    Training resized with tf.image.resize(antialias=True) and rounded to uint8: INTER_AREA
    is OpenCV's antialiased downscale; for upscaling, where antialiasing does nothing, the
    equivalent is plain bilinear (INTER_AREA would act like nearest-neighbour there).
    """
    converted = convert_channels(pixels, channels)
    height, width = converted.shape[:2]
    shrinking = height >= image_size and width >= image_size
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(converted, (image_size, image_size), interpolation=method)
    resized = resized.reshape(image_size, image_size, channels)
    return np.clip(np.round(resized), 0, 255).astype(np.float32)
