"""The model behind the server: one shared `Predictor`, and the JSON it answers with.

The Predictor is `emotionkit predict`'s, with the same detector (`build_detector`) and crop
policy, so the demo page and the command find and cut out the same faces. onnxruntime's
`InferenceSession.run` is thread-safe, so one session (and MTCNN's three) serves every
request; OpenCV's `CascadeClassifier` is not, so with the Haar detector each worker thread
gets its own (`build_detector(thread_safe=True)`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from emotionkit.bundled import PROVENANCE_KEYS
from emotionkit.predict import Predictor, build_detector
from emotionkit.predict.outputs import landmark_points
from emotionkit.predict.predictor import UNCERTAIN, FaceMode, Prediction
from emotionkit.serve.images import decode_image

# Metadata shown by GET /v1/model besides the training provenance; `recipe_yaml` (the
# whole recipe, kilobytes) is left out: `recipe_sha256` identifies it.
EXTRA_METADATA_KEYS = (
    "emotionkit_version",
    "export_parity_max_abs_diff",
    "pixel_mean",
    "pixel_std",
    "tta",  # `hflip` / `hflip_crops`: the model averages 2 / 10 views of each face
)


def load_predictor(model: str | Path, detector: str = "auto") -> Predictor:
    """The server's one `Predictor`: `model`'s session (a file, run directory or bundled
    name, as `Predictor` takes) and thread-safe face finding."""
    return Predictor(model, detector=build_detector(detector, thread_safe=True))


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
        "faces": {"detector": predictor.detector_name, "crop": vars(predictor.crop)},
        "targets": "multi_label" if info.multi_label else "single",
    }


def classify_upload(
    predictor: Predictor,
    data: bytes,
    faces: FaceMode,
    max_pixels: int,
    uncertain_below: float | None = None,
) -> dict[str, Any]:
    """Decode an uploaded image and classify its faces: the POST /v1/predict answer.

    Blocking (decoding, face finding and the model run are all CPU work): the app calls it
    in a worker thread. Raises `ImageError` for bytes that are not an acceptable image.
    With `uncertain_below`, a face whose most probable class is less probable than that is
    labelled "uncertain" (single-label models).
    """
    pixels = decode_image(data, max_pixels)
    predictions = predictor.predict(pixels, faces)
    if uncertain_below is not None and not predictor.info.multi_label:
        predictions = [_uncertain(p, uncertain_below) for p in predictions]
    height, width = pixels.shape[:2]
    return {
        "model": model_id(predictor),
        "image": {"width": width, "height": height},
        "faces": [face_json(p) for p in predictions if p.label is not None],
    }


def face_json(prediction: Prediction) -> dict[str, Any]:
    """One face: `box` [x, y, w, h] (null when the image was classified whole), label,
    scores; `labels` (the classes above their thresholds) for a multi-label model, and the
    detector's `landmarks` when it gives them (as `predict --out` writes them)."""
    answer: dict[str, Any] = {
        "box": None if prediction.box is None else list(prediction.box),
        "label": prediction.label,
        "probabilities": prediction.probabilities,
    }
    if prediction.labels is not None:
        answer["labels"] = list(prediction.labels)
    if prediction.landmarks is not None:
        answer["landmarks"] = landmark_points(prediction)
    return answer


def _uncertain(prediction: Prediction, below: float) -> Prediction:
    probability = prediction.probability
    if probability is None or probability >= below:
        return prediction
    return replace(prediction, label=UNCERTAIN)
