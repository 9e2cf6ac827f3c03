"""Train-time augmentations: a registry of recipe names -> ops on a batch.

The recipe lists ops as `{name: {params}}` in order. Each registry entry is a factory
`(seed, **params) -> Op`; an `Op` maps a batch `(images, targets)` (float32 0-255 NHWC,
float32 (N, K) target distributions) to the same. Keras preprocessing layers do the work where
Keras has one that runs inside `tf.data` under both backends; the rest (flip with a
probability, random resized crop, Gaussian noise) are a few TensorFlow ops.

Every op has a probability `p`: each image gets its own coin, and an image that loses it
keeps its pixels and its target exactly. MixUp and CutMix mix the targets as well, so their
rows stay distributions (they sum to 1); put them last, after the per-image ops.

Layers and random generators are created once, outside `tf.data.map`, and chained in a plain
function: a `keras.Sequential` of preprocessing layers fails inside `tf.data.map` under the
JAX backend, while single layers work on both. Their random state is a variable updated on
each call, so the same seed gives the same batches when the map runs sequentially; with
`num_parallel_calls` > 1 concurrent calls race on that state and the sequence varies.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from emotionkit.errors import RecipeError

Op = Callable[[Any, Any], tuple[Any, Any]]
OpFactory = Callable[..., Op]
Range = float | Sequence[float]


def _generator(seed: int, stream: int) -> Any:
    """A Philox generator; `stream` picks a disjoint counter range, so an op and its gate
    built from the same seed never share random numbers."""
    import tensorflow as tf

    return tf.random.Generator.from_key_counter(key=seed, counter=[0, stream], alg="philox")


def _with_probability(op: Op, p: float, seed: int, stream: int = 1) -> Op:
    """Apply `op` to each image (and its target row) with probability `p`, else keep it."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    if p == 0.0:  # switched off in the recipe: nothing to trace or run
        return lambda images, targets: (images, targets)
    if p == 1.0:
        return op
    import tensorflow as tf

    coins = _generator(seed, stream)

    def maybe(images: Any, targets: Any) -> tuple[Any, Any]:
        new_images, new_targets = op(images, targets)
        apply = coins.uniform([tf.shape(images)[0]]) < p
        return (
            tf.where(apply[:, None, None, None], new_images, images),
            tf.where(apply[:, None], new_targets, targets),
        )

    return maybe


def _on_images(layer: Any) -> Op:
    """An image-only Keras layer as an op; the targets pass through."""
    return lambda images, targets: (layer(images, training=True), targets)


def _on_images_and_targets(layer: Any) -> Op:
    """A Keras mixing layer (MixUp, CutMix) as an op: it takes and returns both as a dict."""

    def mix(images: Any, targets: Any) -> tuple[Any, Any]:
        mixed = layer({"images": images, "labels": targets}, training=True)
        return mixed["images"], mixed["labels"]

    return mix


def _chain(ops: list[Op]) -> Op:
    def chained(images: Any, targets: Any) -> tuple[Any, Any]:
        for op in ops:
            images, targets = op(images, targets)
        return images, targets

    return chained


def _range(value: Range, name: str, low: float, high: float) -> tuple[float, float]:
    """A `[min, max]` parameter (a single number means both) checked against `[low, high]`."""
    pair = (value, value) if isinstance(value, int | float) else tuple(value)
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise ValueError(f"{name} must be [min, max] within [{low}, {high}], got {value}")
    return float(pair[0]), float(pair[1])


def _flip(seed: int, mode: str = "horizontal", p: float = 0.5) -> Op:
    """Mirror each image with probability `p` (per axis for `horizontal_and_vertical`).

    A reverse under a coin rather than `keras.layers.RandomFlip`, whose probability is fixed
    at 0.5.
    """
    import tensorflow as tf

    axes = {"horizontal": [2], "vertical": [1], "horizontal_and_vertical": [2, 1]}
    if mode not in axes:
        raise ValueError(f"mode must be one of {', '.join(axes)}, got {mode!r}")

    def reverser(axis: int) -> Op:
        return lambda images, targets: (tf.reverse(images, [axis]), targets)

    return _chain(
        [
            _with_probability(reverser(axis), p, seed, stream=1 + k)
            for k, axis in enumerate(axes[mode])
        ]
    )


