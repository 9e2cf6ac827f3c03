"""The classifier around any registered backbone: raw pixels in, float32 logits out.

Every architecture gets the same input (`image`), normalisation (`normalize`), optional
channel expansion, pooling (`avg_pool`) and head (`head_dropout`, `logits`), so freezing,
embeddings, Grad-CAM, the summary and export work on all of them (see `layer_names`).
"""

from __future__ import annotations

import math
from typing import Any

from emotionkit.models import layer_names
from emotionkit.models.spec import ModelSpec


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
        spec: the recipe's `model` section (a registered `ModelSpec` subclass).
        image_size: square input size.
        channels: 1 or 3.
        num_classes: logits width.
        pixel_mean: train-set pixel mean (0-255) folded into the input layer.
        pixel_std: train-set pixel std (0-255).

    Example:
        >>> model = build_model(ResNetSpec(), image_size=48, channels=1, num_classes=7)
        >>> round(model.count_params() / 1e6, 2)
        11.18
    """
    import keras

    inputs = keras.Input((image_size, image_size, channels), name=layer_names.INPUT)
    x = keras.layers.Rescaling(
        1.0 / pixel_std, offset=-pixel_mean / pixel_std, name=layer_names.NORMALIZE
    )(inputs)
    if spec.expand_channels and channels == 1:
        x = keras.layers.Concatenate(name=layer_names.EXPAND_CHANNELS)([x, x, x])
    x = spec.features(x, channels)
    x = keras.layers.GlobalAveragePooling2D(name=layer_names.EMBEDDING)(x)
    if spec.dropout > 0:
        x = keras.layers.Dropout(spec.dropout, name=layer_names.HEAD_DROPOUT)(x)
    # float32 logits even under mixed precision: softmax/CE in bf16 loses accuracy.
    logits = keras.layers.Dense(num_classes, dtype="float32", name=layer_names.LOGITS)(x)
    return keras.Model(inputs, logits, name=spec.model_name())


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts."""
    trainable = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    return {"trainable": int(trainable), "total": int(model.count_params())}
