"""The built-in augmentation ops: one typed class per `data.augment` name.

Each class's fields are the op's parameters (validated, documented and listed in the JSON
Schema) and its `apply` is the op on a batch, written once with `augment_arrays.ArrayFns`
so that it runs in `tf.data` on the host and compiled inside the train step on JAX and
TensorFlow (`data.augment_on`). Images are float32 0-255 NHWC, targets float32 (N, K).
Keys are split per draw with `fns.fold(key, n)`; the gate's coin uses its own fold.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator

from emotionkit.data.augment import gate
from emotionkit.data.augment_arrays import ArrayFns
from emotionkit.data.registry import AUGMENTATIONS, AugmentOp, Op
from emotionkit.sections import register_entry

Batch = tuple[Any, Any]


def _range_within(low: float, high: float) -> AfterValidator:
    """A `[min, max]` parameter (a single number means both) checked against `[low, high]`."""

    def check(value: float | tuple[float, float]) -> tuple[float, float]:
        pair = (value, value) if isinstance(value, int | float) else tuple(value)
        if not low <= pair[0] <= pair[1] <= high:
            raise ValueError(f"must be [min, max] within [{low}, {high}], got {list(pair)}")
        return float(pair[0]), float(pair[1])

    return AfterValidator(check)


Probability = Annotated[
    float, Field(ge=0.0, le=1.0, description="Share of images the op is applied to.")
]
Range = tuple[float, float]


def _sides(fns: ArrayFns, images: Any) -> tuple[Any, Any]:
    """Height and width: static numbers in a train step, traced sizes where unknown."""
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        shape = fns.shape(images)
        return fns.np.asarray(shape[1], "float32"), fns.np.asarray(shape[2], "float32")
    return float(height), float(width)


def _per_image(fns: ArrayFns, key: Any, images: Any, low: float, high: float) -> Any:
    """One uniform draw per image of the batch."""
    return fns.uniform(key, (fns.shape(images)[0],), low, high)


def _clip(fns: ArrayFns, images: Any) -> Any:
    return fns.np.clip(images, 0.0, 255.0)


def _affine(
    fns: ArrayFns, images: Any, key: Any, degrees: float, translate: float, zoom: float
) -> Any:
    """Rotation, translation and zoom as ONE bilinear resampling per image (reflect fill).

    Output pixel (x, y) samples the input at center + S^-1 R^-1 (out - center) - shift.
    """
    np = fns.np
    height, width = _sides(fns, images)
    angle = _per_image(fns, fns.fold(key, 0), images, -degrees, degrees) * (math.pi / 180.0)
    shift_x = _per_image(fns, fns.fold(key, 1), images, -translate, translate) * width
    shift_y = _per_image(fns, fns.fold(key, 2), images, -translate, translate) * height
    inverse_scale = 1.0 / _per_image(fns, fns.fold(key, 3), images, 1.0 - zoom, 1.0 + zoom)
    cos, sin = np.cos(angle) * inverse_scale, np.sin(angle) * inverse_scale
    center_x, center_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    zeros = np.zeros_like(cos)
    transforms = np.stack(
        [
            cos, sin, center_x - cos * center_x - sin * center_y - shift_x,
            -sin, cos, center_y + sin * center_x - cos * center_y - shift_y,
            zeros, zeros,
        ],
        axis=1,
    )  # fmt: skip
    return _clip(fns, fns.affine(images, transforms))


@register_entry(AUGMENTATIONS, "flip")
class Flip(AugmentOp):
    """Mirror each image with probability `p` (per axis for `horizontal_and_vertical`)."""

    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
    p: Probability = 0.5

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        axes = {"horizontal": [2], "vertical": [1], "horizontal_and_vertical": [2, 1]}
        for number, axis in enumerate(axes[self.mode]):
            flipped = (fns.np.flip(images, axis=axis), targets)
            images, targets = gate(fns, fns.fold(key, number), self.p, (images, targets), flipped)
        return images, targets


class _AffineOp(AugmentOp):
    """Shared by the ops that are one affine resampling (each declares its own `p`, after its
    parameters, so that they list first)."""

    def transform(self) -> tuple[float, float, float]:
        """(degrees, translate fraction, zoom fraction)."""
        raise NotImplementedError

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        warped = _affine(fns, images, key, *self.transform())
        return gate(fns, key, getattr(self, "p", 1.0), (images, targets), (warped, targets))


@register_entry(AUGMENTATIONS, "rotate")
class Rotate(_AffineOp):
    """Rotate by up to `degrees` either way (reflect fill)."""

    degrees: float = Field(10.0, ge=0.0, le=180.0)
    p: Probability = 1.0

    def transform(self) -> tuple[float, float, float]:
        return self.degrees, 0.0, 0.0


@register_entry(AUGMENTATIONS, "translate")
class Translate(_AffineOp):
    """Shift by up to `fraction` of the size on each axis (reflect fill)."""

    fraction: float = Field(0.1, ge=0.0, lt=1.0)
    p: Probability = 1.0

    def transform(self) -> tuple[float, float, float]:
        return 0.0, self.fraction, 0.0


@register_entry(AUGMENTATIONS, "zoom")
class Zoom(_AffineOp):
    """Zoom in or out by up to `fraction` (reflect fill)."""

    fraction: float = Field(0.1, ge=0.0, lt=1.0)
    p: Probability = 1.0

    def transform(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.fraction


@register_entry(AUGMENTATIONS, "affine")
class Affine(_AffineOp):
    """Rotation, translation and zoom as ONE resampling per image (reflect fill, bilinear).

    Same distributions as `rotate` + `translate` + `zoom` chained, at the cost of one of them:
    each resampling is ~5 ms per 128-image 48x48 batch on a 2-core CPU, which the training
    step shares (the FER2013 CPU recipe's input pipeline cost 8 % of step time with three
    separate ops).
    """

    degrees: float = Field(10.0, ge=0.0)
    translate: float = Field(0.1, ge=0.0, lt=1.0)
    zoom: float = Field(0.0, ge=0.0, lt=1.0)
    p: Probability = 1.0

    def transform(self) -> tuple[float, float, float]:
        return self.degrees, self.translate, self.zoom


@register_entry(AUGMENTATIONS, "random_resized_crop")
class RandomResizedCrop(AugmentOp):
    """Crop a box of `scale` x the image area and width/height `ratio`, resize it back.

    The Inception crop, mild by default: on 48 px faces a crop under ~0.8 of the area loses
    the mouth or the eyes. One bilinear resampling: the box's corners map to the output's.
    """

    scale: Annotated[float | Range, _range_within(1e-6, 1.0)] = (0.8, 1.0)
    ratio: Annotated[float | Range, _range_within(1e-3, 1e3)] = (3 / 4, 4 / 3)
    p: Probability = 1.0

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        np = fns.np
        (min_area, max_area), (min_ratio, max_ratio) = self.scale, self.ratio  # type: ignore[misc]
        area = _per_image(fns, fns.fold(key, 0), images, min_area, max_area)
        log_ratio = _per_image(
            fns, fns.fold(key, 1), images, math.log(min_ratio), math.log(max_ratio)
        )
        aspect = np.exp(log_ratio)
        box_height = np.minimum(np.sqrt(area / aspect), 1.0)
        box_width = np.minimum(np.sqrt(area * aspect), 1.0)
        top = _per_image(fns, fns.fold(key, 2), images, 0.0, 1.0) * (1.0 - box_height)
        left = _per_image(fns, fns.fold(key, 3), images, 0.0, 1.0) * (1.0 - box_width)
        height, width = _sides(fns, images)
        last_y, last_x = height - 1.0, width - 1.0
        zeros = np.zeros_like(area)
        transforms = np.stack(
            [box_width, zeros, left * last_x, zeros, box_height, top * last_y, zeros, zeros],
            axis=1,
        )
        cropped = _clip(fns, fns.affine(images, transforms))
        return gate(fns, key, self.p, (images, targets), (cropped, targets))


@register_entry(AUGMENTATIONS, "contrast")
class Contrast(AugmentOp):
    """Scale each image's contrast around its mean by a factor in [1 - factor, 1 + factor]."""

    factor: float = Field(0.2, ge=0.0, le=1.0)
    p: Probability = 1.0

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        scale = _per_image(fns, fns.fold(key, 0), images, 1.0 - self.factor, 1.0 + self.factor)
        mean = fns.np.mean(images, axis=(1, 2), keepdims=True)
        changed = _clip(fns, (images - mean) * scale[:, None, None, None] + mean)
        return gate(fns, key, self.p, (images, targets), (changed, targets))


