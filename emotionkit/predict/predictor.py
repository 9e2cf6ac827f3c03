"""`Predictor`: an exported model plus face finding, on onnxruntime and OpenCV only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from emotionkit.errors import DataError
from emotionkit.predict.faces import (
    Box,
    FaceDetector,
    HaarFaceDetector,
    as_pixels,
    expand_box,
    is_face_crop,
    to_gray_uint8,
    to_model_pixels,
)
from emotionkit.predict.onnx_model import INPUT_NAME, open_session

FaceMode = Literal["auto", "none"]
Images = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """One classified face (or whole image) of one input image.

    Attributes:
        label: The most probable class, or None when `faces="auto"` found no face.
        probabilities: Class name -> probability, in the model's class order (empty when
            no face was found).
        box: The face (x, y, width, height) in the input image's pixels, or None when the
            whole image was classified.
        source: Where the image came from (a file name) when known.
        frame: The frame index for a video input, else None.
        image_index: The image's position in the batch given to `Predictor.predict`.
    """

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    box: Box | None = None
    source: str | None = None
    frame: int | None = None
    image_index: int = 0

    def top(self, k: int = 2) -> list[tuple[str, float]]:
        """The `k` most probable (class, probability) pairs, best first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)
        return ranked[:k]


@dataclass(frozen=True)
class _Crop:
    """A model-ready crop and where it came from; no pixels: no face was found."""

    image_index: int
    box: Box | None
    pixels: np.ndarray | None


class Predictor:
    """Classify facial expressions with an exported emotionkit ONNX model.

    Args:
        model: An `.onnx` file, or a run directory (its `export/model.onnx` is used).
        detector: A face detector (grayscale uint8 image -> boxes); OpenCV's Haar
            cascade by default.
        cascade: An OpenCV cascade XML for the default detector (not with `detector`).
        batch_size: Most crops per `session.run` call, to bound memory on big batches.

    Example:
        >>> predictor = Predictor("runs/quickstart/export/model.onnx")  # doctest: +SKIP
        >>> [p.label for p in predictor.predict(rgb_photo)]  # doctest: +SKIP
        ['happy', 'neutral']
    """

    def __init__(
        self,
        model: str | Path,
        detector: FaceDetector | None = None,
        cascade: str | Path | None = None,
        batch_size: int = 64,
    ) -> None:
        if detector is not None and cascade is not None:
            raise DataError("give a face detector or a cascade file, not both.")
        self.session, self.info = open_session(Path(model))
        self.detector: FaceDetector = detector or HaarFaceDetector(
            None if cascade is None else Path(cascade)
        )
        self.batch_size = batch_size

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names, in output order."""
        return self.info.class_names

    def predict(
        self,
        images: Images,
        faces: FaceMode = "auto",
        sources: Sequence[str | None] | None = None,
    ) -> list[Prediction]:
        """Classify every face of every image: one `Prediction` per face, in image order.

        Args:
            images: One image (H, W) or (H, W, C), or a batch: a list of images, an
                (N, H, W, C) array, or an (N, H, W) array of grayscale images. Colour is
                RGB(A); pixels are uint8, or floats on the same 0-255 scale.
            faces: "auto" classifies a face crop whole and each detected face of a larger
                image (see `is_face_crop`); an image without a face gives one Prediction
                with label None. "none" classifies every image whole.
            sources: A name per image, copied to `Prediction.source`.

        Returns:
            The predictions, grouped by image in input order, faces left to right.
        """
        if faces not in ("auto", "none"):
            raise DataError(f"faces must be 'auto' or 'none', got {faces!r}.")
        batch = split_batch(images)
        if sources is not None and len(sources) != len(batch):
            raise DataError(f"got {len(sources)} sources for {len(batch)} images.")
        crops: list[_Crop] = []
        for index, image in enumerate(batch):
            crops.extend(self._crops(index, as_pixels(image), faces))
        probabilities = self._run([crop.pixels for crop in crops if crop.pixels is not None])
        names = sources if sources is not None else [None] * len(batch)
        return self._assemble(crops, probabilities, names)

    def _crops(self, index: int, pixels: np.ndarray, faces: FaceMode) -> list[_Crop]:
        """The model inputs of one image: itself, or its detected faces."""
        size, channels = self.info.image_size, self.info.channels
        if faces == "none" or is_face_crop(pixels.shape, size):
            return [_Crop(index, None, to_model_pixels(pixels, channels, size))]
        boxes = self.detector(to_gray_uint8(pixels))
        if not boxes:
            return [_Crop(index, None, None)]
        crops = []
        for box in boxes:
            x, y, w, h = expand_box(box, pixels.shape)
            region = pixels[y : y + h, x : x + w]
            crops.append(_Crop(index, box, to_model_pixels(region, channels, size)))
        return crops

    def _run(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities [len(crops), K], `batch_size` crops per session.run call."""
        if not crops:
            return np.zeros((0, len(self.class_names)), np.float32)
        chunks = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[start : start + self.batch_size])
            (probabilities,) = self.session.run(["probabilities"], {INPUT_NAME: batch})
            chunks.append(probabilities)
        return np.concatenate(chunks)

    def _assemble(
        self, crops: list[_Crop], probabilities: np.ndarray, sources: Sequence[str | None]
    ) -> list[Prediction]:
        rows = iter(probabilities)
        predictions = []
        for crop in crops:
            source = sources[crop.image_index]
            if crop.pixels is None:
                predictions.append(Prediction(None, source=source, image_index=crop.image_index))
                continue
            scores = dict(zip(self.class_names, (float(p) for p in next(rows)), strict=True))
            label = max(scores, key=scores.__getitem__)
            predictions.append(Prediction(label, scores, crop.box, source, None, crop.image_index))
        return predictions


def split_batch(images: Images) -> list[np.ndarray]:
    """A single image or a batch -> a list of images (see `Predictor.predict` for the forms).

    A 3-D array is one image when its last axis can be channels (1, 3 or 4), otherwise a
    batch of grayscale images: (N, 48, 48) from a FER .npz is a batch.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4)):
            return [images]
        if images.ndim in (3, 4):
            return list(images)
        raise DataError(f"images must be a 2-, 3- or 4-D array, got shape {images.shape}.")
    batch = [np.asarray(image) for image in images]
    if not batch:
        raise DataError("no images given to predict.")
    return batch
