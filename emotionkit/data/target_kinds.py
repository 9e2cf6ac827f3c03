"""`data.targets`: turn what a source gives into what the model learns from.

Sources give one class per image (int32 labels) or a distribution (float32 rows summing
to 1). Converted right after loading, so the validation carve, the pipeline, training and
evaluation all see the same kind: a majority class, a distribution or a multi-hot row.
"""

from __future__ import annotations

import numpy as np

from emotionkit.data.types import LoadedData, SplitData


def convert_targets(data: LoadedData, targets: str, min_share: float) -> LoadedData:
    """Every split's labels as `targets` asks (`auto`: unchanged), the kind noted in `data`."""
    if targets == "auto":
        soft = any(split.is_soft for split in data.splits.values())
        data.targets = "distribution" if soft else "single"
        return data
    convert = {"single": _single, "distribution": _distribution, "multi_label": _multi_label}
    num_classes = data.num_classes
    data.splits = {
        name: SplitData(split.images, convert[targets](split, num_classes, min_share), split.ids)
        for name, split in data.splits.items()
    }
    data.targets = targets
    return data


def _single(split: SplitData, num_classes: int, min_share: float) -> np.ndarray:
    return split.hard_labels


def _distribution(split: SplitData, num_classes: int, min_share: float) -> np.ndarray:
    if split.is_soft:
        return split.labels
    return np.eye(num_classes, dtype=np.float32)[split.labels]


def _multi_label(split: SplitData, num_classes: int, min_share: float) -> np.ndarray:
    shares = _distribution(split, num_classes, min_share)
    return (shares >= min_share - 1e-6).astype(np.float32)
