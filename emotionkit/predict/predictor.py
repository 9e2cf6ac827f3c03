"""`Predictor`: an exported model plus face finding, on onnxruntime and OpenCV only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from emotionkit.bundled import DEFAULT_MODEL
from emotionkit.errors import DataError
from emotionkit.image_decode import to_model_pixels
from emotionkit.predict.crops import CropPolicy, detector_margin, face_crop
from emotionkit.predict.detectors import build_detector
from emotionkit.predict.faces import (
    Box,
    Detection,
    FaceDetector,
    Point,
    as_pixels,
    find_faces,
    is_face_crop,
)
from emotionkit.predict.onnx_model import INPUT_NAME, ModelInfo, open_session

FaceMode = Literal["auto", "none"]
Images = np.ndarray | Sequence[np.ndarray]
UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Prediction:
    """One classified face (or whole image) of one input image.

    Attributes:
        label: The most probable class; `"uncertain"` when the predictor has an
            `uncertain_below` and no class reaches it; None when `faces="auto"` found no face.
        probabilities: Class name -> probability, in the model's class order (empty when
            no face was found). Softmax, or independent sigmoids for a multi-label model.
        box: The face (x, y, width, height) in the input image's pixels, or None when the
            whole image was classified.
        source: Where the image came from (a file name) when known.
        frame: The frame index for a video input, else None.
        image_index: The image's position in the batch given to `Predictor.predict`.
        labels: For a multi-label model, every class above its threshold; else None.
        score: The face detector's confidence, when it gives one.
        track: With `--smooth`, the face's track id within its video or stream.
        landmarks: The detector's face points (MTCNN: eyes, nose, mouth corners as seen in
            the image), in the input image's pixels, when it gives them.
    """

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    box: Box | None = None
    source: str | None = None
    frame: int | None = None
    image_index: int = 0
    labels: tuple[str, ...] | None = None
    score: float | None = None
    track: int | None = None
    landmarks: tuple[Point, ...] | None = None

    @property
    def probability(self) -> float | None:
        """The probability of the most probable class (None when no face was found)."""
        return max(self.probabilities.values()) if self.probabilities else None

    def top(self, k: int = 2) -> list[tuple[str, float]]:
        """The `k` most probable (class, probability) pairs, best first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)
        return ranked[:k]


@dataclass(frozen=True)
class _Crop:
    """A model-ready crop and where it came from; no pixels: no face was found."""

    image_index: int
    face: Detection | None
    pixels: np.ndarray | None