def _rotate(seed: int, degrees: float = 10.0, p: float = 1.0) -> Op:
    import keras

    layer = keras.layers.RandomRotation(degrees / 360.0, fill_mode="reflect", seed=seed)
    return _with_probability(_on_images(layer), p, seed)


def _translate(seed: int, fraction: float = 0.1, p: float = 1.0) -> Op:
    import keras

    layer = keras.layers.RandomTranslation(fraction, fraction, fill_mode="reflect", seed=seed)
    return _with_probability(_on_images(layer), p, seed)


def _zoom(seed: int, fraction: float = 0.1, p: float = 1.0) -> Op:
    import keras

    layer = keras.layers.RandomZoom((-fraction, fraction), fill_mode="reflect", seed=seed)
    return _with_probability(_on_images(layer), p, seed)


def _random_resized_crop(
    seed: int,
    scale: Range = (0.8, 1.0),
    ratio: Range = (3 / 4, 4 / 3),
    p: float = 1.0,
) -> Op:
    """Crop a box of `scale` x the image area and width/height `ratio`, resize it back.

    The Inception crop, mild by default: on 48 px faces a crop under ~0.8 of the area loses
    the mouth or the eyes. Keras 3.15 has no layer for it (RandomCrop returns a smaller image,
    RandomZoom has no area/aspect parametrisation) and importing keras-cv, which has
    RandomCropAndResize, would load TensorFlow for JAX-only users.
    """
    import tensorflow as tf

    min_area, max_area = _range(scale, "scale", 0.0, 1.0)
    min_ratio, max_ratio = _range(ratio, "ratio", 1e-3, 1e3)
    if min_area <= 0.0:
        raise ValueError(f"scale must be above 0, got {scale}")
    boxes_generator = _generator(seed, stream=0)

    def crop(images: Any, targets: Any) -> tuple[Any, Any]:
        images = tf.convert_to_tensor(images)
        count = tf.shape(images)[0]
        area = boxes_generator.uniform([count], min_area, max_area)
        aspect = tf.exp(boxes_generator.uniform([count], math.log(min_ratio), math.log(max_ratio)))
        height = tf.minimum(tf.sqrt(area / aspect), 1.0)
        width = tf.minimum(tf.sqrt(area * aspect), 1.0)
        top = boxes_generator.uniform([count]) * (1.0 - height)
        left = boxes_generator.uniform([count]) * (1.0 - width)
        boxes = tf.stack([top, left, top + height, left + width], axis=1)
        size = images.shape[1:3]
        return tf.image.crop_and_resize(images, boxes, tf.range(count), size), targets

    return _with_probability(crop, p, seed)


