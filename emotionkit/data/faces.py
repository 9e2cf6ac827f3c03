"""`data.faces`: train on photos by cutting out each one's face the way `predict` does.

A model trained on whole photos of people learns backgrounds; one trained on crops cut by
another tool sees faces framed differently from what `predict` and `serve` give it. With
`data.faces` set, every image file is decoded, its largest face found by the same detector
and cut by the same crop policy (`predict.crops`: margin, square, eye levelling) as at
prediction time, then resized like any other image. Images that already are face crops
(FER-style, `predict.faces.is_face_crop`) stay whole, as in `predict`. An image with no face
is dropped and listed in the run's `data_errors.json`, like an unreadable file.

The exported model carries the policy (`face_crop` metadata), and `predict` / `serve` use it
unless told otherwise, so training and prediction crops match.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from emotionkit.errors import DataError
from emotionkit.sections import Section


class NoFaceFoundError(ValueError):
    """The detector found no face in an image (the image is skipped and reported)."""


class FacesSpec(Section):
    """Find the face in every image file and train on its crop, cut as `predict` cuts it."""

    detector: Literal["mtcnn", "haar"] = Field(
        "mtcnn",
        description="The face detector: `mtcnn` (landmarks, so eyes can be levelled; "
        "`pip install 'emotionkit[faces]'`) or `haar` (OpenCV's cascade, no extra package).",
    )
    margin: float | None = Field(
        None,
        ge=-0.4,
        le=1.0,
        description="Context added on each side of the box, as a fraction of its longer side; "
        "`null`: the detector's own margin, measured to match FER2013's framing.",
    )
    square: bool = Field(True, description="Square crops, as FER-style training data.")
    align: bool = Field(
        True, description="Level the eyes when the detector gives landmarks (`mtcnn`)."
    )
    min_tilt: float = Field(
        10.0,
        ge=0.0,
        le=90.0,
        description="Eye lines tilted less than this many degrees are left as they are.",
    )

    def crop_policy(self) -> Any:
        """The `predict.crops.CropPolicy` of these settings (what `predict` is given)."""
        from emotionkit.predict.crops import CropPolicy

        return CropPolicy(self.margin, self.square, self.align, self.min_tilt)

    def metadata(self) -> str:
        """The `face_crop` metadata of an exported model: the detector and its crop policy."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def cropper(self, image_size: int) -> Callable[[np.ndarray], np.ndarray]:
        """A thread-safe function from a decoded image to its main face's crop.

        Raises:
            DataError: the detector cannot be built (e.g. `mtcnn` not installed), naming
                `data.faces.detector`.
        """
        from emotionkit.predict.crops import main_face_crop
        from emotionkit.predict.detectors import build_detector

        try:
            detector = build_detector(self.detector, thread_safe=True)
        except DataError as error:
            raise DataError(f"data.faces.detector: {error}") from None
        assert detector is not None
        policy = self.crop_policy()

        def crop(pixels: np.ndarray) -> np.ndarray:
            face = main_face_crop(pixels, detector, policy, image_size)
            if face is None:
                raise NoFaceFoundError(f"no face found by data.faces.detector={self.detector}")
            return face

        return crop


def faces_setting(value: Any) -> Any:
    """`data.faces: detect` is `data.faces: {}` (MTCNN, the predict crop policy); `none`: off."""
    if value == "detect":
        return {}
    if value == "none":
        return None
    return value
