"""Batches without TensorFlow: the input pipeline of a JAX host that has no `tf.data`.

GPU hosts set up for JAX often have no TensorFlow. There the splits (already uint8 arrays in
memory) are batched with NumPy: a training stream whose epoch `e` is a function of
`(seed, e)` alone, like the `tf.data` one, and `ArrayBatches` for evaluation, a Keras
`PyDataset` with the few `tf.data` methods the stages call (`as_numpy_iterator`, `map`,
`take`). Augmentation then runs in the train step (`data.augment_on: device`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from emotionkit.data.types import SplitData

Batch = tuple[np.ndarray, np.ndarray]


class ArrayBatches(keras.utils.PyDataset):
    """A fixed list of (float32 images, float32 targets) batches, in order."""

    def __init__(self, batches: list[Batch]) -> None:
        super().__init__()
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Batch:
        return self.batches[index]

    def as_numpy_iterator(self) -> Iterator[Batch]:
        return iter(self.batches)

    def map(self, function: Callable[[Any, Any], Batch]) -> ArrayBatches:
        return ArrayBatches([tuple(np.asarray(a) for a in function(*b)) for b in self.batches])  # type: ignore[misc]

    def take(self, count: int) -> ArrayBatches:
        return ArrayBatches(self.batches[:count])


def evaluation_batches(split: SplitData, num_classes: int, batch_size: int) -> ArrayBatches:
    """One pass over `split` in order, the last batch partial."""
    return ArrayBatches(
        [
            model_inputs(split, np.arange(start, min(start + batch_size, len(split))), num_classes)
            for start in range(0, len(split), batch_size)
        ]
    )


def training_stream(
    split: SplitData,
    num_classes: int,
    batch_size: int,
    epoch_seeds: list[int],
    class_sampling: list[float] | None,
) -> Iterator[Batch]:
    """Full batches of every epoch in turn; epoch `e` from its seed alone (exact resume)."""
    steps = max(1, len(split) // batch_size)
    for seed in epoch_seeds:
        order = _epoch_order(split, seed, steps * batch_size, class_sampling)
        for step in range(steps):
            yield model_inputs(
                split, order[step * batch_size : (step + 1) * batch_size], num_classes
            )


def _epoch_order(
    split: SplitData, seed: int, count: int, class_sampling: list[float] | None
) -> np.ndarray:
    """A shuffle of the split, or (oversampling) `count` draws class by class."""
    rng = np.random.default_rng(seed)
    if class_sampling is None:
        order = rng.permutation(len(split))
        return np.resize(order, max(count, len(order)))  # a split smaller than one batch cycles
    members = {c: np.flatnonzero(split.hard_labels == c) for c in range(len(class_sampling))}
    weights = np.asarray(class_sampling) * [len(members[c]) > 0 for c in members]
    classes = rng.choice(len(class_sampling), size=count, p=weights / weights.sum())
    return np.asarray([rng.choice(members[c]) for c in classes.tolist()])


def model_inputs(split: SplitData, rows: np.ndarray, num_classes: int) -> Batch:
    """float32 0-255 images and float32 target rows (one-hot, or the soft labels)."""
    images = split.images[rows].astype(np.float32)
    labels = split.labels[rows]
    targets = (
        labels.astype(np.float32)
        if split.is_soft
        else np.eye(num_classes, dtype=np.float32)[labels]
    )
    return images, targets
