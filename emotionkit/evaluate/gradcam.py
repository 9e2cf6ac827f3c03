"""Grad-CAM (Selvaraju et al. 2017): where in the face the model looked for a class.

The model is cut at a spatial feature map A (default: the input of `avg_pool`, the last
one) into `features` (image -> A) and `head` (A -> logits). The class logit's gradient with
respect to A is taken by the active backend (`tf.GradientTape` or `jax.vjp`), averaged over
space into one weight per channel, and the map relu(sum_c w_c A_c) is upsampled to the image
and scaled to [0, 1]. Everything after the gradient is NumPy, so both backends give the same
heatmap for the same `.keras` file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import DataError, ModelError
from emotionkit.evaluate.metrics import softmax

# The layer whose input is the last spatial feature map in every emotionkit model.
POOL_LAYER = "avg_pool"
COLORMAP = "jet"
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
        layer_name: the layer whose output is the feature map; default the input of
            `avg_pool` (the last spatial map: coarsest, but the most class-specific).

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


def split_at_feature_map(model: Any, layer_name: str | None = None) -> tuple[Any, Any]:
    """(image -> feature map, feature map -> logits) sub-models sharing `model`'s layers.

    Two functional sub-models rather than one call with a hook: a cut tensor is an ordinary
    input of `head`, so both backends differentiate it the same way, with no tracing tricks.
    """
    import keras

    feature_map = _feature_map_tensor(model, layer_name)
    try:
        head = keras.Model(feature_map, model.output)
    except ValueError as error:  # the logits also read a tensor that bypasses the cut
        raise ModelError(
            f"Grad-CAM: layer {layer_name!r} does not cut the model in two (a connection "
            f"bypasses it: {error}); choose a later layer, e.g. the default (input of "
            f"{POOL_LAYER!r})."
        ) from error
    return keras.Model(model.input, feature_map), head


def _feature_map_tensor(model: Any, layer_name: str | None) -> Any:
    spatial = [layer.name for layer in model.layers if len(getattr(layer.output, "shape", ())) == 4]
    if layer_name is None:
        names = [layer.name for layer in model.layers]
        if POOL_LAYER in names:
            return model.get_layer(POOL_LAYER).input
        if not spatial:
            raise ModelError("Grad-CAM needs a model with a 4-D (N, H, W, C) feature map.")
        layer_name = spatial[-1]
    if layer_name not in spatial:
        raise ModelError(
            f"Grad-CAM: layer {layer_name!r} is not a layer with a spatial (N, H, W, C) "
            f"output; the last ones are {', '.join(spatial[-4:])}."
        )
    return model.get_layer(layer_name).output


def class_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and d logit[class] / d activations, per image, in inference mode.

    The gradient of the sum over the batch of each image's class logit is each image's own
    gradient: images do not interact when BatchNorm uses its moving statistics.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_gradients(head, activations, classes)
    if backend == "jax":
        return _jax_gradients(head, activations, classes)
    raise ModelError(
        f"Grad-CAM supports the jax and tensorflow backends, not {backend!r}: "
        "set KERAS_BACKEND=jax or tensorflow."
    )


def _tensorflow_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    inputs = tf.constant(activations)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        logits = tf.cast(head(inputs, training=False), tf.float32)
        one_hot = _one_hot(logits.numpy(), classes)
        target = tf.reduce_sum(logits * one_hot)
    return logits.numpy(), np.asarray(tape.gradient(target, inputs), dtype=np.float32)


def _jax_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    import jax
    import jax.numpy as jnp

    trainable = [variable.value for variable in head.trainable_variables]
    non_trainable = [variable.value for variable in head.non_trainable_variables]

    def logits_of(inputs: Any) -> Any:
        outputs, _ = head.stateless_call(trainable, non_trainable, inputs, training=False)
        return outputs.astype(jnp.float32)

    # vjp, not grad: one forward pass yields the logits (to pick the predicted class) and a
    # pullback that takes the one-hot class as its cotangent.
    logits, pullback = jax.vjp(logits_of, jnp.asarray(activations))
    (gradients,) = pullback(jnp.asarray(_one_hot(np.asarray(logits), classes)))
    return np.asarray(logits), np.asarray(gradients, dtype=np.float32)


def _one_hot(logits: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    chosen = logits.argmax(axis=-1) if classes is None else np.asarray(classes)
    if chosen.min() < 0 or chosen.max() >= logits.shape[-1]:
        raise ValueError(f"class_indices must lie in [0, {logits.shape[-1]}), got {chosen}.")
    return np.eye(logits.shape[-1], dtype=np.float32)[chosen]


def weighted_activation_maps(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """relu(sum_c w_c A_c) with w_c the spatial mean of the gradient: (N, h, w) float32."""
    weights = gradients.mean(axis=(1, 2))
    return np.maximum(np.einsum("nhwc,nc->nhw", activations, weights), 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, as `tf.image.resize`) resize of (N, h, w) maps.

    PIL on float32 (mode "F") images: the same result on every backend, no device round trip.
    """
    from PIL import Image

    height, width = size
    if maps.shape[1:] == (height, width):
        return maps.astype(np.float32)
    bilinear = Image.Resampling.BILINEAR
    resized = [
        Image.fromarray(m.astype(np.float32)).resize((width, height), bilinear) for m in maps
    ]
    return np.stack([np.asarray(m) for m in resized]).astype(np.float32)


