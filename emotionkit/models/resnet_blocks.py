"""Residual blocks and stacks of ResNet v1, vendored from KerasCV 0.9.0.

Source: keras_cv/src/models/backbones/resnet_v1/resnet_v1_backbone.py (`apply_basic_block`,
`apply_block`, `apply_stack`), Copyright 2023 The KerasCV Authors, Apache License 2.0.

Why vendored: importing `keras_cv` imports TensorFlow, even under the JAX backend. With these
~80 lines copied (same layer names, same structure), a JAX-only install (e.g. a GPU machine
without TensorFlow) builds the model, and a `.keras` file is identical either way.
`tests/test_models.py::test_vendored_stack_matches_keras_cv` checks layer names, shapes and
outputs against KerasCV's own functions wherever KerasCV is installed.
"""

from __future__ import annotations

from typing import Any

import keras

from emotionkit.models.layer_names import BN_EPSILON

BN_AXIS = 3


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same" if kernel > 1 else "valid",
        use_bias=False,
        name=name + "_conv",
    )(x)
    return keras.layers.BatchNormalization(axis=BN_AXIS, epsilon=BN_EPSILON, name=name + "_bn")(x)


def apply_basic_block(
    x: Any, filters: int, stride: int = 1, conv_shortcut: bool = True, name: str = "block"
) -> Any:
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""
    shortcut = _conv_bn(x, filters, 1, stride, name + "_0") if conv_shortcut else x
    x = _conv_bn(x, filters, 3, stride, name + "_1")
    x = keras.layers.Activation("relu", name=name + "_1_relu")(x)
    x = _conv_bn(x, filters, 3, 1, name + "_2")
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.Activation("relu", name=name + "_out")(x)


def apply_block(
    x: Any, filters: int, stride: int = 1, conv_shortcut: bool = True, name: str = "block"
) -> Any:
    """1x1 -> 3x3 -> 1x1 bottleneck with 4x expansion (ResNet-50/101)."""
    shortcut = _conv_bn(x, 4 * filters, 1, stride, name + "_0") if conv_shortcut else x
    x = _conv_bn(x, filters, 1, stride, name + "_1")
    x = keras.layers.Activation("relu", name=name + "_1_relu")(x)
    x = _conv_bn(x, filters, 3, 1, name + "_2")
    x = keras.layers.Activation("relu", name=name + "_2_relu")(x)
    x = _conv_bn(x, 4 * filters, 1, 1, name + "_3")
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.Activation("relu", name=name + "_out")(x)


def apply_stack(
    x: Any,
    filters: int,
    blocks: int,
    stride: int = 2,
    name: str = "v1_stack",
    block_type: str = "block",
    first_shortcut: bool = True,
) -> Any:
    """`blocks` residual blocks; the first one may stride and project the shortcut."""
    block_fn = {"basic_block": apply_basic_block, "block": apply_block}[block_type]
    x = block_fn(x, filters, stride=stride, conv_shortcut=first_shortcut, name=name + "_block1")
    for i in range(2, blocks + 1):
        x = block_fn(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x
