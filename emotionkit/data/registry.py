"""The data stage's registries: sources (`data.source.kind`) and augmentation ops.

A source is a `SourceSpec` subclass whose `kind` names it and whose `load` reads it; an
augmentation op is an `AugmentOp` subclass whose fields are its parameters and whose `build`
returns the function on a batch. Decorate the class with `@register_section(SOURCES, "kind")`
or `@register_entry(AUGMENTATIONS, "name")` and recipes can use it: the schema, the JSON
Schema and the did-you-mean errors all read these registries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from emotionkit.errors import DataError
from emotionkit.registry import Registry
from emotionkit.sections import RegisteredEntry, Section

if TYPE_CHECKING:
    from emotionkit.data.augment_arrays import ArrayFns
    from emotionkit.data.spec import DataSpec
    from emotionkit.data.types import LoadedData

Op = Callable[[Any, Any], tuple[Any, Any]]
"""`(images, targets) -> (images, targets)`: float32 0-255 NHWC images, (N, K) targets."""


class SourceSpec(Section):
    """Base of every `data.source`: `kind` picks the class, `load` reads the splits."""

    kind: str

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        """The splits exactly as the source holds them (no validation split carved).

        Args:
            data: the whole `data` section (image size, channels, classes, cache...).
            seed: the recipe seed, for sources that draw anything at random.
        """
        raise NotImplementedError

    def check(self, data: DataSpec) -> None:
        """Cheap checks before a run directory is made: the file or folder it reads exists.

        Raises:
            DataError: naming `data.source.path` and the missing path.
        """
        path = getattr(self, "path", None)
        if path is not None and not Path(path).exists():
            raise DataError(f"data.source.path: {path} not found.")

    def listed_class_names(self, data: DataSpec) -> list[str] | None:
        """The class names when known without decoding images, else None (then `load`)."""
        return list(data.classes) if data.classes is not None else None


class AugmentOp(RegisteredEntry):
    """Base of every `data.augment` op: typed parameters, and `apply` on a batch.

    `apply` is written once with `fns` (`augment_arrays.ArrayFns`), so the same op runs in
    `tf.data` on the host and inside the compiled train step (`data.augment_on: device`).
    An op that holds a stateful Keras layer instead sets `compiles = False` and overrides
    `host_op`: it then runs on the host only.
    """

    compiles: ClassVar[bool] = True
    """Runs inside a compiled train step on JAX and TensorFlow."""

    def apply(self, fns: ArrayFns, images: Any, targets: Any, key: Any) -> tuple[Any, Any]:
        """The augmented batch: float32 0-255 NHWC images and float32 (N, K) targets.

        Args:
            fns: the placement's array and random functions.
            images: the batch's images.
            targets: the batch's target rows (one-hot or distributions).
            key: a random key for this op and this batch only (split it with `fns.fold`).
        """
        raise NotImplementedError

    def host_op(self, seed: int) -> Op | None:
        """A host-only op's function on a batch (built once per epoch), else None."""
        return None


SOURCES: Registry[type[SourceSpec]] = Registry("data source", "data.source.kind")
AUGMENTATIONS: Registry[type[AugmentOp]] = Registry("augmentation", "data.augment")
