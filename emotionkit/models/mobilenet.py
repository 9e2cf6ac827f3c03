"""A light backbone for CPU and edge: Keras' MobileNetV3-Small, built from local code.

`keras.applications.MobileNetV3Small(weights=None)` is plain Keras code (nothing is
downloaded). Built on our normalised input tensor, its layers join the classifier's graph,
so the saved model is one flat functional model of stock layers, like the ResNets.
"""

from __future__ import annotations

from typing import Any, Literal

from emotionkit.errors import RecipeError
from emotionkit.models.spec import MODELS, ModelSpec
from emotionkit.sections import register_section


@register_section(MODELS, "name")
class MobileNetV3SmallSpec(ModelSpec):
    """MobileNetV3-Small: `width` is its alpha; needs 3 channels or `expand_channels`."""

    name: Literal["mobilenet_v3_small"] = "mobilenet_v3_small"

    def features(self, x: Any, channels: int) -> Any:
        if channels == 1 and not self.expand_channels:
            raise RecipeError(
                "model.name=mobilenet_v3_small needs 3 input channels: set "
                "model.expand_channels=true (or data.channels=3)."
            )
        return mobilenet_v3_small_features(x, self.width)


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
