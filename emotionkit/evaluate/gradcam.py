"""Grad-CAM (Selvaraju et al. 2017): where in the face the model looked for a class.

The model is cut at a spatial feature map A (default: the input of the embedding layer,
`layer_names.EMBEDDING`, the last one) into `features` (image -> A) and `head` (A -> logits).
The class logit's gradient with respect to A is taken by the active backend
(`tf.GradientTape` or `jax.vjp`), averaged over space into one weight per channel, and the
map relu(sum_c w_c A_c) is upsampled to the image and scaled to [0, 1]. Everything after the
gradient is NumPy, so both backends give the same heatmap for the same `.keras` file.

This module holds the entry points: `grad_cam` for arrays, `plot_gradcam_grid` for the
evaluation's `gradcam.png` and `explain_files` for `emotionkit explain`. The steps live in
`gradcam_maps`, the drawing in `gradcam_figures` (`overlay` is re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import DataError, ModelError
from emotionkit.evaluate.gradcam_figures import (
    GRADCAM_DPI,
    draw_image_and_overlay,
    overlay,
    panel_grid,
)
from emotionkit.evaluate.gradcam_maps import (
    class_gradients,
    resize_maps,
    scale_to_unit,
    split_at_feature_map,
    weighted_activation_maps,
)
from emotionkit.evaluate.metrics import softmax
from emotionkit.figures import save_figure

__all__ = [
    "explain_files",
    "grad_cam",
    "gradcam_and_logits",
    "overlay",
    "plot_gradcam_grid",
]

# Images per gradient pass: bounds memory on big evaluation sets, one pass for a grid.
BATCH_SIZE = 64


def grad_cam(
    model: Any,
    images: np.ndarray,
    class_indices: int | Sequence[int] | np.ndarray | None = None,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps, one per image, at the input resolution.

    Args:
        model: a functional classifier from `build_model` (raw 0-255 pixels in, logits out).
        images: (N, H, W, C) raw pixels, as the model takes them.
        class_indices: the class to explain, one per image or one for all; default the
            predicted class.
        layer_name: the layer whose output is the feature map; default the input of the
            embedding layer (`layer_names.EMBEDDING`; the last spatial map: coarsest, but
            the most class-specific).

    Returns:
        (N, H, W) float32 in [0, 1]; an image with no positive evidence is all zeros.

    Example:
        >>> heatmaps = grad_cam(model, images)  # (N, 48, 48)
    """
    return gradcam_and_logits(model, images, class_indices, layer_name)[0]


