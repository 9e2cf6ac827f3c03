"""KerasCV ResNet with a small-image stem, raw-pixel normalisation and a logits head.

The residual stacks are KerasCV's `apply_stack`, v1 or v2 (vendored in `resnet_blocks.py`
and `resnet_v2_blocks.py`: importing keras_cv imports TensorFlow even under JAX). Only the
stem is ours: KerasCV's ResNet always uses the ImageNet stem (7x7 stride 2 + max-pool), which
shrinks a 48x48 face to 12x12 before the first block. The model holds only stock Keras layers,
so a `.keras` file loads without emotionkit.
"""

from __future__ import annotations

import math
from typing import Any

from emotionkit.models import resnet_blocks, resnet_v2_blocks
from emotionkit.recipe import ModelSpec

# (blocks per stage, block type) for each depth, as in He et al. 2015, table 1.
RESNET_STAGES: dict[int, tuple[list[int], str]] = {
    18: ([2, 2, 2, 2], "basic_block"),
    34: ([3, 4, 6, 3], "basic_block"),
    50: ([3, 4, 6, 3], "block"),
    101: ([3, 4, 23, 3], "block"),
}
STAGE_FILTERS = (64, 128, 256, 512)
BN_EPSILON = 1.001e-5  # KerasCV's value, so the stem matches its blocks


def build_model(
    spec: ModelSpec,
    *,
    image_size: int,
    channels: int,
    num_classes: int,
    pixel_mean: float = 127.5,
    pixel_std: float = 64.0,
) -> Any:
    """Build the classifier: raw 0-255 pixels in, float32 logits out (no softmax).

    Args:
        spec: the recipe's `model` section.
        image_size: square input size.
        channels: 1 or 3.
        num_classes: logits width.
        pixel_mean: train-set pixel mean (0-255) folded into the input layer.
        pixel_std: train-set pixel std (0-255).

    Example:
        >>> model = build_model(ModelSpec(), image_size=48, channels=1, num_classes=7)
        >>> round(model.count_params() / 1e6, 2)
        11.18
    """
    import keras

    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = keras.layers.Rescaling(1.0 / pixel_std, offset=-pixel_mean / pixel_std, name="normalize")(
        inputs
    )
    if spec.expand_channels and channels == 1:
        x = keras.layers.Concatenate(name="expand_channels")([x, x, x])
    if spec.name == "mobilenet_v3_small":
        x = _mobilenet_backbone(x, spec, channels)
    else:
        x = _residual_stages(_stem(x, spec, keras), spec)
    if spec.name == "resnet" and spec.version == "v2":
        # Pre-activation blocks end on a bare addition: normalise once more before pooling.
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="post_bn")(x)
        x = keras.layers.Activation("relu", name="post_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if spec.dropout > 0:
        x = keras.layers.Dropout(spec.dropout, name="head_dropout")(x)
    # float32 logits even under mixed precision: softmax/CE in bf16 loses accuracy.
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=_model_name(spec))


def _mobilenet_backbone(x: Any, spec: ModelSpec, channels: int) -> Any:
    from emotionkit.errors import RecipeError
    from emotionkit.models.mobilenet import mobilenet_v3_small_features

    if channels == 1 and not spec.expand_channels:
        raise RecipeError(
            "model.name=mobilenet_v3_small needs 3 input channels: set model.expand_channels=true "
            "(or data.channels=3)."
        )
    return mobilenet_v3_small_features(x, spec.width)


def scaled_filters(filters: int, width: float) -> int:
    """Filter count after the width multiplier, never below 4."""
    return max(4, round(filters * width))


def _model_name(spec: ModelSpec) -> str:
    if spec.name != "resnet":
        return spec.name
    suffix = "_v2" if spec.version == "v2" else ""
    return f"resnet{spec.depth}{suffix}_{spec.stem}"


STEM_KERNEL_STRIDE = {
    "cifar": (3, 1),
    "stride2": (3, 2),
    "deep_stride2": (3, 2),
    "imagenet": (7, 2),
}


def _stem(x: Any, spec: ModelSpec, keras: Any) -> Any:
    """v1: conv-BN-ReLU; v2 (as KerasCV): a biased conv only, the first block normalises.

    `deep_stride2` first runs a half-width 3x3 conv-BN-ReLU at full resolution, so that the
    strided conv downsamples features rather than raw pixels: a linear stride-2 filter on a
    one-channel 48x48 face is the only look the `stride2` network gets at full-resolution
    detail (eye and mouth shapes). It costs little: few channels, one input channel, and
    a multiple of 8 of them (oneDNN's blocked layouts ran 11 channels at half the speed of 8).
    """
    filters = scaled_filters(64, spec.width)
    kernel, stride = STEM_KERNEL_STRIDE[spec.stem]
    v1 = spec.version == "v1"
    if spec.stem == "deep_stride2":
        x = keras.layers.Conv2D(
            _pre_stem_filters(spec.width), 3, padding="same", use_bias=False, name="conv1_pre_conv"
        )(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_pre_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_pre_relu")(x)
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=not v1, name="conv1_conv"
    )(x)
    if v1:
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    if spec.stem == "imagenet":
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    return x


def _pre_stem_filters(width: float) -> int:
    """Half the stem's filters, rounded down to a multiple of 8 (at least 8)."""
    return 8 * max(1, int(32 * width) // 8)


def _residual_stages(x: Any, spec: ModelSpec) -> Any:
    default_blocks, block_type = RESNET_STAGES[spec.depth]
    blocks = spec.stage_blocks or default_blocks
    blocks_module = resnet_v2_blocks if spec.version == "v2" else resnet_blocks
    for index, (filters, count) in enumerate(zip(STAGE_FILTERS, blocks, strict=False)):
        x = blocks_module.apply_stack(
            x,
            filters=scaled_filters(filters, spec.width),
            blocks=count,
            stride=1 if index == 0 else 2,
            block_type=block_type,
            # As KerasCV's backbone: basic blocks keep an identity shortcut in stage 0.
            first_shortcut=(block_type == "block" or index > 0),
            name=f"stack{index}",
        )
    return x


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts."""
    trainable = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    return {"trainable": int(trainable), "total": int(model.count_params())}
