"""Model stage: `build_model(spec, ...)` returns a plain `keras.Model` of stock layers.

`model.name` picks a registered architecture (`models/spec.py`); the built-in ones register
when imported here. Around the model: `load_pretrained_weights` (the recipe's
`model.weights`), `freeze_layers` (`model.freeze`), `embedding_model` (input -> pooled
features) and `model_summary` (parameters, FLOPs, stage table; saved as `model.json`).
"""

from __future__ import annotations

from emotionkit.models.classifier import build_model, count_parameters
from emotionkit.models.freeze import embedding_model, freeze_layers, unfreeze_all
from emotionkit.models.mobilenet import MobileNetV3SmallSpec
from emotionkit.models.pretrained import load_pretrained_weights
from emotionkit.models.resnet import ResNetSpec
from emotionkit.models.spec import MODELS, ModelSpec
from emotionkit.models.summary import model_summary

__all__ = [
    "MODELS",
    "MobileNetV3SmallSpec",
    "ModelSpec",
    "ResNetSpec",
    "build_model",
    "count_parameters",
    "embedding_model",
    "freeze_layers",
    "load_pretrained_weights",
    "model_summary",
    "unfreeze_all",
]