class Predictor:
    """Classify facial expressions with an exported emotionkit ONNX model.

    Args:
        model: An `.onnx` file, a run directory (its `export/model.onnx` is used) or a
            bundled model's name (`emotionkit models list`); the default bundled model
            (`fer2013-cpu`) when left out.
        detector: A detector name (`auto`: MTCNN when `emotionkit[faces]` is installed, else
            Haar; `mtcnn`, `haar`, `none`: every image whole) or a `FaceDetector` callable.
        cascade: An OpenCV cascade XML for the Haar detector.
        batch_size: Most crops per `session.run` call, to bound memory on big batches.
        crop: How a face is cut out (margin, square, eye alignment): `CropPolicy`.
            None: the policy the model was trained with (`data.faces`), else the default.
            A model trained with `data.faces` also picks the detector when it is `auto`.
        uncertain_below: Label a face `"uncertain"` when no class is at least this probable
            (single-label models); None (default) never does.

    Example:
        >>> predictor = Predictor("runs/quickstart/export/model.onnx")  # doctest: +SKIP
        >>> [p.label for p in predictor.predict(rgb_photo)]  # doctest: +SKIP
        ['happy', 'neutral']
        >>> Predictor("fer2013-cpu").class_names[:2]  # a bundled model, by name
        ('angry', 'disgust')
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        detector: str | FaceDetector | None = "auto",
        cascade: str | Path | None = None,
        batch_size: int = 64,
        crop: CropPolicy | None = None,
        uncertain_below: float | None = None,
    ) -> None:
        if uncertain_below is not None and not 0 < uncertain_below <= 1:
            raise DataError(f"uncertain_below must be in (0, 1], got {uncertain_below}.")
        cascade_path = None if cascade is None else Path(cascade)
        if callable(detector) and cascade is not None:
            raise DataError("give a face detector or a cascade file, not both.")
        self.session, self.info = open_session(model)
        trained_detector, trained_crop = trained_face_crop(self.info)
        if detector in ("auto", None) and cascade is None and trained_detector:
            detector = trained_detector  # the detector its training crops were cut with
        self.detector: FaceDetector | None = (
            build_detector(detector or "auto", cascade_path)
            if isinstance(detector, str) or detector is None
            else detector
        )
        self.batch_size = batch_size
        self.crop = crop or trained_crop or CropPolicy()
        self.uncertain_below = uncertain_below

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's class names, in output order."""
        return self.info.class_names

    @property
    def detector_name(self) -> str:
        """`mtcnn`, `haar`, `none`, or `custom` for a detector passed as a callable."""
        if self.detector is None:
            return "none"
        return str(getattr(self.detector, "name", "custom"))

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

    def labelled(
        self,
        probabilities: dict[str, float],
        box: Box | None = None,
        source: str | None = None,
        frame: int | None = None,
        image_index: int = 0,
        score: float | None = None,
        track: int | None = None,
        landmarks: tuple[Point, ...] | None = None,
    ) -> Prediction:
        """A Prediction for `probabilities` with its label(s) by this predictor's rules:
        the most probable class, `"uncertain"` below `uncertain_below`, and for a multi-label
        model the classes above their thresholds. The other arguments are Prediction's."""
        label = max(probabilities, key=probabilities.__getitem__)
        labels = None
        if self.info.thresholds is not None:
            pairs = zip(self.class_names, self.info.thresholds, strict=True)
            labels = tuple(name for name, cut in pairs if probabilities[name] >= cut)
        elif self.uncertain_below is not None and probabilities[label] < self.uncertain_below:
            label = UNCERTAIN
        return Prediction(
            label, probabilities, box, source, frame, image_index, labels, score, track, landmarks
        )

    def _crops(self, index: int, pixels: np.ndarray, faces: FaceMode) -> list[_Crop]:
        """The model inputs of one image: itself, or its detected faces."""
        size, channels = self.info.image_size, self.info.channels
        whole = faces == "none" or self.detector is None or is_face_crop(pixels.shape, size)
        if whole:
            return [_Crop(index, None, _model_input(pixels, channels, size))]
        assert self.detector is not None
        found = find_faces(self.detector, pixels)
        if not found:
            return [_Crop(index, None, None)]
        margin = detector_margin(self.detector)
        return [
            _Crop(
                index,
                face,
                _model_input(face_crop(pixels, face, self.crop, margin), channels, size),
            )
            for face in found
        ]

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
            face = crop.face
            predictions.append(
                self.labelled(
                    scores,
                    box=None if face is None else face.box,
                    source=source,
                    image_index=crop.image_index,
                    score=None if face is None else face.score,
                    landmarks=None if face is None else face.landmarks,
                )
            )
        return predictions


def trained_face_crop(info: ModelInfo) -> tuple[str | None, CropPolicy | None]:
    """The detector name and crop policy a model's training crops were cut with (its
    `face_crop` metadata, from `data.faces`); `(None, None)` for a model without."""
    text = info.metadata.get("face_crop")
    if not text:
        return None, None
    try:
        setting = json.loads(text)
        policy = CropPolicy(
            setting["margin"], setting["square"], setting["align"], setting["min_tilt"]
        )
        return str(setting["detector"]), policy
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{info.path}: metadata face_crop is not valid: {error}") from None


def _model_input(pixels: np.ndarray, channels: int, size: int) -> np.ndarray:
    """float32 (size, size, channels): `image_decode.to_model_pixels`, as training's."""
    return to_model_pixels(pixels, channels, size).astype(np.float32)


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


__all__ = ["UNCERTAIN", "FaceMode", "ModelInfo", "Prediction", "Predictor", "split_batch"]