@register_entry(AUGMENTATIONS, "brightness")
class Brightness(AugmentOp):
    """Shift each image's brightness by up to `factor` of the 0-255 range."""

    factor: float = Field(0.2, ge=0.0, le=1.0)
    p: Probability = 1.0

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        shift = _per_image(fns, fns.fold(key, 0), images, -self.factor, self.factor) * 255.0
        changed = _clip(fns, images + shift[:, None, None, None])
        return gate(fns, key, self.p, (images, targets), (changed, targets))


@register_entry(AUGMENTATIONS, "blur")
class Blur(AugmentOp):
    """Gaussian blur, each image with its own `sigma` drawn from the range.

    A weighted sum of the kernel's shifted copies of the reflect-padded image (9 for the
    default 3x3 kernel): per-image kernels, no convolution op, and XLA fuses it.
    """

    sigma: Annotated[float | Range, _range_within(0.0, 10.0)] = (0.1, 1.0)
    kernel_size: int = Field(3, ge=1, le=15, description="Odd kernel side in pixels.")
    p: Probability = 0.2

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("must be odd (a kernel centred on its pixel)")
        return size

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        np = fns.np
        low, high = self.sigma  # type: ignore[misc]
        sigma = np.maximum(_per_image(fns, fns.fold(key, 0), images, low, high), 1e-3)
        radius = self.kernel_size // 2
        offsets = np.arange(-radius, radius + 1, dtype="float32")
        weights = np.exp(-(offsets[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
        weights = weights / np.sum(weights, axis=1, keepdims=True)  # (N, kernel_size)
        padding = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
        padded = np.pad(images, padding, mode="reflect")
        height, width = fns.shape(images)[1], fns.shape(images)[2]
        blurred = np.zeros_like(images)
        for dy in range(self.kernel_size):
            for dx in range(self.kernel_size):
                weight = weights[:, dy] * weights[:, dx]
                shifted = padded[:, dy : dy + height, dx : dx + width]
                blurred = blurred + shifted * weight[:, None, None, None]
        return gate(fns, key, self.p, (images, targets), (blurred, targets))


@register_entry(AUGMENTATIONS, "noise")
class Noise(AugmentOp):
    """Add Gaussian noise of `std` grey levels, clipped to 0-255."""

    std: float = Field(5.0, ge=0.0, description="Standard deviation in grey levels.")
    p: Probability = 0.5

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        noise = fns.normal(fns.fold(key, 0), fns.shape(images)) * self.std
        return gate(fns, key, self.p, (images, targets), (_clip(fns, images + noise), targets))


def _boxes(fns: ArrayFns, key: Any, images: Any, box_height: Any, box_width: Any) -> Any:
    """(N, H, W, 1) masks, 1 inside a box of the given fractional size at a random place."""
    np = fns.np
    height, width = _sides(fns, images)
    top = _per_image(fns, fns.fold(key, 10), images, 0.0, 1.0) * (1.0 - box_height) * height
    left = _per_image(fns, fns.fold(key, 11), images, 0.0, 1.0) * (1.0 - box_width) * width
    rows = fns.arange(height)[None, :, None]
    columns = fns.arange(width)[None, None, :]
    inside_rows = (rows >= top[:, None, None]) & (rows < (top + box_height * height)[:, None, None])
    inside_columns = (columns >= left[:, None, None]) & (
        columns < (left + box_width * width)[:, None, None]
    )
    return np.asarray(inside_rows & inside_columns, "float32")[..., None]


@register_entry(AUGMENTATIONS, "erasing")
class Erasing(AugmentOp):
    """Replace a random rectangle by noise (`fill_value: null`) or a grey level.

    `scale` is the erased share of the image area: `a` and `b` are drawn from it and the box
    is `sqrt(a)` of the width by `sqrt(b)` of the height (as Keras' RandomErasing draws it).
    `null` fills with clipped N(0, 255) noise, so about half the erased pixels are black.
    """

    scale: Annotated[float | Range, _range_within(0.0, 1.0)] = (0.02, 0.25)
    fill_value: float | None = None
    p: Probability = 0.25

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        np = fns.np
        low, high = self.scale  # type: ignore[misc]
        box_width = np.sqrt(_per_image(fns, fns.fold(key, 0), images, low, high))
        box_height = np.sqrt(_per_image(fns, fns.fold(key, 1), images, low, high))
        mask = _boxes(fns, key, images, box_height, box_width)
        if self.fill_value is None:
            fill = _clip(fns, fns.normal(fns.fold(key, 2), fns.shape(images)) * 255.0)
        else:
            fill = np.full_like(images, float(self.fill_value))
        erased = images * (1.0 - mask) + fill * mask
        return gate(fns, key, self.p, (images, targets), (erased, targets))


def _partner(fns: ArrayFns, key: Any, images: Any) -> Any:
    """A random permutation of the batch (each image's mixing partner)."""
    return fns.np.argsort(_per_image(fns, key, images, 0.0, 1.0))


@register_entry(AUGMENTATIONS, "mixup")
class MixUp(AugmentOp):
    """Blend each image and target with a shuffled partner, weight ~ Beta(alpha, alpha)."""

    alpha: float = Field(0.2, gt=0.0)
    p: Probability = 1.0

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        np = fns.np
        order = _partner(fns, fns.fold(key, 0), images)
        weight = fns.beta(fns.fold(key, 1), (fns.shape(images)[0],), self.alpha)
        mixed_images = images * weight[:, None, None, None] + np.take(images, order, axis=0) * (
            1.0 - weight[:, None, None, None]
        )
        mixed_targets = targets * weight[:, None] + np.take(targets, order, axis=0) * (
            1.0 - weight[:, None]
        )
        return gate(fns, key, self.p, (images, targets), (mixed_images, mixed_targets))


@register_entry(AUGMENTATIONS, "cutmix")
class CutMix(AugmentOp):
    """Paste a partner's rectangle; targets mix by the pasted area (~ Beta(alpha, alpha)).

    The pasted box covers a share lambda ~ Beta(alpha, alpha) of the area, sqrt(lambda) of
    each side (the CutMix paper's box); alpha is capped at 1, the paper's value.
    """

    alpha: float = Field(1.0, gt=0.0, le=1.0)
    p: Probability = 1.0

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> Batch:
        np = fns.np
        order = _partner(fns, fns.fold(key, 0), images)
        side = np.sqrt(fns.beta(fns.fold(key, 1), (fns.shape(images)[0],), self.alpha))
        mask = _boxes(fns, key, images, side, side)
        pasted = images * (1.0 - mask) + np.take(images, order, axis=0) * mask
        share = np.mean(mask, axis=(1, 2, 3))[:, None]  # the pasted area, after rounding
        mixed_targets = targets * (1.0 - share) + np.take(targets, order, axis=0) * share
        return gate(fns, key, self.p, (images, targets), (pasted, mixed_targets))


@register_entry(AUGMENTATIONS, "randaugment")
class RandAugment(AugmentOp):
    """Keras RandAugment: `num_ops` of its 11 ops at strength `factor` (0-1); host only.

    Keras' own, not keras-cv's (which fails on 1-channel images). Keras picks the ops once
    per batch, each image drawing its own magnitudes; `p` < 1 varies it per image. It runs
    all 11 ops and selects, so it is the slowest op here; its random state lives in the
    layer, so it runs in `tf.data` only (`data.augment_on: host`).
    """

    compiles: ClassVar[bool] = False
    num_ops: int = Field(2, ge=1)
    factor: float = Field(0.5, ge=0.0, le=1.0)
    p: Probability = 1.0

    def host_op(self, seed: int) -> Op | None:
        import keras
        import tensorflow as tf

        layer = keras.layers.RandAugment(
            value_range=(0, 255), num_ops=self.num_ops, factor=self.factor, seed=seed
        )
        # Stateful like the layer: the coins advance batch by batch of the sequential map.
        coins = tf.random.Generator.from_key_counter(key=seed, counter=[0, 1], alg="philox")

        def augment(images: Any, targets: Any) -> Batch:
            changed = layer(images, training=True)
            if self.p >= 1.0:
                return changed, targets
            apply = coins.uniform([tf.shape(images)[0]]) < self.p
            return tf.where(apply[:, None, None, None], changed, images), targets

        return augment
