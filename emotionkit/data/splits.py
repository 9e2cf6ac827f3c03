"""Validation carving, saved splits and fingerprints: what makes a run's data reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from emotionkit.data.types import LoadedData, SplitData
from emotionkit.errors import DataError


def carve_validation(train: SplitData, val_split: float, seed: int) -> dict[str, SplitData]:
    """Train and val carved from train by `stratified_split`, duplicates kept together.

    Raises:
        DataError: the carved validation split is empty.
    """
    train_idx, val_idx = stratified_split(
        train.hard_labels, val_split, seed, groups=content_hashes(train.images)
    )
    if len(val_idx) == 0:
        raise DataError(
            f"data.val_split ({val_split}) of {len(train)} train images (exact duplicates "
            "kept together) leaves an empty validation split; raise data.val_split or provide "
            "a val split."
        )
    return {"train": train.subset(train_idx), "val": train.subset(val_idx)}


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, groups: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split taking `round(fraction * n_c)` images of every class c.

    Args:
        labels: class index per image.
        fraction: share of every class that goes to validation.
        seed: fixes the split (it depends on nothing else: not file order, not backend).
        groups: a key per image (e.g. its content hash); images sharing a key stay on the
            same side, so exact duplicates cannot leak from train into validation. A group
            is drawn with the class of its first member and only while no class of its
            members would exceed its share.

    Returns:
        Sorted train and validation index arrays.
    """
    keys = np.arange(len(labels)) if groups is None else np.asarray(groups)
    _, first_member, group_of = np.unique(keys, return_index=True, return_inverse=True)
    classes = np.unique(labels)
    # members of each group per class: a duplicate may carry another label than its twin
    group_class_counts = np.zeros((len(first_member), int(labels.max()) + 1), dtype=np.int64)
    np.add.at(group_class_counts, (group_of, labels), 1)
    target = np.zeros(group_class_counts.shape[1], dtype=np.int64)
    target[classes] = [round(fraction * int(np.sum(labels == c))) for c in classes]
    taken = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    val_groups: list[int] = []
    for label in classes:
        for group in rng.permutation(np.flatnonzero(labels[first_member] == label)):
            if taken[label] == target[label]:
                break
            if np.all(taken + group_class_counts[group] <= target):
                val_groups.append(int(group))
                taken += group_class_counts[group]
    in_val = np.isin(group_of, val_groups)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def split_record(splits: dict[str, SplitData]) -> dict[str, dict[str, object]]:
    """The image ids of each split and a hash of the set, as saved in a run's `split.json`."""
    return {
        name: {
            "size": len(split),
            "sha256": hashlib.sha256("\n".join(sorted(split.ids)).encode()).hexdigest(),
            "ids": split.ids,
        }
        for name, split in splits.items()
    }


def apply_split_file(splits: dict[str, SplitData], split_file: Path) -> dict[str, SplitData]:
    """Re-cut train/val to the ids saved in `split_file` (ids of a split are unique).

    Raises:
        DataError: an id in the file is not in the data (the data changed since the run).
    """
    saved = json.loads(Path(split_file).read_text())
    pool = [s for name, s in splits.items() if name in ("train", "val")]
    ids = [i for s in pool for i in s.ids]
    images = np.concatenate([s.images for s in pool])
    labels = np.concatenate([s.labels for s in pool])
    position = {image_id: index for index, image_id in enumerate(ids)}
    recut = dict(splits)
    for name in ("train", "val"):
        missing = [i for i in saved[name]["ids"] if i not in position]
        if missing:
            raise DataError(
                f"{split_file}: {len(missing)} {name} image(s) are not in the data any more "
                f"(first: {missing[0]}); the data changed since this run was made."
            )
        rows = np.asarray([position[i] for i in saved[name]["ids"]], dtype=np.int64)
        recut[name] = SplitData(images[rows], labels[rows], list(saved[name]["ids"]))
    return recut


def content_hashes(images: np.ndarray) -> list[str]:
    """A short SHA-1 of each image's pixels: equal hashes are exact duplicate images."""
    return [hashlib.sha1(image.tobytes()).hexdigest()[:16] for image in images]


def fingerprint(data: LoadedData) -> str:
    """SHA-256 of class names, pixels and labels of every split: same data, same hash."""
    digest = hashlib.sha256("|".join(data.class_names).encode())
    for name in sorted(data.splits):
        split = data.splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.images).tobytes())
        labels = split.labels.astype(np.float32 if split.is_soft else np.int32)
        digest.update(labels.tobytes())
    return digest.hexdigest()[:16]
