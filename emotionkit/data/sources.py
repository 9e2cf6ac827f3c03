"""Data sources: each reads a `data.source` kind into uint8 arrays per split.

Sources load the whole split into memory: FER-sized data (48x48 grayscale, ~36k images) is
under 100 MB, and decoding once beats re-decoding PNGs every epoch on a 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces
from emotionkit.errors import DataError
from emotionkit.recipe import DataSpec, ImageFolderSource, SoftLabelCsvSource, SyntheticSource

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
Loader = Callable[["DataSpec", int], "LoadedData"]


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
            "skipped_files": len(self.errors),
            "dropped_rows": self.dropped,
        }


def load_data(spec: DataSpec, seed: int, split_file: Path | None = None) -> LoadedData:
    """Read `spec.source`, carve a validation split if needed, fingerprint the result.

    Args:
        spec: the recipe's `data` section.
        seed: the recipe seed (fixes the carved split).
        split_file: a run's `split.json`; when given, train/val take exactly the images it
            lists, so a resumed or re-evaluated run sees the same split as the original.
    """
    data = load_source(spec, seed)
    if split_file is not None:  # the saved ids decide; no need to carve (and hash) again
        data.splits = apply_split_file(data.splits, split_file)
    elif "val" not in data.splits:
        data.splits = {**data.splits, **carve_validation(data.splits["train"], spec, seed)}
    data.fingerprint = fingerprint(data)
    return data


def carve_validation(train: SplitData, spec: DataSpec, seed: int) -> dict[str, SplitData]:
    """Train and val carved from train by `stratified_split`, duplicates kept together.

    Raises:
        DataError: the carved validation split is empty.
    """
    train_idx, val_idx = stratified_split(
        train.hard_labels, spec.val_split, seed, groups=content_hashes(train.images)
    )
    if len(val_idx) == 0:
        raise DataError(
            f"data.val_split ({spec.val_split}) of {len(train)} train images (exact duplicates "
            "kept together) leaves an empty validation split; raise data.val_split or provide "
            "a val split."
        )
    return {"train": train.subset(train_idx), "val": train.subset(val_idx)}


def load_source(spec: DataSpec, seed: int) -> LoadedData:
    """The splits exactly as `data.source` holds them (no validation split carved)."""
    return _loaders()[spec.source.kind](spec, seed)


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


def load_synthetic(spec: DataSpec, seed: int) -> LoadedData:
    """Built-in synthetic faces; each split has its own seed so no image is shared."""
    source = spec.source
    assert isinstance(source, SyntheticSource)
    sizes = {"train": source.train_size, "val": source.val_size, "test": source.test_size}
    splits = {}
    for offset, (name, size) in enumerate(sizes.items()):
        if size == 0:
            continue
        images, labels = generate_synthetic_faces(
            size, seed=seed * 1000 + offset, image_size=spec.image_size
        )
        if spec.channels == 3:
            images = np.repeat(images, 3, axis=-1)
        splits[name] = SplitData(
            images, labels.astype(np.int32), [f"{name}:{i}" for i in range(size)]
        )
    return LoadedData(list(FER_CLASSES), splits)


def list_class_names(spec: DataSpec) -> list[str]:
    """The class names of `data.source`, decoding no image where the names are declared.

    Folder sources list their class folders; synthetic data has the FER names; the other
    sources take `data.classes`, or the soft-label class columns, or else are read (npz,
    tfds and fer2013_csv name their classes in the data itself).
    """
    source = spec.source
    if isinstance(source, SyntheticSource):
        return list(FER_CLASSES)
    if spec.classes is not None:
        return list(spec.classes)
    if isinstance(source, SoftLabelCsvSource) and source.class_columns is not None:
        return list(source.class_columns)
    if not isinstance(source, ImageFolderSource):
        return load_source(spec, seed=0).class_names
    root = Path(source.path)
    if not (root / "train").is_dir():
        raise DataError(
            f"data.source.path: {root} has no train/ folder; expected ROOT/train/<class>/*.png "
            "(the Kaggle FER2013 layout)."
        )
    found = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not found:
        raise DataError(f"data.source.path: {root / 'train'} has no class sub-folders.")
    return resolve_class_names(spec, found, str(root / "train"))


def load_image_folder(spec: DataSpec, seed: int) -> LoadedData:
    """`ROOT/train/<class>/*` plus optional `ROOT/val/<class>/*` and `ROOT/test/<class>/*`."""
    source = spec.source
    assert isinstance(source, ImageFolderSource)
    root = Path(source.path)
    class_names = list_class_names(spec)
    splits, errors = {}, []
    for name in ("train", "val", "test"):
        if (root / name).is_dir():
            paths, labels = _list_class_folder(root / name, class_names)
            decode = cached_decode if spec.cache else decode_images
            images, kept, split_errors = decode(
                paths, spec.image_size, spec.channels, spec.on_error
            )
            errors.extend(split_errors)
            ids = [str(paths[i].relative_to(root)) for i in kept]
            splits[name] = SplitData(images, labels[kept], ids)
    check_train_classes(splits["train"], class_names, root / "train")
    return LoadedData(class_names, splits, errors=errors)


def check_train_classes(train: SplitData, class_names: list[str], where: Path) -> None:
    """Every class needs train images (after dropping bad files), or it cannot be learned."""
    counts = train.class_counts(len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"{where}: no readable train images for class(es) {empty}.")


def _list_class_folder(folder: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(class_names))
    if unknown:
        raise DataError(f"{folder} has class folders not present in train/: {unknown}.")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        files = (
            sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if (folder / name).is_dir()
            else []
        )
        if not files and folder.name == "train":
            raise DataError(f"Class folder {folder / name} holds no images ({IMAGE_EXTENSIONS}).")
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int32)


def decode_images(
    paths: list[Path], image_size: int, channels: int, on_error: str = "raise"
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Decode PNG/JPEG/BMP/GIF files in parallel with tf.io into (N, S, S, C) uint8.

    Returns:
        The decoded images, the indices of `paths` they come from, and one
        `{"path", "reason"}` per file that could not be read (empty, truncated, not an image).

    Raises:
        DataError: a file failed and `on_error` is `raise`; the message names the file.
    """
    import tensorflow as tf

    def decode(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, _decode_resize(tf.io.read_file(path), image_size, channels)

    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors()  # failures are found below, from the missing indices
    kept_parts, image_parts = [], []
    for indices, images in dataset.batch(4096):
        kept_parts.append(indices.numpy())
        image_parts.append(images.numpy())
    kept = np.concatenate(kept_parts) if kept_parts else np.zeros(0, dtype=np.int64)
    images = (
        np.concatenate(image_parts)
        if image_parts
        else np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    )
    failed = np.setdiff1d(np.arange(len(paths)), kept)
    errors = [{"path": str(paths[i]), "reason": _decode_failure(paths[i])} for i in failed]
    raise_on_bad_files(errors, on_error)
    return images, kept, errors


def cached_decode(
    paths: list[Path], image_size: int, channels: int, on_error: str = "raise"
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """`decode_images`, memoised on disk: decoding FER2013's 28,709 PNGs takes ~10 s.

    The key hashes every path with its size and modification time plus the decode settings,
    so an edited, added or removed file means a fresh decode. Failures are cached too (and
    still raise with `on_error: raise`).
    """
    digest = hashlib.sha256(f"{image_size}|{channels}".encode())
    for path in paths:
        stat = path.stat() if path.is_file() else None  # a missing file is a reported error
        version = f"{stat.st_size}|{stat.st_mtime_ns}" if stat else "missing"
        digest.update(f"|{path.resolve()}|{version}".encode())
    cache_file = cache_dir() / "decoded" / f"{digest.hexdigest()[:24]}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            images, kept = cached["images"], cached["kept"]
            errors = json.loads(str(cached["errors"]))
    else:
        images, kept, errors = decode_images(paths, image_size, channels, on_error="skip")
        _save_npz_atomically(cache_file, images=images, kept=kept, errors=json.dumps(errors))
    raise_on_bad_files(errors, on_error)
    return images, kept, errors


def raise_on_bad_files(errors: list[dict[str, str]], on_error: str) -> None:
    """With `data.on_error: raise`, stop at the first unreadable file, naming it."""
    if errors and on_error == "raise":
        raise DataError(
            f"Cannot decode image {errors[0]['path']}: {errors[0]['reason']} "
            f"({len(errors)} bad file(s); data.on_error: skip drops them)."
        )


def cache_dir() -> Path:
    """`$EMOTIONKIT_CACHE_DIR`, else `~/.cache/emotionkit`."""
    default = Path.home() / ".cache" / "emotionkit"
    return Path(os.environ.get("EMOTIONKIT_CACHE_DIR", default))


def _save_npz_atomically(path: Path, **arrays: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)


def _decode_resize(encoded: Any, image_size: int, channels: int) -> Any:
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _decode_failure(path: Path) -> str:
    """Why one file does not decode: re-read eagerly to get TensorFlow's message."""
    import tensorflow as tf

    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        message = str(getattr(error, "message", error)).splitlines()[0]
        return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]|\s*name:\s*$", "", message)
    return "decode failed"


def resize_pixels(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, H, W[, C]) uint8 arrays from CSV pixel strings, npz or TFDS -> (N, S, S, C) uint8.

    Uses the same antialiased resize and channel conversion as files decoded from disk, so a
    source gives identical arrays whichever way the pixels are stored.
    """
    import tensorflow as tf

    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] not in (1, 3):
        raise DataError(f"Images must have 1 or 3 channels, got shape {images.shape}.")
    if images.shape[-1] != channels:
        convert = tf.image.grayscale_to_rgb if channels == 3 else tf.image.rgb_to_grayscale
        images = convert(tf.constant(images)).numpy()
    if images.shape[1:3] == (image_size, image_size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    resized = tf.image.resize(images, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def resolve_class_names(spec: DataSpec, found: list[str], where: str) -> list[str]:
    """`data.classes` when given (checked against the names the source holds), else `found`.

    Raises:
        DataError: `data.classes` lacks a class the source holds, naming `where`.
    """
    if spec.classes is None:
        return found
    missing = sorted(set(found) - set(spec.classes))
    if missing:
        raise DataError(f"data.classes {spec.classes} lacks {missing}, which {where} holds.")
    return list(spec.classes)


def _loaders() -> dict[str, Loader]:
    """`data.source.kind` -> loader; the tabular and TFDS readers live in their own modules."""
    from emotionkit.data import tabular, tfds_source

    return {
        "synthetic": load_synthetic,
        "image_folder": load_image_folder,
        "fer2013_csv": tabular.load_fer2013_csv,
        "soft_label_csv": tabular.load_soft_label_csv,
        "npz": tabular.load_npz,
        "tfds": tfds_source.load_tfds,
    }
