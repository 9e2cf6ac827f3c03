"""The recipe's `model` section: what every architecture shares, and the model registry.

`model.name` picks a registered `ModelSpec` subclass, so each architecture validates (and
autocompletes) its own fields: `model.depth` is a ResNet field, and setting it for
`mobilenet_v3_small` is an unknown-key error. An architecture builds only its feature map
(`features`); `build_model` wraps it in the shared input, pooling and head, named as
`layer_names` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from emotionkit.registry import Registry
from emotionkit.sections import Section


class ModelSpec(Section):
    """Fields every architecture takes; subclasses add their own and register by `name`."""

    name: str = Field(
        "resnet",
        description="A registered architecture: `resnet` (KerasCV ResNet with a small-image "
        "stem) or `mobilenet_v3_small` (light CPU/edge model; needs 3 channels or "
        "`expand_channels`).",
    )
    expand_channels: bool = Field(
        False,
        description="Repeat a 1-channel (grayscale) input to 3 channels inside the model, to "
        "feed a 3-channel backbone or 3-channel pretrained weights.",
    )
    width: float = Field(1.0, gt=0.0, le=4.0, description="Multiplier on every filter count.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the head.")
    weights: Path | None = Field(
        None,
        description="What to initialise from: a bundled model's name (`fer2013-cpu`: see "
        "`emotionkit models list`), an `.onnx` file exported by emotionkit, or a local "
        "`.keras` or `.weights.h5` file. Layers are matched by name (`.keras`, `.onnx`) or "
        "by Keras' per-class position (`.weights.h5`, which stores no layer names) and by "
        "shape; mismatched layers (e.g. a head with another class count) keep their fresh "
        "initialisation and are listed in manifest.json under `pretrained`. From a bundled "
        "or ONNX model the head keeps the rows of the classes it shares by name, and the "
        "model's input normalisation is kept unless `data.pixel_mean` is set.",
    )
    weights_strict: bool = Field(
        False,
        description="Make any layer that `model.weights` cannot fill (shape mismatch, "
        "missing or unused) an error instead of a reported skip.",
    )
    freeze: Literal["none", "backbone", "stem"] | list[str] = Field(
        "none",
        description="Layers kept frozen (not trained; their BatchNorm runs in inference "
        "mode): `backbone` (all but the `logits` head), `stem` (the `conv1_*` layers) or a "
        "list of layer-name glob patterns such as `[conv1_*, stack0_*]`. See "
        "`train.unfreeze_at_epoch`.",
    )

    freeze_batchnorm: bool = Field(
        False,
        description="Keep every BatchNorm layer in inference mode (its statistics fixed) "
        "for the whole run, also after `train.unfreeze_at_epoch`. Needed with bundled or "
        "ONNX weights, whose BatchNorm statistics were folded into the convolutions; also "
        "steadier when fine-tuning on a few hundred images.",
    )

    @model_validator(mode="after")
    def _onnx_weights_keep_batchnorm(self) -> ModelSpec:
        if self.weights is not None and _is_folded(self.weights) and not self.freeze_batchnorm:
            raise ValueError(
                f"model.weights {str(self.weights)!r} has its BatchNorm folded into the "
                "convolutions (an ONNX export): set model.freeze_batchnorm: true"
            )
        return self

    def features(self, x: Any, channels: int) -> Any:
        """The backbone on the normalised input `x`: the last spatial feature map.

        Args:
            x: the normalised (and, with `expand_channels`, 3-channel) input tensor.
            channels: the recipe's `data.channels`, before any expansion.
        """
        raise NotImplementedError

    def model_name(self) -> str:
        """The `keras.Model`'s name (shown in summaries and exports)."""
        return self.name


def _is_folded(weights: Path) -> bool:
    """An ONNX export or a bundled model (which are ONNX files): BatchNorm folded away."""
    from emotionkit.bundled import BUNDLED_FILES

    return weights.suffix == ".onnx" or str(weights) in BUNDLED_FILES


MODELS: Registry[type[ModelSpec]] = Registry("model", "model.name")
