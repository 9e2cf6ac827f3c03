"""A model, a source, an augmentation op and a loss of our own, registered from this one file.

The recipe names this module in `plugins` and then uses the four by name: nothing else in
emotionkit is edited to add them (issue 17's acceptance check, `tests/test_registries.py`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from emotionkit.data.augment import gate
from emotionkit.data.augment_arrays import ArrayFns
from emotionkit.data.registry import AUGMENTATIONS, SOURCES, AugmentOp, SourceSpec
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.models.spec import MODELS, ModelSpec
from emotionkit.sections import register_entry, register_section
from emotionkit.training.registries import register_loss


@register_section(SOURCES, "kind")
class StripesSource(SourceSpec):
    """Horizontal against vertical stripes with noise: two classes a tiny net separates."""

    kind: Literal["toy_stripes"] = "toy_stripes"
    size: int = Field(128, ge=16, description="Images in train (validation is carved).")

    def load(self, data: Any, seed: int) -> LoadedData:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, self.size).astype(np.int32)
        side = data.image_size
        stripes = (np.arange(side) // 4 % 2 * 200.0)[None, :, None]
        vertical = np.broadcast_to(stripes, (side, side, 1))
        images = np.where(labels[:, None, None, None] == 1, vertical, vertical.transpose(1, 0, 2))
        noisy = images + rng.normal(0, 20, images.shape)
        pixels = np.clip(noisy, 0, 255).astype(np.uint8)
        ids = [f"stripes:{i}" for i in range(self.size)]
        return LoadedData(["horizontal", "vertical"], {"train": SplitData(pixels, labels, ids)})


@register_section(MODELS, "name")
class ToyConvSpec(ModelSpec):
    """One strided convolution: the smallest backbone the shared head accepts."""

    name: Literal["toy_conv"] = "toy_conv"
    filters: int = Field(4, ge=1, description="Convolution filters.")

    def features(self, x: Any, channels: int) -> Any:
        import keras

        conv = keras.layers.Conv2D(self.filters, 3, strides=2, name="conv1_toy")
        return keras.layers.Activation("relu", name="conv1_relu")(conv(x))


@register_entry(AUGMENTATIONS, "toy_invert")
class Invert(AugmentOp):
    """Photographic negative of an image, with probability `p`."""

    p: float = Field(0.5, ge=0.0, le=1.0)

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> tuple[Any, Any]:
        return gate(fns, key, self.p, (images, targets), (255.0 - images, targets))


@register_loss("toy_focal_ce")
def toy_focal_cross_entropy(spec: Any, alpha: list[float] | None) -> Any:
    """Keras' own focal cross-entropy on logits, with a fixed gamma of 1."""
    import keras

    return keras.losses.CategoricalFocalCrossentropy(from_logits=True, gamma=1.0)
