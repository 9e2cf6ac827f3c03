"""`data.class_map`: train on classes made of the source's, by merging, renaming or keeping some.

Applied right after the source is read and before the validation carve, so the carve
stratifies on the classes that are trained. Works on every source: class indices are
remapped, soft-label columns are summed.
"""

from __future__ import annotations

import numpy as np

from emotionkit.data.types import LoadedData, SplitData
from emotionkit.errors import DataError


def check_class_map(class_map: dict[str, list[str]], source_classes: list[str]) -> None:
    """Every class the map names exists in the source (a typo stops before any run).

    Raises:
        DataError: naming the map entry and the unknown class.
    """
    for new_class, members in class_map.items():
        unknown = [name for name in members if name not in source_classes]
        if unknown:
            raise DataError(
                f"data.class_map.{new_class}: {unknown} not among the source's classes "
                f"{source_classes}."
            )


def apply_class_map(data: LoadedData, class_map: dict[str, list[str]] | None) -> LoadedData:
    """The splits relabelled to the map's classes; images of unmapped classes dropped.

    The drop count goes to `dropped["not in data.class_map"]` (shown in manifest.json).
    """
    if class_map is None:
        return data
    check_class_map(class_map, data.class_names)
    target = np.full(len(data.class_names), -1, dtype=np.int32)
    for index, members in enumerate(class_map.values()):
        target[[data.class_names.index(name) for name in members]] = index
    splits = {name: _remap(split, target, len(class_map)) for name, split in data.splits.items()}
    dropped = sum(len(data.splits[name]) - len(splits[name]) for name in splits)
    data.class_names = list(class_map)
    data.splits = splits
    if dropped:
        data.dropped = {**data.dropped, "not in data.class_map": dropped}
    return data


def _remap(split: SplitData, target: np.ndarray, num_classes: int) -> SplitData:
    if split.is_soft:  # sum the merged columns; keep rows with some mass on a kept class
        merged = np.zeros((len(split), num_classes), dtype=np.float32)
        for source, index in enumerate(target):
            if index >= 0:
                merged[:, index] += split.labels[:, source]
        mass = merged.sum(axis=1)
        keep = np.flatnonzero(mass > 0)
        labels = merged[keep] / mass[keep, None]
    else:
        mapped = target[split.labels]
        keep = np.flatnonzero(mapped >= 0)
        labels = mapped[keep]
    return SplitData(split.images[keep], labels, [split.ids[i] for i in keep])
