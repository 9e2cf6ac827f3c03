"""Pre-activation residual blocks and stacks of ResNet v2, vendored from KerasCV 0.9.0.

Source: keras_cv/src/models/backbones/resnet_v2/resnet_v2_backbone.py (`apply_basic_block`,
`apply_block`, `apply_stack`), Copyright 2022 The KerasCV Authors, Apache License 2.0.
Vendored for the reason given in `resnet_blocks.py` (keras_cv imports TensorFlow). Dilation
support is dropped (always 1 here).

In v2 (He et al. 2016, "Identity Mappings in Deep Residual Networks") each block starts with
BatchNorm + ReLU and ends on the bare addition, and a stack strides in its *last* block, as
KerasCV and TF-slim do. One deliberate change: KerasCV's `apply_stack` always builds a first
and a last block, so `blocks=1` gives two blocks with the same name (a Keras error); here
`blocks=1` builds one block that both projects and strides. For `blocks >= 2` the layers
are identical; `tests/test_models.py::test_vendored_v2_stack_matches_keras_cv` checks it.
"""

from __future__ import annotations

from typing import Any

import keras

from emotionkit.models.layer_names import BN_EPSILON

BN_AXIS = 3


def _preactivation(x: Any, name: str) -> Any:
    x = keras.layers.BatchNormalization(
        axis=BN_AXIS, epsilon=BN_EPSILON, name=name + "_use_preactivation_bn"
    )(x)
    return keras.layers.Activation("relu", name=name + "_use_preactivation_relu")(x)


def _shortcut(x: Any, preact: Any, filters: int, stride: int, conv: bool, name: str) -> Any:
    if conv:
        return keras.layers.Conv2D(filters, 1, strides=stride, name=name + "_0_conv")(preact)
    if stride > 1:
        return keras.layers.MaxPooling2D(1, strides=stride, name=name + "_0_max_pooling")(x)
    return x


def _conv(x: Any, filters: int, kernel: int, stride: int, name: str, bias: bool = False) -> Any:
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=bias, name=name
    )(x)


def _bn_relu(x: Any, name: str) -> Any:
    x = keras.layers.BatchNormalization(axis=BN_AXIS, epsilon=BN_EPSILON, name=name + "_bn")(x)
    return keras.layers.Activation("relu", name=name + "_relu")(x)


def apply_basic_block(
    x: Any, filters: int, stride: int = 1, conv_shortcut: bool = False, name: str = "block"
) -> Any:
    """Pre-activation, then two 3x3 convolutions; the second one strides (ResNet-18/34)."""
    preact = _preactivation(x, name)
    shortcut = _shortcut(x, preact, filters, stride, conv_shortcut, name)
    x = _bn_relu(_conv(preact, filters, 3, 1, name + "_1_conv"), name + "_1")
    x = _conv(x, filters, 3, stride, name + "_2_conv")
    return keras.layers.Add(name=name + "_out")([shortcut, x])


def apply_block(
    x: Any, filters: int, stride: int = 1, conv_shortcut: bool = False, name: str = "block"
) -> Any:
    """Pre-activation, then a 1x1 -> 3x3 (strided) -> 1x1 bottleneck (ResNet-50/101)."""
    preact = _preactivation(x, name)
    shortcut = _shortcut(x, preact, 4 * filters, stride, conv_shortcut, name)
    x = _bn_relu(_conv(preact, filters, 1, 1, name + "_1_conv"), name + "_1")
    x = _bn_relu(_conv(x, filters, 3, stride, name + "_2_conv"), name + "_2")
    x = keras.layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    return keras.layers.Add(name=name + "_out")([shortcut, x])


def apply_stack(
    x: Any,
    filters: int,
    blocks: int,
    stride: int = 2,
    name: str = "v2_stack",
    block_type: str = "block",
    first_shortcut: bool = True,
) -> Any:
    """`blocks` pre-activation blocks: the first may project, the last strides."""
    block_fn = {"basic_block": apply_basic_block, "block": apply_block}[block_type]
    if blocks == 1:
        return block_fn(
            x, filters, stride=stride, conv_shortcut=first_shortcut, name=name + "_block1"
        )
    x = block_fn(x, filters, conv_shortcut=first_shortcut, name=name + "_block1")
    for i in range(2, blocks):
        x = block_fn(x, filters, name=f"{name}_block{i}")
    return block_fn(x, filters, stride=stride, name=f"{name}_block{blocks}")
