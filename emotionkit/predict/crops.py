"""The crop policy: how a detected face becomes the model's input, for `predict` and `serve`.

Training saw FER-style crops: square, the face filling the frame from forehead to chin, and
roughly upright. A detector's box is none of these exactly, so every face goes through
`face_crop`: the box is grown by a margin (per detector: its boxes are tighter or looser than
a FER crop), made square about its centre, and, when the detector found the eyes, turned so
that they are level. Parts of the square outside the image repeat the edge pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from emotionkit.predict.faces import Detection, FaceDetector, find_faces, is_face_crop

DEFAULT_CROP_MARGIN = 0.0
"""The margin of a detector that declares no `crop_margin` (a callable passed by the user)."""


@dataclass(frozen=True)
class CropPolicy:
    """How `face_crop` cuts a face out.

    Attributes:
        margin: Context added on each side, as a fraction of the box's longer side
            (negative: trimmed); None takes the detector's own `crop_margin`, measured so
            that its box gives FER2013's framing (benchmarks/face_crop_calibration.py).
        square: Square crops (as training's); False keeps the box's aspect ratio.
        align: Turn the face so the eyes are level, when the detector gives landmarks.
        min_tilt: Eye lines tilted less than this many degrees are left as they are:
            FER2013's own faces lean a few degrees, and levelling those cost accuracy.
    """

    margin: float | None = None
    square: bool = True
    align: bool = True
    min_tilt: float = 10.0


def eye_angle(detection: Detection) -> float:
    """Degrees the eye line is turned from level (positive: the image-right eye is lower);
    0 without landmarks."""
    if not detection.landmarks or len(detection.landmarks) < 2:
        return 0.0
    (left_x, left_y), (right_x, right_y) = detection.landmarks[:2]
    return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def face_crop(
    pixels: np.ndarray,
    detection: Detection,
    policy: CropPolicy = CropPolicy(),
    margin: float = 0.0,
) -> np.ndarray:
    """The crop of one face in (H, W, C) `pixels`, by `policy`.

    Args:
        pixels: The whole image.
        detection: The face (its box, and landmarks for alignment).
        policy: Margin, squareness, alignment.
        margin: The margin when `policy.margin` is None (the detector's `crop_margin`).

    Returns:
        (h, w, C) pixels of the same dtype: square with `policy.square`.
    """
    x, y, w, h = detection.box
    grow = 1 + 2 * (margin if policy.margin is None else policy.margin)
    sides = (max(w, h) * grow,) * 2 if policy.square else (w * grow, h * grow)
    centre_x, centre_y = x + w / 2, y + h / 2
    angle = eye_angle(detection) if policy.align else 0.0
    if abs(angle) < max(policy.min_tilt, 0.5):
        return _upright_crop(pixels, centre_x, centre_y, sides)
    width, height = max(1, round(sides[0])), max(1, round(sides[1]))
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), angle, 1.0)
    matrix[:, 2] += np.array([width / 2 - centre_x, height / 2 - centre_y])
    turned = cv2.warpAffine(
        pixels, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return turned.reshape(height, width, pixels.shape[-1])


def _upright_crop(
    pixels: np.ndarray, centre_x: float, centre_y: float, sides: tuple[float, float]
) -> np.ndarray:
    """The crop by slicing (no resampling); the part outside the image repeats the edge."""
    width, height = max(1, round(sides[0])), max(1, round(sides[1]))
    left, top = round(centre_x - width / 2), round(centre_y - height / 2)
    rows, cols = pixels.shape[:2]
    inner = pixels[
        max(0, top) : max(0, min(rows, top + height)),
        max(0, left) : max(0, min(cols, left + width)),
    ]
    if inner.size == 0:  # a box wholly outside the image: nothing to repeat
        return np.zeros((height, width, pixels.shape[-1]), pixels.dtype)
    pad = (max(0, -top), max(0, top + height - rows), max(0, -left), max(0, left + width - cols))
    if not any(pad):
        return inner
    padded = cv2.copyMakeBorder(inner, *pad, borderType=cv2.BORDER_REPLICATE)
    return padded.reshape(height, width, pixels.shape[-1])


def detector_margin(detector: FaceDetector) -> float:
    """The detector's own `crop_margin` (its boxes against FER2013's framing), else 0."""
    return float(getattr(detector, "crop_margin", DEFAULT_CROP_MARGIN))


def main_face_crop(
    pixels: np.ndarray, detector: FaceDetector, policy: CropPolicy, image_size: int
) -> np.ndarray | None:
    """What a labelled photo shows: the crop of its largest face, as `predict` cuts faces.

    Training on wild photos (`data.faces`) labels one face per image, the largest. An image
    that already is a face crop (`is_face_crop` at `image_size`, the rule `predict` applies)
    is returned whole. None: no face was found.
    """
    if is_face_crop(pixels.shape, image_size):
        return pixels
    found = find_faces(detector, pixels)
    if not found:
        return None
    largest = max(found, key=lambda face: face.box[2] * face.box[3])
    return face_crop(pixels, largest, policy, detector_margin(detector))