def gradcam_and_logits(
    model: Any,
    images: np.ndarray,
    class_indices: int | Sequence[int] | np.ndarray | None = None,
    layer_name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`grad_cam` plus the (N, classes) logits of the same forward pass (for titles)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
    features, head = split_at_feature_map(model, layer_name)
    classes = None if class_indices is None else np.broadcast_to(class_indices, len(images))
    maps, logits = [], []
    for start in range(0, len(images), BATCH_SIZE):
        batch = slice(start, start + BATCH_SIZE)
        activations = np.asarray(features(images[batch], training=False), dtype=np.float32)
        batch_logits, gradients = class_gradients(
            head, activations, None if classes is None else classes[batch]
        )
        maps.append(weighted_activation_maps(activations, gradients))
        logits.append(batch_logits)
    heatmaps = scale_to_unit(resize_maps(np.concatenate(maps), images.shape[1:3]))
    return heatmaps, np.concatenate(logits)


def plot_gradcam_grid(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    path: Path,
    per_class: int = 2,
    seed: int = 0,
) -> Path:
    """One PNG: up to `per_class` images of each true class, each beside its Grad-CAM.

    Args:
        model: the classifier.
        images: (N, H, W, C) raw pixels.
        labels: (N,) true class indices, or (N, classes) one-hot / soft targets.
        class_names: names by index.
        path: where to write the PNG (the report's `eval/<split>/plots/gradcam.png`).
        per_class: images shown per class (fewer where a class has fewer).
        seed: which images are picked.

    Returns:
        `path`.
    """
    labels = np.asarray(labels)
    true = labels.argmax(axis=-1) if labels.ndim == 2 else labels.astype(np.int64)
    rows = _pick_per_class(true, len(class_names), per_class, seed)
    if not rows:
        raise ValueError("plot_gradcam_grid: no image has a label among `class_names`.")
    chosen = np.array([index for row in rows for index in row], dtype=np.int64)
    heatmaps, logits = gradcam_and_logits(model, np.asarray(images)[chosen])
    probabilities = softmax(logits)
    figure, axes = panel_grid(max(len(rows), 1), 2 * per_class, cell=1.7)
    position = 0
    for row, indices in enumerate(rows):
        for slot, index in enumerate(indices):
            predicted = int(probabilities[position].argmax())
            title = (
                f"{class_names[true[index]]} / {class_names[predicted]} "
                f"p={probabilities[position, predicted]:.2f}"
            )
            pair = axes[row, 2 * slot : 2 * slot + 2]
            draw_image_and_overlay(
                pair, images[index], heatmaps[position], (title, "Grad-CAM"), fontsize=7
            )
            position += 1
    return save_figure(figure, Path(path), GRADCAM_DPI)


def _pick_per_class(
    labels: np.ndarray, num_classes: int, per_class: int, seed: int
) -> list[list[int]]:
    """Per class that occurs, up to `per_class` indices drawn without replacement, in order."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        if len(members):
            picked = rng.choice(members, min(per_class, len(members)), replace=False)
            rows.append(sorted(int(index) for index in picked))
    return rows


def explain_files(
    model_path: Path,
    image_paths: Sequence[Path],
    out_dir: Path,
    class_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Grad-CAM of the predicted class for image files: `emotionkit explain MODEL IMAGE...`.

    Images are converted to the model's channels and resized as the data pipeline does
    (antialiased, `resize_pixels`), so the model sees what it saw in training; the heatmap is
    drawn over the file as it is, at its own size.

    Args:
        model_path: a `.keras` file, or a run directory (its `checkpoints/best.keras`, with
            class names from its `labels_mapping.json`).
        image_paths: PNG or JPEG files.
        out_dir: receives `<stem>_gradcam.png` per image (original | overlay).
        class_names: names by index; default the run's, else the indices.

    Returns:
        Per image: {"image", "predicted", "probability", "output"}.

    Raises:
        DataError: an image file that cannot be read (the message names it).
        ModelError: a model path that is neither a `.keras` file nor a run directory.
    """
    from emotionkit.data.decode import resize_pixels

    originals = [_read_image(Path(path)) for path in image_paths]
    model, run_names = _load_for_explain(Path(model_path))
    _, size, _, channels = model.input.shape
    batch = np.stack([resize_pixels(image[None], size, channels)[0] for image in originals])
    heatmaps, logits = gradcam_and_logits(model, batch)
    probabilities = softmax(logits)
    names = class_names or run_names or [str(index) for index in range(logits.shape[-1])]
    out_dir = Path(out_dir)
    results = []
    for path, image, heatmap, probability in zip(
        image_paths, originals, heatmaps, probabilities, strict=True
    ):
        predicted = int(probability.argmax())
        figure, axes = panel_grid(1, 2, cell=3.0)
        title = f"{names[predicted]} p={probability[predicted]:.2f}"
        draw_image_and_overlay(axes[0], image, heatmap, ("input", title), fontsize=9)
        output = save_figure(figure, out_dir / f"{Path(path).stem}_gradcam.png", GRADCAM_DPI)
        results.append(
            {
                "image": str(path),
                "predicted": names[predicted],
                "probability": float(probability[predicted]),
                "output": str(output),
            }
        )
    return results


def _read_image(path: Path) -> np.ndarray:
    """(H, W, 1) or (H, W, 3) uint8: grayscale files stay grayscale, the rest become RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            pixels = np.asarray(image.convert(mode))
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(
            f"{path}: cannot read as an image ({error}); give a PNG or JPEG file."
        ) from error
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _load_for_explain(model_path: Path) -> tuple[Any, list[str] | None]:
    """The float32 model and, for a run directory, its class names.

    Loaded with `compile=False` (by `load_float32_model`): the optimizer and loss, which
    need `emotionkit.training` registered, play no part in a gradient of the logits; float32
    keeps a mixed-precision model's gradients from rounding to bf16.
    """
    from emotionkit.models.float32 import load_float32_model

    names = None
    if model_path.is_dir():
        mapping = model_path / "labels_mapping.json"
        if mapping.is_file():
            by_index = json.loads(mapping.read_text())
            names = [by_index[str(index)] for index in range(len(by_index))]
        model_path = model_path / "checkpoints" / "best.keras"
    if not (model_path.is_file() and model_path.suffix == ".keras"):
        raise ModelError(
            f"{model_path}: no such .keras file; give a .keras model or a run directory "
            "(one with checkpoints/best.keras)."
        )
    return load_float32_model(model_path), names
