"""tf.data pipeline: in-memory split -> shuffled, augmented, one-hot, batched, prefetched.

Works unchanged when the Keras backend is JAX: `keras.Model.fit` consumes tf.data there too,
and Keras preprocessing layers switch to TensorFlow ops inside `tf.data.map`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emotionkit.data.registry import AugmentOp
from emotionkit.data.spec import DataSpec
from emotionkit.data.types import SplitData

BatchTargets = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""`(float32 images 0-255, float32 targets) -> float32 targets` for one train batch."""


def build_dataset(
    split: SplitData,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    augment: list[AugmentOp] | None = None,
    class_sampling: list[float] | None = None,
    epochs: range = range(1),
    batch_targets: BatchTargets | None = None,
) -> Any:
    """Batches of (float32 images 0-255, float32 target distributions).

    A training dataset is the concatenation of `epochs`, each `len(split) // batch_size`
    batches, and epoch `e` depends only on `(seed, e)`: its shuffle order, its oversampling
    draws and its augmentation seeds. That is what makes a resumed run exact: restarting at
    epoch k rebuilds epochs k... bit for bit, with no RNG state to save. `fit` must be given
    `steps_per_epoch` when `epochs` spans more than one epoch.

    Args:
        split: the images and labels of one split; integer labels become one-hot rows, soft
            labels pass through (one format for hard, soft and MixUp-style targets, which
            Keras' F1Score also takes).
        num_classes: width of the target rows.
        batch_size: images per batch; the last partial batch is kept for evaluation and
            dropped for training so every step has the same shape (no XLA re-compilation).
        training: shuffle, oversample and augment (else one pass in order).
        seed: the recipe seed.
        augment: the recipe's `data.augment` ops, applied per batch after batching
            (vectorised layers are faster; MixUp/CutMix need the targets).
        class_sampling: oversample: each image is drawn from class c with this probability.
        epochs: the epochs (0-based) a training dataset covers, e.g. `range(k, 30)`.
        batch_targets: replaces each train batch's targets after augmentation, from the
            batch's images and targets (NumPy, called on the host): distillation's teacher
            (`training.distill.TeacherTargets`) sees exactly the images the model sees.
    """
    from emotionkit.installed import tensorflow_available

    if not tensorflow_available():
        return _array_dataset(split, num_classes, batch_size, training, seed, augment,
                              class_sampling, epochs, batch_targets)  # fmt: skip
    import tensorflow as tf

    if not training:
        dataset = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
        dataset = dataset.batch(batch_size).map(
            _targets_fn(split, num_classes), num_parallel_calls=tf.data.AUTOTUNE
        )
        return dataset.prefetch(tf.data.AUTOTUNE)
    images_and_labels = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
    steps = max(1, len(split) // batch_size)
    stream = None
    for epoch in epochs:
        one_epoch = _train_epoch(
            split, images_and_labels, num_classes, batch_size, steps,
            epoch_seed(seed, epoch), augment, class_sampling, batch_targets,
        )  # fmt: skip
        stream = one_epoch if stream is None else stream.concatenate(one_epoch)
    if stream is None:
        raise ValueError(f"build_dataset: empty epoch range {epochs}")
    return stream.prefetch(tf.data.AUTOTUNE)


def _array_dataset(
    split: SplitData,
    num_classes: int,
    batch_size: int,
    training: bool,
    seed: int,
    augment: list[AugmentOp] | None,
    class_sampling: list[float] | None,
    epochs: range,
    batch_targets: BatchTargets | None = None,
) -> Any:
    """`build_dataset` where TensorFlow is not installed (a JAX-only host): NumPy batches."""
    from emotionkit.data import array_batches

    if not training:
        return array_batches.evaluation_batches(split, num_classes, batch_size)
    if augment:
        from emotionkit.data.augment import host_needs_tensorflow

        raise host_needs_tensorflow()
    seeds = [epoch_seed(seed, epoch) for epoch in epochs]
    stream = array_batches.training_stream(split, num_classes, batch_size, seeds, class_sampling)
    if batch_targets is None:
        return stream
    return ((images, batch_targets(images, targets)) for images, targets in stream)


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct 31-bit seed per (recipe seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % 2**31


def _train_epoch(
    split: SplitData,
    images_and_labels: Any,
    num_classes: int,
    batch_size: int,
    steps: int,
    seed: int,
    augment: list[AugmentOp] | None,
    class_sampling: list[float] | None,
    batch_targets: BatchTargets | None = None,
) -> Any:
    import tensorflow as tf

    from emotionkit.data.augment import build_augment_fn, parse_augment_ops

    if class_sampling is not None:
        dataset = _class_balanced_stream(split, class_sampling, seed)
    else:
        dataset = images_and_labels.shuffle(len(split), seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.batch(batch_size, drop_remainder=len(split) >= batch_size).take(steps)
    dataset = dataset.map(_targets_fn(split, num_classes), num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        ops = parse_augment_ops(augment)
        augment_batch = build_augment_fn(ops, seed)
        # Stateless ops (keys from the epoch seed and the batch index) may run in parallel;
        # a host-only op holds a Keras layer's RNG state, which parallel calls would race on.
        stateless = all(op.compiles for op in ops)
        dataset = dataset.enumerate().map(
            lambda step, batch: augment_batch(batch[0], batch[1], step),
            num_parallel_calls=tf.data.AUTOTUNE if stateless else None,
            deterministic=True,
        )
    if batch_targets is not None:  # after augmentation: it sees the images the model sees
        dataset = dataset.map(
            _host_targets_fn(batch_targets), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return dataset


def _host_targets_fn(batch_targets: BatchTargets) -> Callable[[Any, Any], tuple[Any, Any]]:
    """`batch_targets` inside `tf.data.map`, through `tf.numpy_function`."""
    import tensorflow as tf

    def replace_targets(images: Any, targets: Any) -> tuple[Any, Any]:
        images = tf.cast(images, tf.float32)
        new = tf.numpy_function(batch_targets, [images, targets], tf.float32, stateful=False)
        new.set_shape(targets.shape)
        return images, new

    return replace_targets


def _targets_fn(split: SplitData, num_classes: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    import tensorflow as tf

    def to_model_inputs(images: Any, labels: Any) -> tuple[Any, Any]:
        images = tf.cast(images, tf.float32)
        targets = (
            tf.cast(labels, tf.float32)
            if split.is_soft
            else tf.one_hot(labels, num_classes, dtype=tf.float32)
        )
        return images, targets

    return to_model_inputs


def _class_balanced_stream(split: SplitData, probabilities: list[float], seed: int) -> Any:
    """Images drawn class by class with `probabilities` (seeded; per-class streams cycle)."""
    import tensorflow as tf

    hard = split.hard_labels
    streams, weights = [], []
    for label, probability in enumerate(probabilities):
        members = np.flatnonzero(hard == label)
        if probability <= 0 or len(members) == 0:
            continue
        stream = tf.data.Dataset.from_tensor_slices((split.images[members], split.labels[members]))
        streams.append(stream.shuffle(len(members), seed=seed + label).repeat())
        weights.append(probability)
    return tf.data.Dataset.sample_from_datasets(streams, weights=weights, seed=seed)


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of train pixels (0-255), for the model's input layer."""
    pixels = images.astype(np.float64)
    std = float(pixels.std())
    return float(pixels.mean()), std if std > 0 else 1.0


def balance_table(spec: DataSpec, counts: list[int]) -> dict[str, Any] | None:
    """`data.balance` as numbers: per-class loss weights or sampling probabilities.

    Returns `None` for `balance: none`; else `{"mode", "counts", "weights" | "sampling"}`
    (the unused one is `None`), which the run prints and saves in `manifest.json`.
    """
    if spec.balance == "none":
        return None
    table: dict[str, Any] = {
        "mode": spec.balance, "counts": counts, "weights": None, "sampling": None
    }  # fmt: skip
    if spec.balance == "class_weights":
        weights = class_weights_from_counts(counts, spec.class_weight_beta)
        table["weights"] = [weights[i] for i in range(len(counts))]
    else:
        table["sampling"] = sampling_probabilities(counts, spec.oversample_exponent)
    return table


def class_weights_from_counts(counts: list[int], beta: float | None = None) -> dict[int, float]:
    """Per-class loss weights, scaled so the average weight per training image is 1.

    The scaling (scikit-learn's "balanced" convention) keeps the loss, and so the effective
    learning rate, on the same scale as unweighted training.

    Args:
        counts: train images per class.
        beta: `None` for inverse frequency (1 / n_c); else weights are the inverse
            *effective number* of samples (1 - beta) / (1 - beta ** n_c) (Cui et al., CVPR
            2019), which grows sub-linearly for rare classes: a gentler re-weighting.
    """
    counts_array = np.asarray(counts, dtype=np.float64)
    present = counts_array > 0
    weights = np.zeros_like(counts_array)
    if beta is None or beta == 0.0:
        weights[present] = 1.0 / counts_array[present]
    else:
        weights[present] = (1.0 - beta) / (1.0 - np.power(beta, counts_array[present]))
    weights *= counts_array.sum() / (weights * counts_array).sum()
    return {i: float(w) for i, w in enumerate(weights)}


def sampling_probabilities(counts: list[int], exponent: float) -> list[float]:
    """Oversampling target: class c drawn with probability proportional to n_c ** exponent."""
    counts_array = np.asarray(counts, dtype=np.float64)
    mass = np.where(counts_array > 0, np.power(counts_array, exponent), 0.0)
    return (mass / mass.sum()).tolist()
