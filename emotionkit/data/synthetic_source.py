"""The `synthetic` source: built-in cartoon faces, no download, for the quickstart and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from emotionkit.data.registry import SOURCES, SourceSpec
from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.sections import register_section

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec


@register_section(SOURCES, "kind")
class SyntheticSource(SourceSpec):
    """Built-in synthetic faces: no download, deterministic, for quickstart and tests."""

    kind: Literal["synthetic"] = "synthetic"
    train_size: int = Field(3000, ge=7, description="Number of training images.")
    val_size: int = Field(700, ge=7, description="Number of validation images.")
    test_size: int = Field(0, ge=0, description="Number of test images (0: no test split).")

    def listed_class_names(self, data: DataSpec) -> list[str] | None:
        return list(FER_CLASSES)

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        """Each split has its own seed, so no image is shared between splits."""
        sizes = {"train": self.train_size, "val": self.val_size, "test": self.test_size}
        splits = {}
        for offset, (name, size) in enumerate(sizes.items()):
            if size == 0:
                continue
            images, labels = generate_synthetic_faces(
                size, seed=seed * 1000 + offset, image_size=data.image_size
            )
            if data.channels == 3:
                images = np.repeat(images, 3, axis=-1)
            splits[name] = SplitData(
                images, labels.astype(np.int32), [f"{name}:{i}" for i in range(size)]
            )
        return LoadedData(list(FER_CLASSES), splits)
