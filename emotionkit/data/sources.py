"""Data sources: each reads a `data.source` kind into uint8 arrays per split.

Sources load the whole split into memory: FER-sized data (48x48 grayscale, ~36k images) is
under 100 MB, and decoding once beats re-decoding PNGs every epoch on a 2-core machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces
from emotionkit.errors import DataError
from emotionkit.recipe import DataSpec, ImageFolderSource, SyntheticSource

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class SplitData:
    """One split: images (N, H, W, C) uint8, labels (N,) int32 and an id per image."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> SplitData:
        return SplitData(self.images[indices], self.labels[indices], [self.ids[i] for i in indices])

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class LoadedData:
    """All splits of a source, the class names and a fingerprint of the exact pixels."""

    class_names: list[str]
    splits: dict[str, SplitData]
    fingerprint: str = ""

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
        }


def load_data(spec: DataSpec, seed: int) -> LoadedData:
    """Read `spec.source`, carve a stratified validation split if needed, fingerprint it."""
    loader = SOURCES[spec.source.kind]
    data = loader(spec, seed)
    if "val" not in data.splits:
        train_idx, val_idx = stratified_split(data.splits["train"].labels, spec.val_split, seed)
        train = data.splits["train"]
        data.splits = {
            **data.splits,
            "train": train.subset(train_idx),
            "val": train.subset(val_idx),
        }
    data.fingerprint = fingerprint(data)
    return data


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split that takes `round(fraction * n_c)` images of every class.

    Returns sorted index arrays so the split does not depend on dictionary or file order.
    """
    rng = np.random.default_rng(seed)
    val_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = round(fraction * len(members))
        val_parts.append(rng.permutation(members)[:take])
    val_idx = np.sort(np.concatenate(val_parts)) if val_parts else np.array([], dtype=int)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def fingerprint(data: LoadedData) -> str:
    """SHA-256 of class names, pixels and labels of every split: same data, same hash."""
    digest = hashlib.sha256("|".join(data.class_names).encode())
    for name in sorted(data.splits):
        split = data.splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(split.labels.astype(np.int32).tobytes())
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
    """The class names of `data.source` without reading any image (for model summaries)."""
    source = spec.source
    if isinstance(source, SyntheticSource):
        return list(FER_CLASSES)
    root = Path(source.path)
    if not (root / "train").is_dir():
        raise DataError(
            f"data.source.path: {root} has no train/ folder; expected ROOT/train/<class>/*.png "
            "(the Kaggle FER2013 layout)."
        )
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise DataError(f"data.source.path: {root / 'train'} has no class sub-folders.")
    return class_names


def load_image_folder(spec: DataSpec, seed: int) -> LoadedData:
    """`ROOT/train/<class>/*` plus optional `ROOT/val/<class>/*` and `ROOT/test/<class>/*`."""
    source = spec.source
    assert isinstance(source, ImageFolderSource)
    root = Path(source.path)
    class_names = list_class_names(spec)
    splits = {}
    for name in ("train", "val", "test"):
        if (root / name).is_dir():
            paths, labels = _list_class_folder(root / name, class_names)
            images = decode_images(paths, spec.image_size, spec.channels)
            ids = [str(p.relative_to(root)) for p in paths]
            splits[name] = SplitData(images, labels, ids)
    return LoadedData(class_names, splits)


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


def decode_images(paths: list[Path], image_size: int, channels: int) -> np.ndarray:
    """Decode PNG/JPEG/BMP/GIF files in parallel with tf.io into (N, S, S, C) uint8."""
    import tensorflow as tf

    def decode(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    dataset = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = [batch.numpy() for batch in dataset.batch(4096)]
    if not batches:
        return np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    return np.concatenate(batches)


SOURCES: dict[str, Callable[[DataSpec, int], LoadedData]] = {
    "synthetic": load_synthetic,
    "image_folder": load_image_folder,
}
