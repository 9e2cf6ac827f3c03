"""KerasCV ResNet with a small-image stem, raw-pixel normalisation and a logits head.

The residual stacks are KerasCV's `apply_stack`, v1 or v2 (vendored in `resnet_blocks.py`
and `resnet_v2_blocks.py`: importing keras_cv imports TensorFlow even under JAX). Only the
stem is ours: KerasCV's ResNet always uses the ImageNet stem (7x7 stride 2 + max-pool), which
shrinks a 48x48 face to 12x12 before the first block. The model holds only stock Keras layers,
so a `.keras` file loads without emotionkit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from emotionkit.models.layer_names import BN_EPSILON
from emotionkit.models.spec import MODELS, ModelSpec
from emotionkit.sections import register_section

# (blocks per stage, block type) for each depth, as in He et al. 2015, table 1.
RESNET_STAGES: dict[int, tuple[list[int], str]] = {
    18: ([2, 2, 2, 2], "basic_block"),
    34: ([3, 4, 6, 3], "basic_block"),
    50: ([3, 4, 6, 3], "block"),
    101: ([3, 4, 23, 3], "block"),
}
STAGE_FILTERS = (64, 128, 256, 512)


@register_section(MODELS, "name")
class ResNetSpec(ModelSpec):
    """A KerasCV ResNet (v1 or v2 blocks) behind a stem chosen for small faces."""

    name: Literal["resnet"] = "resnet"
    depth: Literal[18, 34, 50, 101] = Field(
        18, description="ResNet depth: 18/34 basic blocks, 50/101 bottleneck blocks."
    )
    stem: Literal["cifar", "stride2", "deep_stride2", "imagenet"] = Field(
        "cifar",
        description="`cifar`: 3x3 stride-1 conv, no max-pool (keeps detail of 48x48 faces); "
        "`stride2`: 3x3 stride-2 conv, no max-pool (48 -> 24, ~4x fewer FLOPs); "
        "`deep_stride2`: a half-width 3x3 conv at full resolution, then `stride2` (the CPU "
        "choice: a few % more FLOPs than `stride2`); `imagenet`: 7x7 stride-2 conv + "
        "max-pool (48 -> 12).",
    )
    stage_blocks: list[int] | None = Field(
        None,
        description="Blocks per stage, overriding `depth` (e.g. [1, 1, 1, 1] for tiny test "
        "models).",
    )
    version: Literal["v1", "v2"] = Field(
        "v1",
        description="`v1`: post-activation blocks (He et al. 2015); `v2`: pre-activation "
        "blocks (He et al. 2016, BatchNorm+ReLU before each convolution) with a final "
        "BatchNorm+ReLU (`post_bn`), as KerasCV's ResNetV2.",
    )

    def features(self, x: Any, channels: int) -> Any:
        import keras

        x = _residual_stages(_stem(x, self, keras), self)
        if self.version == "v2":
            # Pre-activation blocks end on a bare addition: normalise once more before pooling.
            x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="post_bn")(x)
            x = keras.layers.Activation("relu", name="post_relu")(x)
        return x

    def model_name(self) -> str:
        suffix = "_v2" if self.version == "v2" else ""
        return f"resnet{self.depth}{suffix}_{self.stem}"


def scaled_filters(filters: int, width: float) -> int:
    """Filter count after the width multiplier, never below 4."""
    return max(4, round(filters * width))


STEM_KERNEL_STRIDE = {
    "cifar": (3, 1),
    "stride2": (3, 2),
    "deep_stride2": (3, 2),
    "imagenet": (7, 2),
}


def _stem(x: Any, spec: ResNetSpec, keras: Any) -> Any:
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


def _residual_stages(x: Any, spec: ResNetSpec) -> Any:
    from emotionkit.models import resnet_blocks, resnet_v2_blocks  # import Keras

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
