"""What `emotionkit evaluate` can score: a run, a `.keras` file, a SavedModel or an ONNX file.

Each becomes a `Target`: a function from raw pixels (float32 0-255, NHWC, the model's input
size) to logits, plus what is known about it (input shape, the run it came from). All
emotionkit models normalise inside, and the exports keep that graph, so the same pixels go
into every kind: an accuracy gap between kinds is a real export bug, not a preprocessing
mismatch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import EmotionkitError

PREDICT_BATCH = 256
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Target:
    """A model to score, whatever its format."""

    path: Path
    kind: str  # "keras" | "saved_model" | "onnx"
    run_dir: Path | None
    image_size: int
    channels: int
    num_classes: int
    predict: Predict
    embed: Predict | None = None
    """Pooled features (Keras targets only): what the t-SNE plot shows."""
    keras_model: Any = None

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits in batches of `PREDICT_BATCH` (bounded memory on any split size)."""
        return _batched(self.predict, images)

    def embeddings(self, images: np.ndarray) -> np.ndarray | None:
        return None if self.embed is None else _batched(self.embed, images)


def load_target(path: Path) -> Target:
    """Open `path` as a run directory, `.keras`, SavedModel directory or `.onnx` file.

    Raises:
        EmotionkitError: the path does not exist or is none of those.
    """
    path = Path(path)
    if not path.exists():
        raise EmotionkitError(f"evaluate: {path} does not exist")
    run_dir = find_run_dir(path)
    if path.is_dir() and (path / "recipe.yaml").exists():
        path = path / "checkpoints" / "best.keras"
        if not path.exists():
            raise EmotionkitError(f"evaluate: run {run_dir} has no checkpoints/best.keras yet")
    if path.suffix == ".keras":
        return _keras_target(path, run_dir)
    if path.suffix == ".onnx":
        return _onnx_target(path, run_dir)
    if path.is_dir() and (path / "saved_model.pb").exists():
        return _saved_model_target(path, run_dir)
    raise EmotionkitError(
        f"evaluate: {path} is not a run directory, a .keras file, a SavedModel directory "
        "(with saved_model.pb) or an .onnx file"
    )


def find_run_dir(path: Path) -> Path | None:
    """The run directory a model file lives in (its nearest ancestor with a recipe.yaml)."""
    for candidate in [path, *path.resolve().parents][:4]:
        if candidate.is_dir() and (candidate / "recipe.yaml").exists():
            return candidate
    return None


def run_class_names(run_dir: Path) -> list[str]:
    """Class names in output order, from the run's `labels_mapping.json`."""
    mapping = json.loads((run_dir / "labels_mapping.json").read_text())
    return [mapping[str(index)] for index in range(len(mapping))]


def _keras_target(path: Path, run_dir: Path | None) -> Target:
    import keras

    import emotionkit.training  # noqa: F401  (registers custom objects of compiled models)
    from emotionkit.models import embedding_model
    from emotionkit.models.layer_names import EMBEDDING

    model = keras.saving.load_model(path, compile=False)
    _, height, _, channels = model.input_shape
    layer_names = {layer.name for layer in model.layers}
    embedder = embedding_model(model) if EMBEDDING in layer_names else None
    return Target(
        path=path,
        kind="keras",
        run_dir=run_dir,
        image_size=int(height),
        channels=int(channels),
        num_classes=int(model.output_shape[-1]),
        predict=lambda images: np.asarray(model.predict_on_batch(images)),
        embed=None if embedder is None else lambda x: np.asarray(embedder.predict_on_batch(x)),
        keras_model=model,
    )


def _saved_model_target(path: Path, run_dir: Path | None) -> Target:
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    ((input_name, spec),) = signature.structured_input_signature[1].items()
    _, height, _, channels = spec.shape

    def predict(images: np.ndarray) -> np.ndarray:
        outputs = signature(**{input_name: tf.constant(images)})
        return np.asarray(outputs.get("logits", next(iter(outputs.values()))))

    return Target(
        path=path,
        kind="saved_model",
        run_dir=run_dir,
        image_size=int(height),
        channels=int(channels),
        num_classes=int(next(iter(signature.structured_outputs.values())).shape[-1]),
        predict=predict,
    )


def _onnx_target(path: Path, run_dir: Path | None) -> Target:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    _, height, _, channels = model_input.shape
    names = [output.name for output in session.get_outputs()]
    logits_name = "logits" if "logits" in names else names[0]  # older exports: output_0
    return Target(
        path=path,
        kind="onnx",
        run_dir=run_dir,
        image_size=int(height),
        channels=int(channels),
        num_classes=int(session.get_outputs()[0].shape[-1]),
        predict=lambda images: np.asarray(
            session.run([logits_name], {model_input.name: images})[0]
        ),
    )


def _batched(predict: Predict, images: np.ndarray) -> np.ndarray:
    parts = [
        predict(np.ascontiguousarray(images[start : start + PREDICT_BATCH], dtype=np.float32))
        for start in range(0, len(images), PREDICT_BATCH)
    ]
    return np.concatenate(parts).astype(np.float32)
