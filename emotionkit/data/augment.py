"""Train-time augmentations: the recipe's `data.augment` list -> one function on a batch.

The ops are typed classes in `augment_ops.py` (registered in
`emotionkit.data.registry.AUGMENTATIONS`), each written once against
`augment_arrays.ArrayFns`. This module turns the list into a function for either placement:

- `build_augment_fn` (`data.augment_on: host`): inside `tf.data`, with TensorFlow's functions;
- `build_device_augment_fn` (`device`): inside the compiled train step, with the backend's.

Each op draws from its own stateless key, `fold(fold(key(seed), op index), step)`, where the
step is the batch's index (host: within the epoch, whose seed differs; device: the optimizer's
iteration count). Every op has a probability `p`: each image gets its own coin, and an image
that loses it keeps its pixels and its target exactly. MixUp and CutMix mix the targets as
well, so their rows stay distributions (they sum to 1); put them last, after the per-image
ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from emotionkit.data.augment_arrays import ArrayFns, fns_for
from emotionkit.data.registry import AUGMENTATIONS, AugmentOp
from emotionkit.errors import RecipeError
from emotionkit.recipe_errors import describe_problems
from emotionkit.sections import OneKeyEntry

OP_LIST_TYPE: Any = list[Annotated[AugmentOp, OneKeyEntry(AUGMENTATIONS)]]
OP_LIST: TypeAdapter[list[AugmentOp]] = TypeAdapter(OP_LIST_TYPE)

StepAugment = Callable[..., tuple[Any, Any]]
"""`(images, targets, step=0) -> (images, targets)`."""


def gate(
    fns: ArrayFns, key: Any, p: float, old: tuple[Any, Any], new: tuple[Any, Any]
) -> tuple[Any, Any]:
    """Per image, the augmented `new` with probability `p`, else the untouched `old`."""
    if p >= 1.0:
        return new
    count = fns.shape(old[0])[0]
    apply = fns.uniform(fns.fold(key, 7_777), (count,)) < p
    images = fns.np.where(apply[:, None, None, None], new[0], old[0])
    return images, fns.np.where(apply[:, None], new[1], old[1])


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


def _chain(ops: list[AugmentOp], fns: ArrayFns, seed: int) -> StepAugment:
    """The ops in order; host-only ops (stateful Keras layers) are built here, once."""
    # An op with p: 0 is switched off in the recipe: nothing is built, traced or run.
    active = [(index, op) for index, op in enumerate(ops) if getattr(op, "p", 1.0) != 0.0]
    host_ops = {index: op.host_op(seed + index) for index, op in active}
    base = fns.key(seed)

    def augment(images: Any, targets: Any, step: Any = 0) -> tuple[Any, Any]:
        images = fns.np.asarray(images, dtype="float32")
        for index, op in active:
            host_op = host_ops[index]
            if host_op is not None:
                images, targets = host_op(images, targets)
                continue
            key = fns.fold(fns.fold(base, index), step)
            images, targets = op.apply(fns, images, targets, key)
        return images, targets

    return augment


def host_needs_tensorflow() -> RecipeError:
    """The error for host augmentation where `tf.data` is not installed."""
    return RecipeError(
        "data.augment_on=host needs TensorFlow (tf.data), which is not installed here: "
        "set data.augment_on: device (or auto), or install tensorflow."
    )


def augment_placement(
    requested: str, accelerator: bool, tensorflow: bool = True
) -> tuple[str, str]:
    """Resolve `data.augment_on` and say why (printed and saved in the manifest).

    Raises:
        RecipeError: `host` where TensorFlow (`tf.data`) is not installed.
    """
    if requested == "host" and not tensorflow:
        raise host_needs_tensorflow()
    if requested != "auto":
        return requested, "set in the recipe (data.augment_on)"
    if not tensorflow:
        return "device", "auto: TensorFlow is not installed, so the train step augments"
    if accelerator:
        return "device", "auto: a GPU is visible, the augmentation compiles into the step"
    return "host", "auto: CPU only, tf.data augments in parallel with the step (faster)"


def build_augment_fn(ops: Sequence[AugmentOp | dict[str, Any]], seed: int) -> StepAugment:
    """The recipe's `data.augment` list as one function on a batch, for `tf.data` (host).

    The function maps `(images, targets, step)` (float32 0-255 NHWC, float32 (N, K) target
    distributions, the batch's index in the epoch) to the augmented images and targets;
    image-only ops leave the targets alone. Call it inside `tf.data.map` (or eagerly, for a
    look).

    Args:
        ops: the recipe's typed ops, or `{name: {params}}` mappings naming registered ops.
        seed: the epoch's seed (the same seed and step give the same batch).

    Raises:
        RecipeError: an unknown op name or parameter, or an invalid value.

    Example:
        >>> augment = build_augment_fn([{"flip": {}}, {"mixup": {"alpha": 0.2}}], seed=0)
        >>> dataset = dataset.enumerate().map(lambda step, batch: augment(*batch, step))
    """
    return _chain(parse_augment_ops(ops), fns_for("host", "tensorflow"), seed)


def build_device_augment_fn(
    ops: Sequence[AugmentOp | dict[str, Any]], seed: int, backend: str
) -> StepAugment:
    """The same list, traced inside the compiled train step of the Keras `backend`.

    Raises:
        RecipeError: an op that runs on the host only, naming it and `data.augment_on`.
    """
    typed = parse_augment_ops(ops)
    for index, op in enumerate(typed):
        if not op.compiles:
            raise RecipeError(
                f"data.augment[{index}] ({op.entry_name}) runs only on the host (a stateful "
                "Keras layer that does not compile): set data.augment_on: host, or remove it."
            )
    return _chain(typed, fns_for("device", backend), seed)
