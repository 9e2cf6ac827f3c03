"""Reload a trained model in float32: what converters and gradient tools need."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_float32_model(path: Path) -> Any:
    """Load a `.keras` file with every layer in float32 (converters need float32 graphs).

    Mixed-precision models keep float32 variables, so rebuilding the architecture under a
    float32 policy and copying the weights loses nothing.
    """
    import keras

    model = keras.saving.load_model(path, compile=False)
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    config = _force_float32(model.get_config())
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _force_float32(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return {**node, "config": {**node.get("config", {}), "name": "float32"}}
        return {key: _force_float32(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_force_float32(item) for item in node]
    return node
