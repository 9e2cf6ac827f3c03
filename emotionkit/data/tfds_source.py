"""TFDS source: a TensorFlow Datasets dataset already prepared under `data_dir`, read offline.

The loader never downloads: `tfds.builder(name, data_dir=...)` finds the prepared files
(with or without the dataset's code installed) and `as_dataset` reads them. Preparing a
dataset (`tfds build`, `download_and_prepare`) is left to the user, on a machine that can
fetch it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from emotionkit.data.decode import resize_pixels
from emotionkit.data.registry import SOURCES, SourceSpec
from emotionkit.data.types import LoadedData, SplitData, check_train_classes, resolve_class_names
from emotionkit.errors import DataError
from emotionkit.sections import register_section

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec

# Decoded images are resized a batch at a time: 1024 48x48 faces are ~2 MB.
READ_BATCH = 1024
SplitName = Literal["train", "val", "test"]
TFDS_DEFAULT_SPLITS: dict[SplitName, str] = {"train": "train"}


@register_section(SOURCES, "kind")
class TfdsSource(SourceSpec):
    """A TensorFlow Datasets dataset already prepared under `data_dir` (read offline)."""

    kind: Literal["tfds"] = "tfds"
    name: str = Field(description="Dataset name, optionally with config/version (`name:1.0.0`).")
    data_dir: Path = Field(description="TFDS data directory holding the prepared dataset.")
    splits: dict[SplitName, str] = Field(
        default_factory=TFDS_DEFAULT_SPLITS.copy,
        description="Our split -> TFDS split expression (e.g. `{train: 'train[:90%]', val: "
        "'train[90%:]', test: test}`).",
    )
    image_key: str = Field("image", description="Feature holding the image.")
    label_key: str = Field("label", description="Feature holding the integer class label.")

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        return load_tfds(data, seed)


def load_tfds(spec: DataSpec, seed: int) -> LoadedData:
    """Read `data.source.splits` of a prepared TFDS dataset into uint8 arrays.

    Class names are `data.classes` (labels are re-indexed by name when the label feature is
    a `ClassLabel`) or the `ClassLabel`'s names. Ids are TFDS' own `tfds_id`s.

    Raises:
        DataError: the dataset is not prepared in `data_dir`, a feature or split is
            unknown, the images are not uint8, or a label is out of range.
    """
    import tensorflow_datasets as tfds

    source = spec.source
    assert isinstance(source, TfdsSource)
    builder = _prepared_builder(tfds, source)
    where = f"TFDS dataset {source.name!r} in {source.data_dir}"
    features = builder.info.features
    for key in ("image_key", "label_key"):
        if getattr(source, key) not in features:
            raise DataError(
                f"data.source.{key}: {where} has no feature {getattr(source, key)!r}; "
                f"it has {sorted(features.keys())}."
            )
    class_names, to_class = _class_names(spec, features[source.label_key], where)
    splits: dict[str, SplitData] = {}
    for name, expression in source.splits.items():
        images, labels, ids = _read_split(tfds, builder, source, expression, spec)
        if labels.size and (labels.min() < 0 or labels.max() >= len(to_class)):
            raise DataError(
                f"data.source.splits.{name}: {where} has labels outside 0-{len(to_class) - 1} "
                f"in split {expression!r} (unlabelled examples are often -1)."
            )
        if not len(labels):
            raise DataError(f"data.source.splits.{name}: {expression!r} of {where} is empty.")
        splits[name] = SplitData(images, to_class[labels], ids)
    if "train" not in splits:
        raise DataError(f"data.source.splits: map train to a split of {where}.")
    check_train_classes(splits["train"], class_names, Path(source.data_dir) / source.name)
    return LoadedData(class_names, splits)


def _prepared_builder(tfds: Any, source: TfdsSource) -> Any:
    """The dataset's builder, or a DataError saying how to prepare it (never downloads)."""
    data_dir = Path(source.data_dir)
    try:
        builder = tfds.builder(source.name, data_dir=str(data_dir))
        prepared = builder.is_prepared()
    except ValueError as error:  # DatasetNotFoundError: neither code nor files found
        reason = str(error).splitlines()[0]
        prepared = False
    else:
        reason = "no prepared files for this version"
    if prepared:
        return builder
    present = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    raise DataError(
        f"data.source: TFDS dataset {source.name!r} is not prepared in {data_dir} ({reason}; "
        f"that folder holds {present}). emotionkit reads TFDS offline: prepare it once where "
        f"it can be downloaded, e.g. `tfds build {source.name} --data_dir {data_dir}`, or "
        "point data.source.data_dir at the folder holding <name>/<version>/."
    )


def _class_names(spec: DataSpec, label_feature: Any, where: str) -> tuple[list[str], np.ndarray]:
    """Class names, and the class index of each dataset label (dataset order -> ours)."""
    found = list(getattr(label_feature, "names", None) or [])
    if found:
        class_names = resolve_class_names(spec.classes, found, where)
        return class_names, np.array([class_names.index(name) for name in found], np.int32)
    if spec.classes is None:
        raise DataError(
            f"data.classes: the label feature of {where} has no class names (not a "
            "ClassLabel); set data.classes to the class of each label, in label order."
        )
    return list(spec.classes), np.arange(len(spec.classes), dtype=np.int32)


def _read_split(
    tfds: Any, builder: Any, source: TfdsSource, expression: str, spec: DataSpec
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, S, S, C) uint8, int64 labels and tfds_ids of one split expression."""
    try:
        dataset = builder.as_dataset(
            split=expression,
            shuffle_files=False,
            read_config=tfds.ReadConfig(add_tfds_id=True),
        )
    except ValueError as error:  # unknown split or bad slicing syntax
        raise DataError(
            f"data.source.splits: {expression!r}: {str(error).splitlines()[0]}"
        ) from None
    image_shape = builder.info.features[source.image_key].shape
    # Images of different sizes cannot share a batch: resize those one by one.
    batch = READ_BATCH if None not in image_shape else 1
    keys = (source.image_key, source.label_key, "tfds_id")
    dataset = dataset.map(lambda example: tuple(example[key] for key in keys)).batch(batch)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    ids: list[str] = []
    for image, label, tfds_id in tfds.as_numpy(dataset):
        if image.dtype != np.uint8:
            raise DataError(
                f"data.source.image_key: {source.image_key!r} holds {image.dtype} images, "
                "expected uint8."
            )
        images.append(resize_pixels(image, spec.image_size, spec.channels))
        labels.append(label.astype(np.int64))
        ids.extend(i.decode() for i in tfds_id)
    if not images:
        empty = np.zeros((0, spec.image_size, spec.image_size, spec.channels), np.uint8)
        return empty, np.zeros(0, np.int64), []
    return np.concatenate(images), np.concatenate(labels), ids
