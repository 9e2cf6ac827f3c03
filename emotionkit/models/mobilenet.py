"""A light backbone for CPU and edge: Keras' MobileNetV3-Small, built from local code.

`keras.applications.MobileNetV3Small(weights=None)` is plain Keras code (nothing is
downloaded). Built on our normalised input tensor, its layers join the classifier's graph,
so the saved model is one flat functional model of stock layers, like the ResNets.
"""

from __future__ import annotations

from typing import Any


def mobilenet_v3_small_features(x: Any, width: float) -> Any:
    """MobileNetV3-Small feature map (before pooling) on an already-normalised tensor.

    Args:
        x: a 3-channel tensor; 1-channel inputs go through `model.expand_channels` first.
        width: MobileNet's `alpha` (channel multiplier).
    """
    import keras

    backbone = keras.applications.MobileNetV3Small(
        input_tensor=x,
        include_top=False,
        weights=None,
        alpha=width,
        # our own `normalize` layer already standardises the pixels
        include_preprocessing=False,
    )
    return backbone.output
