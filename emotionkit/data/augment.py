"""Train-time augmentations: the recipe's `data.augment` list -> one function on a batch.

The ops themselves are typed classes in `augment_ops.py`, registered in
`emotionkit.data.registry.AUGMENTATIONS`; this module holds what they share (seeded
generators, the per-image probability gate, chaining) and `build_augment_fn`.

Every op has a probability `p`: each image gets its own coin, and an image that loses it
keeps its pixels and its target exactly. MixUp and CutMix mix the targets as well, so their
rows stay distributions (they sum to 1); put them last, after the per-image ops.

Layers and random generators are created once, outside `tf.data.map`, and chained in a plain
function: a `keras.Sequential` of preprocessing layers fails inside `tf.data.map` under the
JAX backend, while single layers work on both. Their random state is a variable updated on
each call, so the same seed gives the same batches when the map runs sequentially; with
`num_parallel_calls` > 1 concurrent calls race on that state and the sequence varies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from emotionkit.data.registry import AUGMENTATIONS, AugmentOp, Op
from emotionkit.errors import RecipeError
from emotionkit.recipe_errors import describe_problems
from emotionkit.sections import OneKeyEntry

OP_LIST_TYPE: Any = list[Annotated[AugmentOp, OneKeyEntry(AUGMENTATIONS)]]
OP_LIST: TypeAdapter[list[AugmentOp]] = TypeAdapter(OP_LIST_TYPE)


def generator(seed: int, stream: int) -> Any:
    """A Philox generator; `stream` picks a disjoint counter range, so an op and its gate
    built from the same seed never share random numbers."""
    import tensorflow as tf

    return tf.random.Generator.from_key_counter(key=seed, counter=[0, stream], alg="philox")


def with_probability(op: Op, p: float, seed: int, stream: int = 1) -> Op:
    """Apply `op` to each image (and its target row) with probability `p`, else keep it."""
    if p == 0.0:  # switched off in the recipe: nothing to trace or run
        return lambda images, targets: (images, targets)
    if p == 1.0:
        return op
    import tensorflow as tf

    coins = generator(seed, stream)

    def maybe(images: Any, targets: Any) -> tuple[Any, Any]:
        new_images, new_targets = op(images, targets)
        apply = coins.uniform([tf.shape(images)[0]]) < p
        return (
            tf.where(apply[:, None, None, None], new_images, images),
            tf.where(apply[:, None], new_targets, targets),
        )

    return maybe


def on_images(layer: Any) -> Op:
    """An image-only Keras layer as an op; the targets pass through."""
    return lambda images, targets: (layer(images, training=True), targets)


def on_images_and_targets(layer: Any) -> Op:
    """A Keras mixing layer (MixUp, CutMix) as an op: it takes and returns both as a dict."""

    def mix(images: Any, targets: Any) -> tuple[Any, Any]:
        mixed = layer({"images": images, "labels": targets}, training=True)
        return mixed["images"], mixed["labels"]

    return mix


def chain(ops: Sequence[Op]) -> Op:
    """The ops applied one after the other."""

    def chained(images: Any, targets: Any) -> tuple[Any, Any]:
        for op in ops:
            images, targets = op(images, targets)
        return images, targets

    return chained


def parse_augment_ops(ops: Sequence[AugmentOp | dict[str, Any]]) -> list[AugmentOp]:
    """Typed ops from `{name: {params}}` mappings (typed ops pass through).

    Raises:
        RecipeError: an unknown op or parameter, or an invalid value, naming `data.augment`.
    """
    raw = list(ops)
    try:
        return OP_LIST.validate_python(raw)
    except PydanticValidationError as error:
        problems = describe_problems(error, OP_LIST_TYPE, raw, prefix="data.augment")
        raise RecipeError(problems) from None


def build_augment_fn(ops: Sequence[AugmentOp | dict[str, Any]], seed: int) -> Op:
    """Build the recipe's `data.augment` list into one function on a batch.

    The function maps `(images, targets)` (float32 0-255 NHWC, float32 (N, K) target
    distributions) to the same; image-only ops leave the targets alone. Call it inside
    `tf.data.map` (or eagerly, for a look); op `i` is seeded with `seed + i`.

    Args:
        ops: the recipe's typed ops, or `{name: {params}}` mappings naming registered ops.
        seed: the recipe seed.

    Returns:
        `augment(images, targets) -> (images, targets)`.

    Raises:
        RecipeError: an unknown op name or parameter, or an invalid value.

    Example:
        >>> augment = build_augment_fn([{"flip": {}}, {"mixup": {"alpha": 0.2}}], seed=0)
        >>> dataset = dataset.map(augment)
    """
    typed = parse_augment_ops(ops)
    return chain([op.build(seed + index) for index, op in enumerate(typed)])
