"""CSV sources: Kaggle's `fer2013.csv` and soft-label (vote) CSVs such as FER+.

Each loader reads its whole file into uint8 arrays, like the folder source, and goes through
the same `resize_pixels` / `decode_images` as files on disk, so the same faces give the same
arrays whichever way they are stored. CSV rows are numbered as in a spreadsheet: the header
is row 1, the first image row 2; image ids are `row:<number>`.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from emotionkit.data.decode import decode_files, resize_pixels
from emotionkit.data.registry import SOURCES, SourceSpec
from emotionkit.data.types import (
    SPLIT_ORDER,
    LoadedData,
    SplitData,
    check_train_classes,
    require_train,
    resolve_class_names,
)
from emotionkit.errors import DataError
from emotionkit.sections import register_section

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec

FER2013_SIDE = 48
SplitName = Literal["train", "val", "test"]
FER2013_USAGE_SPLITS: dict[str, SplitName] = {
    "Training": "train",
    "PublicTest": "val",
    "PrivateTest": "test",
}
"""fer2013.csv `Usage` -> split (the Kaggle convention: PublicTest is the validation set)."""

SPLIT_NAMES_AS_VALUES: dict[str, SplitName] = {"train": "train", "val": "val", "test": "test"}
SOFT_LABEL_SPLIT_VALUES: dict[str, SplitName] = {**SPLIT_NAMES_AS_VALUES, **FER2013_USAGE_SPLITS}

FER2013_CSV_LABELS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
"""The class of each integer `emotion` in the original fer2013.csv (0 angry ... 6 neutral)."""


@register_section(SOURCES, "kind")
class Fer2013CsvSource(SourceSpec):
    """The original Kaggle `fer2013.csv`: `emotion,pixels,Usage` rows of 48x48 pixel strings."""

    kind: Literal["fer2013_csv"] = "fer2013_csv"
    path: Path = Field(description="The CSV file.")
    usage_splits: dict[str, SplitName] = Field(
        default_factory=FER2013_USAGE_SPLITS.copy,
        description="`Usage` value -> split. Rows whose `Usage` is not listed are skipped; map "
        "PublicTest to test as well to keep only a carved validation split.",
    )
    label_names: list[str] = Field(
        default_factory=lambda: list(FER2013_CSV_LABELS),
        description="Class name of each integer `emotion` (FER2013's order: 0 angry, 1 "
        "disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral); labels are re-indexed to "
        "`data.classes` (default: these names sorted).",
    )

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        return load_fer2013_csv(data, seed)


@register_section(SOURCES, "kind")
class SoftLabelCsvSource(SourceSpec):
    """Vote-count / probability CSVs (FER+ `fer2013new.csv` style, emotion distributions)."""

    kind: Literal["soft_label_csv"] = "soft_label_csv"
    path: Path = Field(description="The CSV file.")
    image_column: str | None = Field(
        None,
        description="Column holding an image path (relative to the CSV's folder). Exactly one "
        "of `image_column` and `pixels_column` is set.",
    )
    pixels_column: str | None = Field(
        None, description="Column holding a space-separated pixel string (square, row-major)."
    )
    class_columns: list[str] | None = Field(
        None,
        description="Columns of votes or probabilities, one per class, in class order "
        "(default: `data.classes`). Each row is normalised to sum to 1; rows without votes "
        "are dropped and counted.",
    )
    split_column: str | None = Field(
        None, description="Column naming each row's split (default: every row is train)."
    )
    drop_majority: list[str] = Field(
        default_factory=list,
        description="Vote columns that are not classes, e.g. FER+'s `[unknown, NF]`: a row "
        "where one of them has more votes than every class column is dropped (the FER+ "
        "protocol) and counted in manifest.json.",
    )
    split_values: dict[str, SplitName] = Field(
        default_factory=SOFT_LABEL_SPLIT_VALUES.copy,
        description="Value of `split_column` -> split; rows with other values are skipped.",
    )

    @model_validator(mode="after")
    def _one_image_column(self) -> SoftLabelCsvSource:
        if (self.image_column is None) == (self.pixels_column is None):
            raise ValueError(
                "set exactly one of image_column (image paths) and pixels_column (pixel strings)"
            )
        return self

    def listed_class_names(self, data: DataSpec) -> list[str] | None:
        return super().listed_class_names(data) or (
            list(self.class_columns) if self.class_columns is not None else None
        )

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        return load_soft_label_csv(data, seed)


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
    class_names = resolve_class_names(spec.classes, sorted(set(source.label_names)), str(path))
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
    require_train(rows.splits, path, f"no row's Usage maps to train ({source.usage_splits})")
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
    require_train(rows.splits, path, f"no row with votes is in train ({source.split_values})")
    errors: list[dict[str, str]] = []
    if source.pixels_column:
        images = resize_pixels(np.stack(rows.images), spec.image_size, spec.channels)
        kept = np.arange(len(images))
    else:
        paths = [path.parent / cell for cell in rows.cells]
        images, kept, errors = decode_files(paths, spec)
    votes = np.asarray(rows.labels, dtype=np.float64)[kept]
    targets = (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)
    splits = _partition(images, targets, rows, kept)
    require_train(list(splits), path, "no train row has a readable image")
    return LoadedData(class_names, splits, errors=errors, dropped=rows.dropped)


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
    extra = source.drop_majority
    for number, row in _read_csv(path, [cell_column, *columns, *extra, *split_column]):
        split = source.split_values.get(row[split_column[0]]) if split_column else "train"
        if split is None:
            rows.drop("unlisted_split")
            continue
        row_votes = _parse_votes(row, columns, path, number)
        if extra and _parse_votes(row, extra, path, number).max() > row_votes.max():
            rows.drop("majority_" + "_or_".join(extra))
            continue
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
