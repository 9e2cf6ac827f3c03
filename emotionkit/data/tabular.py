"""Tabular sources: Kaggle's `fer2013.csv`, soft-label (vote) CSVs such as FER+, `.npz` files.

Each loader reads its whole file into uint8 arrays, like the folder source, and goes through
the same `resize_pixels` / `decode_images` as files on disk, so the same faces give the same
arrays whichever way they are stored. CSV rows are numbered as in a spreadsheet: the header
is row 1, the first image row 2; image ids are `row:<number>`.
"""

from __future__ import annotations

import csv
import math
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.sources import (
    LoadedData,
    SplitData,
    cached_decode,
    check_train_classes,
    decode_images,
    resize_pixels,
    resolve_class_names,
)
from emotionkit.data.synthetic import FER_CLASSES
from emotionkit.errors import DataError
from emotionkit.recipe import DataSpec, Fer2013CsvSource, NpzSource, SoftLabelCsvSource

FER2013_SIDE = 48
SPLIT_ORDER = ("train", "val", "test")
NPZ_SPLIT_KEYS = {"train": ("x", "y"), "val": ("x_val", "y_val"), "test": ("x_test", "y_test")}


@dataclass
class _Rows:
    """The rows a CSV loader keeps, in file order: one entry per row in every list."""

    cells: list[str] = field(default_factory=list)
    """Image path or pixel string (soft-label CSVs)."""
    images: list[np.ndarray] = field(default_factory=list)
    """Parsed pixel strings (fer2013.csv and soft-label pixel columns)."""
    labels: list[Any] = field(default_factory=list)
    """The `emotion` index (fer2013.csv) or the vote vector (soft-label CSVs)."""
    splits: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def load_fer2013_csv(spec: DataSpec, seed: int) -> LoadedData:
    """Kaggle's `emotion,pixels,Usage` file: 48x48 pixel strings, `Usage` naming the split.

    Labels are re-indexed from FER2013's integer order (`label_names`) to the class names
    (`data.classes`, default: `label_names` sorted), so they match `image_folder`'s labels.

    Raises:
        DataError: a missing file or column, an `emotion` outside `label_names` or a
            malformed pixel string (naming the row), or no row mapped to train.
    """
    source = spec.source
    assert isinstance(source, Fer2013CsvSource)
    path = Path(source.path)
    class_names = resolve_class_names(spec, sorted(set(source.label_names)), str(path))
    to_class = np.array([class_names.index(name) for name in source.label_names], np.int32)
    rows = _Rows()
    for number, row in _read_csv(path, ["emotion", "pixels", "Usage"]):
        split = source.usage_splits.get(row["Usage"])
        if split is None:
            rows.drop("unlisted_split")
            continue
        rows.labels.append(_parse_emotion(row["emotion"], len(to_class), path, number))
        rows.images.append(_parse_pixels(row["pixels"], FER2013_SIDE**2, path, number))
        rows.splits.append(split)
        rows.numbers.append(number)
    _require_train(rows.splits, path, f"no row's Usage maps to train ({source.usage_splits})")
    images = resize_pixels(np.stack(rows.images), spec.image_size, spec.channels)
    labels = to_class[np.asarray(rows.labels, dtype=np.int64)]
    splits = _partition(images, labels, rows, np.arange(len(labels)))
    check_train_classes(splits["train"], class_names, path)
    return LoadedData(class_names, splits, dropped=rows.dropped)


def load_soft_label_csv(spec: DataSpec, seed: int) -> LoadedData:
    """Vote counts or probabilities per class (FER+ `fer2013new.csv` style) as soft targets.

    Each row's class columns are normalised to sum to 1; rows without votes are dropped and
    counted in `dropped["no_votes"]`. Images come from a path column (decoded from disk,
    bad files handled by `data.on_error`) or a pixel-string column.

    Raises:
        DataError: no class columns, a missing file or column, a negative or non-numeric
            vote or a malformed pixel string (naming the row), or no train rows.
    """
    source = spec.source
    assert isinstance(source, SoftLabelCsvSource)
    path = Path(source.path)
    columns, class_names = _soft_label_columns(spec, source)
    rows = _read_vote_rows(path, source, columns)
    _require_train(rows.splits, path, f"no row with votes is in train ({source.split_values})")
    errors: list[dict[str, str]] = []
    if source.pixels_column:
        images = resize_pixels(np.stack(rows.images), spec.image_size, spec.channels)
        kept = np.arange(len(images))
    else:
        paths = [path.parent / cell for cell in rows.cells]
        decode = cached_decode if spec.cache else decode_images
        images, kept, errors = decode(paths, spec.image_size, spec.channels, spec.on_error)
    votes = np.asarray(rows.labels, dtype=np.float64)[kept]
    targets = (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)
    splits = _partition(images, targets, rows, kept)
    _require_train(list(splits), path, "no train row has a readable image")
    return LoadedData(class_names, splits, errors=errors, dropped=rows.dropped)


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


