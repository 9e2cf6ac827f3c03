"""Train-time augmentations: a registry of recipe names -> Keras preprocessing layers.

The recipe lists ops as `{name: {params}}` in order. Layers are created once, outside
`tf.data.map`, and chained in a plain function: a `keras.Sequential` of preprocessing layers
fails inside `tf.data.map` under the JAX backend, while single layers work on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emotionkit.errors import RecipeError

LayerFactory = Callable[..., Any]


def _flip(seed: int, mode: str = "horizontal") -> Any:
    import keras

    return keras.layers.RandomFlip(mode, seed=seed)


def _rotate(seed: int, degrees: float = 10.0) -> Any:
    import keras

    return keras.layers.RandomRotation(degrees / 360.0, fill_mode="reflect", seed=seed)


def _translate(seed: int, fraction: float = 0.1) -> Any:
    import keras

    return keras.layers.RandomTranslation(fraction, fraction, fill_mode="reflect", seed=seed)


def _zoom(seed: int, fraction: float = 0.1) -> Any:
    import keras

    return keras.layers.RandomZoom((-fraction, fraction), fill_mode="reflect", seed=seed)


def _contrast(seed: int, factor: float = 0.2) -> Any:
    import keras

    return keras.layers.RandomContrast(factor, value_range=(0, 255), seed=seed)


def _brightness(seed: int, factor: float = 0.2) -> Any:
    import keras

    return keras.layers.RandomBrightness(factor, value_range=(0, 255), seed=seed)


AUGMENTATIONS: dict[str, LayerFactory] = {
    "flip": _flip,
    "rotate": _rotate,
    "translate": _translate,
    "zoom": _zoom,
    "contrast": _contrast,
    "brightness": _brightness,
}


def build_augment_fn(
    ops: list[dict[str, dict[str, Any]]], seed: int
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """Build the recipe's `data.augment` list into one function on a batch.

    The function maps `(images, targets)` (float32 0-255 NHWC, float32 (N, K) target
    distributions) to the same; image-only ops leave the targets alone.

    Raises:
        RecipeError: an unknown op name or parameter, naming `data.augment[i]`.
    """
    layers = []
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or len(op) != 1:
            raise RecipeError(f"data.augment[{index}] must be one `{{name: {{params}}}}`: {op!r}")
        ((name, params),) = op.items()
        if name not in AUGMENTATIONS:
            raise RecipeError(
                f"data.augment[{index}]: unknown augmentation {name!r}; available: "
                f"{', '.join(AUGMENTATIONS)}."
            )
        try:
            layers.append(AUGMENTATIONS[name](seed + index, **(params or {})))
        except TypeError as error:
            raise RecipeError(f"data.augment[{index}] ({name}): {error}") from None

    def augment(images: Any, targets: Any) -> tuple[Any, Any]:
        for layer in layers:
            images = layer(images, training=True)
        return images, targets

    return augment
