"""Sources, the stratified split and the tf.data pipeline, under the active backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emotionkit.data import load_data
from emotionkit.data.augment import build_augment_fn
from emotionkit.data.pipeline import build_dataset, class_weights_from_counts, pixel_mean_std
from emotionkit.data.spec import DataSpec
from emotionkit.data.splits import stratified_split
from emotionkit.data.types import SplitData
from emotionkit.errors import DataError, RecipeError


def write_image_folder(
    root: Path, counts: dict[str, int], size: int = 40, rgb: bool = False
) -> None:
    """A tiny Kaggle-layout folder; each class has its own grey level so labels are checkable.

    One corner pixel varies per image, so no two images are exact duplicates.
    """
    for label, (name, count) in enumerate(counts.items()):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = np.full((size, size, 3 if rgb else 1), 20 + 30 * label, np.uint8)
            pixels[:4, :4] = 8 * i
            encoded = (
                tf.io.encode_png(pixels) if i % 2 == 0 else tf.io.encode_jpeg(pixels, quality=100)
            )
            (folder / f"img_{i}.{'png' if i % 2 == 0 else 'jpg'}").write_bytes(encoded.numpy())


def test_stratified_split_is_seeded_and_proportional() -> None:
    labels = np.repeat(np.arange(3), [100, 40, 10])
    train_a, val_a = stratified_split(labels, 0.2, seed=7)
    _train_b, val_b = stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(val_a, val_b)
    assert np.bincount(labels[val_a]).tolist() == [20, 8, 2]
    assert len(np.intersect1d(train_a, val_a)) == 0 and len(train_a) + len(val_a) == 150
    assert not np.array_equal(stratified_split(labels, 0.2, seed=8)[1], val_a)


def test_image_folder_reads_png_and_jpeg_and_carves_val(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"happy": 10, "sad": 6}, size=40, rgb=True)
    spec = DataSpec(
        source={"kind": "image_folder", "path": tmp_path}, image_size=32, channels=1, val_split=0.5
    )
    data = load_data(spec, seed=0)
    assert data.class_names == ["happy", "sad"]
    assert len(data.splits["train"]) + len(data.splits["val"]) == 16
    assert data.splits["val"].class_counts(2) == [5, 3]
    train = data.splits["train"]
    assert train.images.shape[1:] == (32, 32, 1) and train.images.dtype == np.uint8
    grey = train.images.reshape(len(train), -1).mean(axis=1)
    np.testing.assert_allclose(grey, 20 + 30 * train.labels, atol=1.5)
    assert load_data(spec, seed=0).fingerprint == data.fingerprint


def test_image_folder_errors_name_the_path(tmp_path: Path) -> None:
    spec = DataSpec(source={"kind": "image_folder", "path": tmp_path / "missing"})
    with pytest.raises(DataError, match=r"data\.source\.path"):
        load_data(spec, seed=0)
    (tmp_path / "train" / "empty").mkdir(parents=True)
    with pytest.raises(DataError, match="empty"):
        load_data(DataSpec(source={"kind": "image_folder", "path": tmp_path}), seed=0)


def test_synthetic_source_has_disjoint_seeded_splits() -> None:
    spec = DataSpec(source={"kind": "synthetic", "train_size": 70, "val_size": 14, "test_size": 7})
    data = load_data(spec, seed=1)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 70, "val": 14, "test": 7}
    assert not np.array_equal(data.splits["train"].images[:7], data.splits["test"].images)


def split(n: int = 12) -> SplitData:
    images = np.arange(n * 8 * 8, dtype=np.uint8).reshape(n, 8, 8, 1)
    return SplitData(images, (np.arange(n) % 3).astype(np.int32), [str(i) for i in range(n)])


def test_pipeline_batches_one_hot_and_reshuffles_deterministically() -> None:
    def epoch_labels(seed: int) -> list[list[int]]:
        dataset = build_dataset(split(), 3, 4, training=True, seed=seed)
        return [
            [row.argmax() for row in y] for _ in range(2) for _, y in dataset.as_numpy_iterator()
        ]

    first = epoch_labels(5)
    assert first == epoch_labels(5)
    images, labels = next(iter(build_dataset(split(), 3, 5, training=False, seed=0)))
    assert images.dtype == tf.float32 and labels.shape == (5, 3)
    sizes = [len(y) for _, y in build_dataset(split(), 3, 5, training=False, seed=0)]
    assert sizes == [5, 5, 2]  # evaluation keeps the last partial batch


def test_augmentations_run_inside_tf_data() -> None:
    ops = [
        {"flip": {}},
        {"rotate": {"degrees": 15}},
        {"translate": {}},
        {"zoom": {}},
        {"contrast": {}},
        {"brightness": {}},
    ]
    dataset = build_dataset(split(), 3, 4, training=True, seed=0, augment=ops)
    images, _ = next(iter(dataset))
    assert images.shape == (4, 8, 8, 1)
    assert np.isfinite(images.numpy()).all()


def test_unknown_augmentation_lists_the_available_ones() -> None:
    with pytest.raises(RecipeError, match=r"data.augment\[1\].*Registered: .*flip"):
        build_augment_fn([{"flip": {}}, {"warp": {}}], seed=0)
    with pytest.raises(RecipeError, match=r"data.augment\[0\]\.rotate\.angle"):
        build_augment_fn([{"rotate": {"angle": 3}}], seed=0)


def test_pixel_stats_and_class_weights() -> None:
    mean, std = pixel_mean_std(np.array([0, 255], np.uint8))
    assert (mean, std) == (127.5, 127.5)
    weights = class_weights_from_counts([10, 30, 0])
    assert weights[0] == pytest.approx(2.0) and weights[1] == pytest.approx(2 / 3)
    assert weights[2] == 0.0


def test_train_stream_epochs_depend_only_on_seed_and_epoch() -> None:
    ops = [{"flip": {}}, {"affine": {}}, {"mixup": {"p": 0.5}}]

    def batches(epochs: range) -> np.ndarray:
        dataset = build_dataset(split(24), 3, 8, training=True, seed=1, augment=ops, epochs=epochs)
        return np.stack(
            [np.concatenate([x.ravel(), y.ravel()]) for x, y in dataset.as_numpy_iterator()]
        )

    whole = batches(range(4))
    assert len(whole) == 4 * 3
    np.testing.assert_array_equal(whole[6:], batches(range(2, 4)))  # a resume at epoch 2
    assert not np.array_equal(whole[:3], whole[3:6])  # each epoch its own order and draws


def test_augmented_batches_repeat_exactly_for_a_seed() -> None:
    ops = [{"flip": {}}, {"rotate": {"degrees": 20}}, {"noise": {"std": 8.0}}, {"mixup": {}}]

    def batches(seed: int) -> list[np.ndarray]:
        dataset = build_dataset(split(32), 3, 8, training=True, seed=seed, augment=ops)
        return [np.concatenate([x.ravel(), y.ravel()]) for x, y in dataset.as_numpy_iterator()]

    first = batches(3)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(batches(3)))
    assert not np.array_equal(np.concatenate(first), np.concatenate(batches(4)))
