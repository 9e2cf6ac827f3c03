"""Freeze parts of a model for fine-tuning, and reach its penultimate embedding.

Freezing sets `layer.trainable = False`. In Keras 3 that also runs a frozen BatchNorm in
inference mode (its moving statistics are used and no longer updated), which is what
fine-tuning wants: a small, differently distributed dataset would otherwise overwrite the
pretrained statistics in the first steps of a head warmup.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from emotionkit.errors import ModelError
from emotionkit.models.layer_names import EMBEDDING as EMBEDDING_LAYER
from emotionkit.models.layer_names import HEAD as HEAD_LAYERS
from emotionkit.models.layer_names import STEM_PREFIX

STEM_PATTERNS = [f"{STEM_PREFIX}*"]


def freeze_layers(model: Any, freeze: str | list[str], batchnorm: bool = False) -> list[str]:
    """Set `trainable = False` on the layers that `model.freeze` selects.

    Args:
        model: a model from `build_model`.
        freeze: `none`, `backbone`, `stem` or a list of layer-name glob patterns.
        batchnorm: also every BatchNormalization layer (`model.freeze_batchnorm`).

    Returns:
        Names of the frozen layers that hold weights (what the manifest records).

    Raises:
        ModelError: a pattern that matches no layer (most likely a typo).
    """
    selected = _selected_layers(model, freeze)
    if batchnorm:
        selected += [name for name in _batchnorm_layers(model) if name not in selected]
    for name in selected:
        model.get_layer(name).trainable = False
    return [name for name in selected if model.get_layer(name).weights]


def _selected_layers(model: Any, freeze: str | list[str]) -> list[str]:
    names = [layer.name for layer in model.layers]
    if freeze == "none":
        return []
    if freeze == "backbone":
        return [name for name in names if name not in HEAD_LAYERS]
    selected: list[str] = []
    for pattern in STEM_PATTERNS if freeze == "stem" else list(freeze):
        matches = fnmatch.filter(names, pattern)
        if not matches:
            raise ModelError(
                f"model.freeze: pattern {pattern!r} matches no layer; layer names look "
                f"like {', '.join(names[1:6])}, ... (see `emotionkit model summary`)."
            )
        selected.extend(name for name in matches if name not in selected)
    return selected


def unfreeze_all(model: Any, keep_batchnorm: bool = False) -> None:
    """Make every layer trainable again (phase 2 of two-stage fine-tuning).

    With `keep_batchnorm` (`model.freeze_batchnorm`) the BatchNorm layers stay frozen.
    """
    keep = set(_batchnorm_layers(model)) if keep_batchnorm else set()
    for layer in model.layers:
        layer.trainable = layer.name not in keep


def _batchnorm_layers(model: Any) -> list[str]:
    import keras

    return [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]


def embedding_model(model: Any) -> Any:
    """A `keras.Model` from the classifier's input to its pooled embedding (`avg_pool`).

    The embedding is what the head classifies, so it is the representation to plot (t-SNE)
    or to search by similarity. The returned model shares the classifier's layers and
    weights: no copy, no retraining.

    Example:
        >>> features = embedding_model(model).predict(images)  # (batch, channels)
    """
    import keras

    return keras.Model(model.input, model.get_layer(EMBEDDING_LAYER).output, name="embedding")
