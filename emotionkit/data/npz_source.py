"""The `npz` source: a NumPy archive of uint8 images and labels or class distributions."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from emotionkit.data.decode import resize_pixels
from emotionkit.data.registry import SOURCES, SourceSpec
from emotionkit.data.synthetic import FER_CLASSES
from emotionkit.data.types import LoadedData, SplitData, check_train_classes, resolve_class_names
from emotionkit.errors import DataError
from emotionkit.sections import register_section

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec

NPZ_SPLIT_KEYS = {"train": ("x", "y"), "val": ("x_val", "y_val"), "test": ("x_test", "y_test")}


@register_section(SOURCES, "kind")
class NpzSource(SourceSpec):
    """A NumPy `.npz` with `x` (N,H,W[,C]) uint8 and `y` (N,) labels or (N,K) distributions."""

    kind: Literal["npz"] = "npz"
    path: Path = Field(
        description="The `.npz` file: `x`, `y`, optionally `x_val`/`y_val`, `x_test`/`y_test` "
        "and `class_names`."
    )

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        return load_npz(data, seed)


def load_npz(spec: DataSpec, seed: int) -> LoadedData:
    """`x`/`y` (train), optional `x_val`/`y_val`, `x_test`/`y_test` and `class_names`.

    `y` holds class indices (N,) or per-class distributions (N, K), normalised per row
    (rows that sum to 0 are dropped and counted in `dropped["no_votes"]`). Class names:
    `data.classes`, else the file's `class_names`, else FER's seven sorted names when the
    labels have seven classes.

    Raises:
        DataError: a missing or unreadable file, a missing array or half a pair, images
            that are not uint8, labels out of range, or no way to name the classes.
    """
    source = spec.source
    assert isinstance(source, NpzSource)
    path = Path(source.path)
    arrays = _read_npz(path)
    pairs = {split: keys for split, keys in NPZ_SPLIT_KEYS.items() if keys[0] in arrays}
    _check_npz_pairs(arrays, list(pairs.values()), path)
    file_names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else None
    class_names, to_class = _npz_class_names(
        spec, file_names, [arrays[y_key] for _, y_key in pairs.values()], path
    )
    splits, no_votes = {}, 0
    for split, (x_key, y_key) in pairs.items():
        labels, keep = _npz_labels(arrays[y_key], to_class, class_names, path, y_key)
        no_votes += len(labels) - len(keep)
        images = resize_pixels(arrays[x_key][keep], spec.image_size, spec.channels)
        splits[split] = SplitData(images, labels[keep], [f"{x_key}:{i}" for i in keep])
    if not len(splits["train"]):
        raise DataError(f"{path}: no train rows: x is empty or no row of y has a weight > 0.")
    if not splits["train"].is_soft:
        check_train_classes(splits["train"], class_names, path)
    dropped = {"no_votes": no_votes} if no_votes else {}
    return LoadedData(class_names, splits, dropped=dropped)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data.source.path: {path} not found.")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is not an .npz archive; write it with np.savez(path, x=..., y=...)."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:  # object arrays, e.g. class names saved with dtype=object
        raise DataError(
            f"{path}: {error}. Save class names as a str array: np.array(names, dtype=str)."
        ) from None
    missing = [key for key in ("x", "y") if key not in arrays]
    half = [f"{x}/{y}" for x, y in NPZ_SPLIT_KEYS.values() if (x in arrays) != (y in arrays)]
    if missing or half:
        raise DataError(
            f"{path}: missing array(s) {missing + half}; it holds {sorted(arrays)}. Expected x "
            "and y, optionally x_val/y_val, x_test/y_test and class_names."
        )
    return arrays


def _npz_class_names(
    spec: DataSpec, file_names: list[str] | None, label_arrays: list[np.ndarray], path: Path
) -> tuple[list[str], np.ndarray]:
    """Class names, and the class index of each label index (file order -> class order)."""
    if file_names is not None:
        class_names = resolve_class_names(spec.classes, file_names, str(path))
        return class_names, np.array([class_names.index(n) for n in file_names], np.int32)
    if spec.classes is not None:
        return list(spec.classes), np.arange(len(spec.classes), dtype=np.int32)
    soft = [y.shape[1] for y in label_arrays if y.ndim == 2]
    hard = [int(y.max()) + 1 for y in label_arrays if y.ndim == 1 and y.size]
    num_labels = max(soft + hard, default=0)
    if num_labels != len(FER_CLASSES):
        raise DataError(
            f"{path} has no class_names and its labels have {num_labels} classes: set "
            "data.classes (the class of each label, in label order) or save class_names."
        )
    return list(FER_CLASSES), np.arange(len(FER_CLASSES), dtype=np.int32)


def _check_npz_pairs(
    arrays: dict[str, np.ndarray], pairs: list[tuple[str, str]], path: Path
) -> None:
    """uint8 images, and labels that are all (N,) integers or all (N, K) distributions."""
    for x_key, y_key in pairs:
        images, labels = arrays[x_key], arrays[y_key]
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise DataError(
                f"{path}: {x_key} must be uint8 (N, H, W) or (N, H, W, C) with pixels 0-255, "
                f"got {images.dtype} {images.shape}; save x.astype(np.uint8)."
            )
        hard = labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer)
        if not hard and (labels.ndim != 2 or not np.issubdtype(labels.dtype, np.number)):
            raise DataError(
                f"{path}: {y_key} must be (N,) integer labels or (N, K) class distributions, "
                f"got {labels.dtype} {labels.shape}."
            )
        if len(images) != len(labels):
            raise DataError(f"{path}: {x_key} holds {len(images)} images but {len(labels)} labels.")
    if len({arrays[y_key].ndim for _, y_key in pairs}) > 1:
        raise DataError(f"{path}: mix of (N,) labels and (N, K) distributions; use one kind.")


def _npz_labels(
    labels: np.ndarray, to_class: np.ndarray, class_names: list[str], path: Path, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """int32 class indices or float32 distributions, and the indices of the rows kept."""
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        if labels.size and (labels.min() < 0 or labels.max() >= len(to_class)):
            raise DataError(
                f"{path}: {key} holds labels outside 0-{len(to_class) - 1} "
                f"({len(to_class)} classes); fix the labels or the class names."
            )
        return to_class[labels], np.arange(len(labels))
    if labels.shape[1] != len(to_class):
        raise DataError(
            f"{path}: {key} has {labels.shape[1]} columns but there are {len(to_class)} "
            "classes; give one column per class."
        )
    if not np.isfinite(labels).all() or (labels < 0).any():
        raise DataError(f"{path}: {key} holds negative or non-finite class weights.")
    targets = np.zeros((len(labels), len(class_names)), np.float64)
    targets[:, to_class] = labels
    totals = targets.sum(axis=1, keepdims=True)
    keep = np.flatnonzero(totals[:, 0] > 0)
    return (targets / np.where(totals > 0, totals, 1)).astype(np.float32), keep
