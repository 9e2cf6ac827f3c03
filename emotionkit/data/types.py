"""What every source returns: the splits as uint8 arrays, their labels and the class names.

Shared by the sources, the split carving and the pipeline, so that none of them imports
another to get these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionkit.errors import DataError

SPLIT_ORDER = ("train", "val", "test")


@dataclass
class SplitData:
    """One split: images (N, H, W, C) uint8, labels and an id per image.

    Labels are int32 class indices (N,) or, for soft-label sources, float32 target
    distributions (N, K) whose rows sum to 1.
    """

    images: np.ndarray
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_soft(self) -> bool:
        return self.labels.ndim == 2

    @property
    def hard_labels(self) -> np.ndarray:
        """Class indices: the labels, or the argmax of soft targets (for counts and splits)."""
        return np.argmax(self.labels, axis=1).astype(np.int32) if self.is_soft else self.labels

    def subset(self, indices: np.ndarray) -> SplitData:
        return SplitData(self.images[indices], self.labels[indices], [self.ids[i] for i in indices])

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.hard_labels, minlength=num_classes).tolist()


@dataclass
class LoadedData:
    """All splits of a source, the class names and a fingerprint of the exact pixels."""

    class_names: list[str]
    splits: dict[str, SplitData]
    fingerprint: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    """Skipped inputs (`data.on_error: skip`), each `{"path": ..., "reason": ...}`."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows dropped on purpose by the source, by reason (e.g. soft labels without votes)."""
    targets: str = ""
    """`single`, `distribution` or `multi_label` (see `data.targets`), once converted."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict[str, object]:
        """Split sizes and class counts, for the manifest."""
        return {
            "classes": self.class_names,
            "fingerprint": self.fingerprint,
            "splits": {
                name: {"size": len(split), "class_counts": split.class_counts(self.num_classes)}
                for name, split in self.splits.items()
            },
            "soft_labels": any(split.is_soft for split in self.splits.values()),
            "targets": self.targets,
            "skipped_files": len(self.errors),
            "dropped_rows": self.dropped,
        }


def check_train_classes(train: SplitData, class_names: list[str], where: Path) -> None:
    """Every class needs train images (after dropping bad files), or it cannot be learned."""
    counts = train.class_counts(len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"{where}: no readable train images for class(es) {empty}.")


def resolve_class_names(classes: list[str] | None, found: list[str], where: str) -> list[str]:
    """`data.classes` when given (checked against the names the source holds), else `found`.

    Raises:
        DataError: `data.classes` lacks a class the source holds, naming `where`.
    """
    if classes is None:
        return found
    missing = sorted(set(found) - set(classes))
    if missing:
        raise DataError(f"data.classes {classes} lacks {missing}, which {where} holds.")
    return list(classes)


def require_train(split_names: list[str], path: Path, why: str) -> None:
    """A source without train rows cannot train: say why, naming the file."""
    if "train" not in split_names:
        raise DataError(f"{path}: no train rows: {why}.")
