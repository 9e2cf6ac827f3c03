"""The built-in augmentation ops: one typed class per `data.augment` name.

Each class's fields are the op's parameters (validated, documented and listed in the JSON
Schema) and its `build(seed)` returns the op on a batch. Keras preprocessing layers do the
work where Keras has one that runs inside `tf.data` under both backends; the rest (flip with
a probability, random resized crop, one-resampling affine, Gaussian noise) are a few
TensorFlow ops.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator

from emotionkit.data.augment import (
    chain,
    generator,
    on_images,
    on_images_and_targets,
    with_probability,
)
from emotionkit.data.registry import AUGMENTATIONS, AugmentOp, Op
from emotionkit.sections import register_entry


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


@register_entry(AUGMENTATIONS, "flip")
class Flip(AugmentOp):
    """Mirror each image with probability `p` (per axis for `horizontal_and_vertical`).

    A reverse under a coin rather than `keras.layers.RandomFlip`, whose probability is fixed
    at 0.5.
    """

    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
    p: Probability = 0.5

    def build(self, seed: int) -> Op:
        import tensorflow as tf

        axes = {"horizontal": [2], "vertical": [1], "horizontal_and_vertical": [2, 1]}

        def reverser(axis: int) -> Op:
            return lambda images, targets: (tf.reverse(images, [axis]), targets)

        return chain(
            [
                with_probability(reverser(axis), self.p, seed, stream=1 + k)
                for k, axis in enumerate(axes[self.mode])
            ]
        )


@register_entry(AUGMENTATIONS, "rotate")
class Rotate(AugmentOp):
    """Rotate by up to `degrees` either way (reflect fill)."""

    degrees: float = Field(10.0, ge=0.0, le=180.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandomRotation(self.degrees / 360.0, fill_mode="reflect", seed=seed)
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "translate")
class Translate(AugmentOp):
    """Shift by up to `fraction` of the size on each axis (reflect fill)."""

    fraction: float = Field(0.1, ge=0.0, lt=1.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandomTranslation(
            self.fraction, self.fraction, fill_mode="reflect", seed=seed
        )
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "zoom")
class Zoom(AugmentOp):
    """Zoom in or out by up to `fraction` (reflect fill)."""

    fraction: float = Field(0.1, ge=0.0, lt=1.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandomZoom(
            (-self.fraction, self.fraction), fill_mode="reflect", seed=seed
        )
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "random_resized_crop")
class RandomResizedCrop(AugmentOp):
    """Crop a box of `scale` x the image area and width/height `ratio`, resize it back.

    The Inception crop, mild by default: on 48 px faces a crop under ~0.8 of the area loses
    the mouth or the eyes. Keras 3.15 has no layer for it (RandomCrop returns a smaller image,
    RandomZoom has no area/aspect parametrisation) and importing keras-cv, which has
    RandomCropAndResize, would load TensorFlow for JAX-only users.
    """

    scale: Annotated[float | tuple[float, float], _range_within(1e-6, 1.0)] = (0.8, 1.0)
    ratio: Annotated[float | tuple[float, float], _range_within(1e-3, 1e3)] = (3 / 4, 4 / 3)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import tensorflow as tf

        (min_area, max_area), (min_ratio, max_ratio) = self.scale, self.ratio  # type: ignore[misc]
        boxes_generator = generator(seed, stream=0)

        def crop(images: Any, targets: Any) -> tuple[Any, Any]:
            images = tf.convert_to_tensor(images)
            count = tf.shape(images)[0]
            area = boxes_generator.uniform([count], min_area, max_area)
            log_ratio = boxes_generator.uniform([count], math.log(min_ratio), math.log(max_ratio))
            aspect = tf.exp(log_ratio)
            height = tf.minimum(tf.sqrt(area / aspect), 1.0)
            width = tf.minimum(tf.sqrt(area * aspect), 1.0)
            top = boxes_generator.uniform([count]) * (1.0 - height)
            left = boxes_generator.uniform([count]) * (1.0 - width)
            boxes = tf.stack([top, left, top + height, left + width], axis=1)
            size = images.shape[1:3]
            return tf.image.crop_and_resize(images, boxes, tf.range(count), size), targets

        return with_probability(crop, self.p, seed)


@register_entry(AUGMENTATIONS, "affine")
class Affine(AugmentOp):
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

    def build(self, seed: int) -> Op:
        return with_probability(_affine_transform(self, generator(seed, stream=0)), self.p, seed)


def _affine_transform(spec: Affine, draws: Any) -> Op:
    import tensorflow as tf

    degrees, translate, zoom = spec.degrees, spec.translate, spec.zoom

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

    return transform


class _FactorLayerOp(AugmentOp):
    """A Keras layer taking a strength `factor` on the 0-255 value range."""

    keras_layer: ClassVar[str]
    factor: float = Field(0.2, ge=0.0, le=1.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer_class = getattr(keras.layers, self.keras_layer)
        layer = layer_class(self.factor, value_range=(0, 255), seed=seed)
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "contrast")
class Contrast(_FactorLayerOp):
    """Scale the contrast by a factor drawn from [1 - factor, 1 + factor]."""

    keras_layer = "RandomContrast"


@register_entry(AUGMENTATIONS, "brightness")
class Brightness(_FactorLayerOp):
    """Shift the brightness by up to `factor` of the value range."""

    keras_layer = "RandomBrightness"


@register_entry(AUGMENTATIONS, "blur")
class Blur(AugmentOp):
    """Gaussian blur; Keras draws one `sigma` per axis per batch from the range.

    `factor=(1, 1)` makes the layer always blur so that `p` alone decides (a single-number
    factor would mean a probability drawn from `[0, factor]`).
    """

    sigma: Annotated[float | tuple[float, float], _range_within(0.0, 10.0)] = (0.1, 1.0)
    kernel_size: int = Field(3, ge=1, description="Odd kernel side in pixels.")
    p: Probability = 0.2

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("must be odd (a kernel centred on its pixel)")
        return size

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandomGaussianBlur(
            factor=(1.0, 1.0),
            kernel_size=self.kernel_size,
            sigma=self.sigma,
            value_range=(0, 255),
            seed=seed,
        )
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "noise")
class Noise(AugmentOp):
    """Add Gaussian noise of `std` grey levels, clipped to 0-255.

    Not `keras.layers.GaussianNoise`: that regularisation layer only takes `stddev` in
    [0, 1] and fails inside `tf.data.map` under JAX (it is not a data layer).
    """

    std: float = Field(5.0, ge=0.0, description="Standard deviation in grey levels.")
    p: Probability = 0.5

    def build(self, seed: int) -> Op:
        import tensorflow as tf

        noise_generator = generator(seed, stream=0)

        def add_noise(images: Any, targets: Any) -> tuple[Any, Any]:
            images = tf.convert_to_tensor(images)
            noisy = images + noise_generator.normal(tf.shape(images), stddev=self.std)
            return tf.clip_by_value(noisy, 0.0, 255.0), targets

        return with_probability(add_noise, self.p, seed)


@register_entry(AUGMENTATIONS, "erasing")
class Erasing(AugmentOp):
    """Replace a random rectangle by noise (`fill_value: null`) or a grey level.

    `scale` is the erased share of the image area: Keras draws `a` and `b` from it and erases
    `sqrt(a)` of the width by `sqrt(b)` of the height. `null` fills with clipped N(0, 255)
    noise, so about half the erased pixels are black.
    """

    scale: Annotated[float | tuple[float, float], _range_within(0.0, 1.0)] = (0.02, 0.25)
    fill_value: float | None = None
    p: Probability = 0.25

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandomErasing(
            factor=(1.0, 1.0),  # always erase; `p` decides
            scale=self.scale,
            fill_value=self.fill_value,
            value_range=(0, 255),
            seed=seed,
        )
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "randaugment")
class RandAugment(AugmentOp):
    """Keras RandAugment: `num_ops` of its 11 ops at strength `factor` (0-1).

    Keras' own, not keras-cv's (which fails on 1-channel images). Keras picks the ops once
    per batch, each image drawing its own magnitudes; `p` < 1 varies it per image. It runs
    all 11 ops and selects, so it is the slowest op here.
    """

    num_ops: int = Field(2, ge=1)
    factor: float = Field(0.5, ge=0.0, le=1.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.RandAugment(
            value_range=(0, 255), num_ops=self.num_ops, factor=self.factor, seed=seed
        )
        return with_probability(on_images(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "mixup")
class MixUp(AugmentOp):
    """Blend each image and target with a shuffled partner, weight ~ Beta(alpha, alpha)."""

    alpha: float = Field(0.2, gt=0.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.MixUp(alpha=self.alpha, seed=seed)
        return with_probability(on_images_and_targets(layer), self.p, seed)


@register_entry(AUGMENTATIONS, "cutmix")
class CutMix(AugmentOp):
    """Paste a partner's rectangle; targets mix by the pasted area (~ Beta(alpha, alpha)).

    `factor=(alpha, alpha)` fixes Keras' Beta parameter (a single number would be drawn from
    `[0, alpha]`); Keras caps it at 1, the CutMix paper's value.
    """

    alpha: float = Field(1.0, gt=0.0, le=1.0)
    p: Probability = 1.0

    def build(self, seed: int) -> Op:
        import keras

        layer = keras.layers.CutMix(factor=(self.alpha, self.alpha), seed=seed)
        return with_probability(on_images_and_targets(layer), self.p, seed)
