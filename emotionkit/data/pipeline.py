"""tf.data pipeline: in-memory split -> shuffled, augmented, one-hot, batched, prefetched.

Works unchanged when the Keras backend is JAX: `keras.Model.fit` consumes tf.data there too,
and Keras preprocessing layers switch to TensorFlow ops inside `tf.data.map`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emotionkit.data.sources import SplitData


def build_dataset(
    split: SplitData,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    augment_fn: Callable[[Any, Any], tuple[Any, Any]] | None = None,
) -> Any:
    """Batches of (float32 images 0-255, float32 target distributions).

    Args:
        split: the images and labels of one split; integer labels become one-hot rows, soft
            labels pass through (one format for hard, soft and MixUp-style targets, which
            Keras' F1Score also takes).
        num_classes: width of the target rows.
        batch_size: images per batch; the last partial batch is kept for evaluation and
            dropped for training so every step has the same shape (no XLA re-compilation).
        training: shuffle (seeded, reshuffled each epoch) and augment.
        seed: shuffle seed.
        augment_fn: `(images, targets) -> (images, targets)` per batch, after batching
            (vectorised layers are faster; MixUp/CutMix need the targets).
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=training and len(split) >= batch_size)

    def to_model_inputs(images: Any, labels: Any) -> tuple[Any, Any]:
        images = tf.cast(images, tf.float32)
        targets = (
            tf.cast(labels, tf.float32)
            if split.is_soft
            else tf.one_hot(labels, num_classes, dtype=tf.float32)
        )
        if training and augment_fn is not None:
            images, targets = augment_fn(images, targets)
        return images, targets

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of train pixels (0-255), for the model's input layer."""
    pixels = images.astype(np.float64)
    std = float(pixels.std())
    return float(pixels.mean()), std if std > 0 else 1.0


def class_weights_from_counts(counts: list[int]) -> dict[int, float]:
    """Inverse-frequency class weights with mean 1 over the classes present."""
    counts_array = np.asarray(counts, dtype=np.float64)
    present = counts_array > 0
    weights = np.zeros_like(counts_array)
    weights[present] = counts_array[present].sum() / (present.sum() * counts_array[present])
    return {i: float(w) for i, w in enumerate(weights)}