def _affine(
    seed: int,
    degrees: float = 10.0,
    translate: float = 0.1,
    zoom: float = 0.0,
    p: float = 1.0,
) -> Op:
    """Rotation, translation and zoom as ONE resampling per image (reflect fill, bilinear).

    Same distributions as `rotate` + `translate` + `zoom` chained, at the cost of one of them:
    each resampling is ~5 ms per 128-image 48x48 batch on a 2-core CPU, which the training
    step shares (the FER2013 CPU recipe's input pipeline cost 8 % of step time with three
    separate ops).
    """
    import tensorflow as tf

    if degrees < 0 or not 0 <= translate < 1 or not 0 <= zoom < 1:
        raise ValueError("degrees must be >= 0, translate and zoom in [0, 1)")
    draws = _generator(seed, stream=0)

    def transform(images: Any, targets: Any) -> tuple[Any, Any]:
        images = tf.convert_to_tensor(images)
        shape = tf.shape(images)
        count, height, width = (
            shape[0],
            tf.cast(shape[1], tf.float32),
            tf.cast(shape[2], tf.float32),
        )
        angle = draws.uniform([count], -degrees, degrees) * (math.pi / 180.0)
        shift_x = draws.uniform([count], -translate, translate) * width
        shift_y = draws.uniform([count], -translate, translate) * height
        inverse_scale = 1.0 / draws.uniform([count], 1.0 - zoom, 1.0 + zoom)
        cos, sin = tf.cos(angle) * inverse_scale, tf.sin(angle) * inverse_scale
        center_x, center_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        # output pixel (x, y) samples input: center + S^-1 R^-1 (out - center) - shift
        matrix = tf.stack(
            [
                cos, sin, center_x - cos * center_x - sin * center_y - shift_x,
                -sin, cos, center_y + sin * center_x - cos * center_y - shift_y,
                tf.zeros_like(cos), tf.zeros_like(cos),
            ],
            axis=1,
        )  # fmt: skip
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=matrix,
            output_shape=shape[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
        return tf.clip_by_value(warped, 0.0, 255.0), targets

    return _with_probability(transform, p, seed)


def _contrast(seed: int, factor: float = 0.2, p: float = 1.0) -> Op:
    import keras

    layer = keras.layers.RandomContrast(factor, value_range=(0, 255), seed=seed)
    return _with_probability(_on_images(layer), p, seed)


def _brightness(seed: int, factor: float = 0.2, p: float = 1.0) -> Op:
    import keras

    layer = keras.layers.RandomBrightness(factor, value_range=(0, 255), seed=seed)
    return _with_probability(_on_images(layer), p, seed)


def _blur(seed: int, sigma: Range = (0.1, 1.0), kernel_size: int = 3, p: float = 0.2) -> Op:
    """Gaussian blur; Keras draws one `sigma` per axis per batch from the range.

    `factor=(1, 1)` makes the layer always blur so that `p` alone decides (a single-number
    factor would mean a probability drawn from `[0, factor]`).
    """
    import keras

    layer = keras.layers.RandomGaussianBlur(
        factor=(1.0, 1.0),
        kernel_size=kernel_size,
        sigma=_range(sigma, "sigma", 0.0, 10.0),
        value_range=(0, 255),
        seed=seed,
    )
    return _with_probability(_on_images(layer), p, seed)


def _noise(seed: int, std: float = 5.0, p: float = 0.5) -> Op:
    """Add Gaussian noise of `std` grey levels, clipped to 0-255.

    Not `keras.layers.GaussianNoise`: that regularisation layer only takes `stddev` in
    [0, 1] and fails inside `tf.data.map` under JAX (it is not a data layer).
    """
    import tensorflow as tf

    if std < 0:
        raise ValueError(f"std must be >= 0 grey levels, got {std}")
    noise_generator = _generator(seed, stream=0)

    def add_noise(images: Any, targets: Any) -> tuple[Any, Any]:
        images = tf.convert_to_tensor(images)
        noisy = images + noise_generator.normal(tf.shape(images), stddev=std)
        return tf.clip_by_value(noisy, 0.0, 255.0), targets

    return _with_probability(add_noise, p, seed)


def _erasing(
    seed: int, scale: Range = (0.02, 0.25), fill_value: float | None = None, p: float = 0.25
) -> Op:
    """Replace a random rectangle by noise (`fill_value: null`) or a grey level.

    `scale` is the erased share of the image area: Keras draws `a` and `b` from it and erases
    `sqrt(a)` of the width by `sqrt(b)` of the height. `null` fills with clipped N(0, 255)
    noise, so about half the erased pixels are black.
    """
    import keras

    if fill_value is not None and not isinstance(fill_value, int | float):
        raise ValueError(f"fill_value must be a grey level or null, got {fill_value!r}")
    layer = keras.layers.RandomErasing(
        factor=(1.0, 1.0),  # always erase; `p` decides
        scale=_range(scale, "scale", 0.0, 1.0),
        fill_value=fill_value,
        value_range=(0, 255),
        seed=seed,
    )
    return _with_probability(_on_images(layer), p, seed)


def _randaugment(seed: int, num_ops: int = 2, factor: float = 0.5, p: float = 1.0) -> Op:
    """Keras RandAugment: `num_ops` of its 11 ops at strength `factor` (0-1).

    Keras' own, not keras-cv's (which fails on 1-channel images). Keras picks the ops once
    per batch, each image drawing its own magnitudes; `p` < 1 varies it per image. It runs
    all 11 ops and selects, so it is the slowest op here.
    """
    import keras

    layer = keras.layers.RandAugment(
        value_range=(0, 255), num_ops=num_ops, factor=factor, seed=seed
    )
    return _with_probability(_on_images(layer), p, seed)


def _mixup(seed: int, alpha: float = 0.2, p: float = 1.0) -> Op:
    """Blend each image and target with a shuffled partner, weight ~ Beta(alpha, alpha)."""
    import keras

    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    layer = keras.layers.MixUp(alpha=alpha, seed=seed)
    return _with_probability(_on_images_and_targets(layer), p, seed)


def _cutmix(seed: int, alpha: float = 1.0, p: float = 1.0) -> Op:
    """Paste a partner's rectangle; targets mix by the pasted area (~ Beta(alpha, alpha)).

    `factor=(alpha, alpha)` fixes Keras' Beta parameter (a single number would be drawn from
    `[0, alpha]`); Keras caps it at 1, the CutMix paper's value.
    """
    import keras

    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    layer = keras.layers.CutMix(factor=(alpha, alpha), seed=seed)
    return _with_probability(_on_images_and_targets(layer), p, seed)


AUGMENTATIONS: dict[str, OpFactory] = {
    "flip": _flip,
    "rotate": _rotate,
    "translate": _translate,
    "zoom": _zoom,
    "affine": _affine,
    "random_resized_crop": _random_resized_crop,
    "contrast": _contrast,
    "brightness": _brightness,
    "blur": _blur,
    "noise": _noise,
    "erasing": _erasing,
    "randaugment": _randaugment,
    "mixup": _mixup,
    "cutmix": _cutmix,
}


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build_op(index: int, op: Any, seed: int) -> Op:
    """One `data.augment[index]` entry -> its op; every mistake is a RecipeError naming it."""
    where = f"data.augment[{index}]"
    if not isinstance(op, dict) or len(op) != 1:
        raise RecipeError(f"{where} must be one `{{name: {{params}}}}`: {op!r}")
    ((name, params),) = op.items()
    if name not in AUGMENTATIONS:
        raise RecipeError(
            f"{where}: unknown augmentation {name!r}{_did_you_mean(name, list(AUGMENTATIONS))}; "
            f"available: {', '.join(AUGMENTATIONS)}."
        )
    params = params or {}
    if not isinstance(params, dict):
        raise RecipeError(f"{where} ({name}): params must be a mapping, got {params!r}")
    factory = AUGMENTATIONS[name]
    accepted = [key for key in inspect.signature(factory).parameters if key != "seed"]
    for key in params:
        if key not in accepted:
            raise RecipeError(
                f"{where} ({name}): unknown parameter {key!r}{_did_you_mean(key, accepted)}; "
                f"valid: {', '.join(accepted)}."
            )
    try:
        return factory(seed + index, **params)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{where} ({name}): {error}") from None


def build_augment_fn(ops: list[dict[str, dict[str, Any]]], seed: int) -> Op:
    """Build the recipe's `data.augment` list into one function on a batch.

    The function maps `(images, targets)` (float32 0-255 NHWC, float32 (N, K) target
    distributions) to the same; image-only ops leave the targets alone. Call it inside
    `tf.data.map` (or eagerly, for a look); op `i` is seeded with `seed + i`.

    Args:
        ops: the ordered `{name: {params}}` entries; names are the keys of `AUGMENTATIONS`.
        seed: the recipe seed.

    Returns:
        `augment(images, targets) -> (images, targets)`.

    Raises:
        RecipeError: an unknown op name or parameter, or an invalid value, naming
            `data.augment[i]`.

    Example:
        >>> augment = build_augment_fn([{"flip": {}}, {"mixup": {"alpha": 0.2}}], seed=0)
        >>> dataset = dataset.map(augment)
    """
    return _chain([_build_op(index, op, seed) for index, op in enumerate(ops)])