def _read_csv(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, row) for every data row, after checking the header."""
    if not path.is_file():
        raise DataError(f"data.source.path: {path} not found.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [name for name in columns if name not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; the header has {header}.")
        for number, row in enumerate(reader, start=2):
            if any(row[name] is None for name in columns):
                raise DataError(f"{path} row {number}: fewer cells than the header has columns.")
            yield number, row


def _parse_emotion(text: str, num_labels: int, path: Path, row: int) -> int:
    emotion = int(text) if text.strip().isdecimal() else -1
    if not 0 <= emotion < num_labels:
        raise DataError(
            f"{path} row {row}: emotion {text!r} is not an index into "
            f"data.source.label_names (0-{num_labels - 1})."
        )
    return emotion


def _parse_pixels(text: str, count: int | None, path: Path, row: int) -> np.ndarray:
    """A row-major string of 0-255 values as a square (S, S) uint8 image.

    `count` is the number of pixels the row must hold; `None` accepts any square count.
    np.fromstring parses the ~36k FER rows in ~2 s, where str.split + int() takes ~7 s.
    """
    with warnings.catch_warnings():
        # NumPy < 2.3 only warns (DeprecationWarning) on trailing non-numbers: make it raise.
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise DataError(
                f"{path} row {row}: the pixel string holds something other than whole "
                "numbers separated by spaces."
            ) from None
    side = math.isqrt(len(values))
    if len(values) != (count or side * side) or side == 0:
        expected = count or "a square number of"
        raise DataError(f"{path} row {row}: {len(values)} pixel values, expected {expected}.")
    if values.min() < 0 or values.max() > 255:
        bad = values[(values < 0) | (values > 255)][0]
        raise DataError(f"{path} row {row}: pixel value {bad} is outside 0-255.")
    return values.astype(np.uint8).reshape(side, side)


def _soft_label_columns(spec: DataSpec, source: SoftLabelCsvSource) -> tuple[list[str], list[str]]:
    """The vote columns, and the class name of each (`data.classes` renames them)."""
    columns = source.class_columns or spec.classes
    if columns is None:
        raise DataError(
            "data.source.class_columns: set it (or data.classes) to the CSV's vote columns in "
            "class order, e.g. [neutral, happiness, surprise, sadness, anger, disgust, fear, "
            "contempt] for FER+."
        )
    class_names = list(spec.classes or columns)
    if len(class_names) != len(columns):
        raise DataError(
            f"data.classes has {len(class_names)} names but data.source.class_columns has "
            f"{len(columns)} columns; give one class name per vote column."
        )
    return list(columns), class_names


def _read_vote_rows(path: Path, source: SoftLabelCsvSource, columns: list[str]) -> _Rows:
    """Rows with a listed split and votes; pixel strings are parsed as they are read."""
    cell_column = source.image_column or source.pixels_column
    assert cell_column is not None  # the recipe requires exactly one of the two
    split_column = [source.split_column] if source.split_column else []
    rows = _Rows()
    pixel_count = None  # every pixel string must hold as many values as the first one
    for number, row in _read_csv(path, [cell_column, *columns, *split_column]):
        split = source.split_values.get(row[split_column[0]]) if split_column else "train"
        if split is None:
            rows.drop("unlisted_split")
            continue
        row_votes = _parse_votes(row, columns, path, number)
        if row_votes.sum() == 0:
            rows.drop("no_votes")
            continue
        if source.pixels_column:
            rows.images.append(_parse_pixels(row[cell_column], pixel_count, path, number))
            pixel_count = rows.images[-1].size
        rows.cells.append(row[cell_column])
        rows.labels.append(row_votes)
        rows.splits.append(split)
        rows.numbers.append(number)
    return rows


def _parse_votes(row: dict[str, str], columns: list[str], path: Path, number: int) -> np.ndarray:
    try:
        votes = np.array([float(row[name]) for name in columns])
    except ValueError:
        raise DataError(f"{path} row {number}: a class column {columns} is not a number.") from None
    if not np.isfinite(votes).all() or (votes < 0).any():
        found = dict(zip(columns, votes.tolist(), strict=True))
        raise DataError(f"{path} row {number}: votes must be finite and >= 0, got {found}.")
    return votes


def _partition(
    images: np.ndarray, labels: np.ndarray, rows: _Rows, kept: np.ndarray
) -> dict[str, SplitData]:
    """Split rows by their split name; `images[i]`, `labels[i]` belong to row `kept[i]`."""
    split_of = np.asarray(rows.splits)[kept]
    splits = {}
    for name in SPLIT_ORDER:
        members = np.flatnonzero(split_of == name)
        if len(members):
            ids = [f"row:{rows.numbers[kept[i]]}" for i in members]
            splits[name] = SplitData(images[members], labels[members], ids)
    return splits


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
        class_names = resolve_class_names(spec, file_names, str(path))
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


def _require_train(split_names: list[str], path: Path, why: str) -> None:
    if "train" not in split_names:
        raise DataError(f"{path}: no train rows: {why}.")
