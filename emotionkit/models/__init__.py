"""Model stage: `build_model(spec, ...)` returns a plain `keras.Model` of stock layers."""

from __future__ import annotations

from emotionkit.models.resnet import build_model, count_parameters

__all__ = ["build_model", "count_parameters"]