def scale_to_unit(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its maximum; a map with no positive value stays zero (no NaN)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    scaled = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with `COLORMAP`, over a 0-255 image.

    Args:
        image: (H, W), (H, W, 1) or (H, W, 3) pixels, 0-255.
        heatmap: (h, w) in [0, 1]; resized to (H, W) when it differs.
        alpha: weight of the heatmap colour (0 = image only, 1 = heatmap only).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    from matplotlib import colormaps

    rgb = _as_rgb(image)
    heatmap = resize_maps(np.asarray(heatmap, np.float32)[None], rgb.shape[:2])[0]
    colour = colormaps[COLORMAP](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb + alpha * colour
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}.")
    return image


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
    figure, axes = _figure(max(len(rows), 1), 2 * per_class, cell=1.7)
    position = 0
    for row, indices in enumerate(rows):
        for slot, index in enumerate(indices):
            predicted = int(probabilities[position].argmax())
            title = (
                f"{class_names[true[index]]} / {class_names[predicted]} "
                f"p={probabilities[position, predicted]:.2f}"
            )
            pair = axes[row, 2 * slot : 2 * slot + 2]
            _draw_pair(pair, images[index], heatmaps[position], (title, "Grad-CAM"), fontsize=7)
            position += 1
    return _save(figure, Path(path))


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


def _figure(rows: int, columns: int, cell: float) -> tuple[Any, Any]:
    """A figure of `cell`-inch panels (plus room for a title), axes off, as a 2-D array."""
    # A bare Figure (Agg canvas) rather than pyplot: no global state, no GUI backend.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(columns * cell, rows * (cell + 0.3)), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return figure, axes


def _draw_pair(
    axes: Sequence[Any],
    image: np.ndarray,
    heatmap: np.ndarray,
    titles: tuple[str, str],
    fontsize: int,
) -> None:
    """The image (gray or RGB, 0-255) and its overlay in two panels."""
    pixels = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    axes[0].imshow(pixels, cmap="gray", vmin=0, vmax=255)
    axes[1].imshow(overlay(pixels, heatmap))
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=fontsize)


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


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
    from emotionkit.data.sources import resize_pixels

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
        figure, axes = _figure(1, 2, cell=3.0)
        title = f"{names[predicted]} p={probability[predicted]:.2f}"
        _draw_pair(axes[0], image, heatmap, ("input", title), fontsize=9)
        output = _save(figure, out_dir / f"{Path(path).stem}_gradcam.png")
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
    from emotionkit.export import load_float32_model

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
