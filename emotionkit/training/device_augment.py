"""`data.augment_on: device`: the augmentation runs inside the compiled train step.

Keras' preprocessing layers declare `supports_jit = False`, so inside a model they drop the
JAX step out of XLA; and MixUp/CutMix change the targets, which a layer cannot. So the
augmentation wraps the model's own `train_step` instead: the batch arrives as plain pixels
and targets, is augmented by pure array functions keyed by the optimizer's iteration count,
and goes on to Keras' step unchanged. Everything traces into the one XLA program (JAX's
jitted step, or TensorFlow's with `jit_compile`), and a resumed run continues the count, so
its batches are augmented exactly as the uninterrupted run's were.

The wrapper is set on the model instance and is not saved: checkpoints and exports hold the
plain classifier.
"""

from __future__ import annotations

from typing import Any

from emotionkit.data.augment import StepAugment


def augment_in_train_step(model: Any, augment: StepAugment, backend: str) -> None:
    """Make `model.fit` augment each batch inside the train step (call before `fit`).

    Args:
        model: a compiled `keras.Model`.
        augment: `build_device_augment_fn(...)` for the same backend.
        backend: the Keras backend, `jax` or `tensorflow`.
    """
    import keras

    keras_train_step = model.train_step  # the bound method of the backend's trainer
    unpack, pack = keras.utils.unpack_x_y_sample_weight, keras.utils.pack_x_y_sample_weight

    if backend == "jax":

        def jax_train_step(state: Any, data: Any) -> Any:
            images, targets, sample_weight = unpack(data)
            step = state[2][_iterations_index(model.optimizer)]
            images, targets = augment(images, targets, step)
            return keras_train_step(state, pack(images, targets, sample_weight))

        model.train_step = jax_train_step
        return

    def tensorflow_train_step(data: Any) -> Any:
        images, targets, sample_weight = unpack(data)
        images, targets = augment(images, targets, model.optimizer.iterations.value)
        return keras_train_step(pack(images, targets, sample_weight))

    model.train_step = tensorflow_train_step


def _iterations_index(optimizer: Any) -> int:
    """Where the iteration counter sits in the JAX step's optimizer-variable state."""
    path = optimizer.iterations.path
    return next(i for i, variable in enumerate(optimizer.variables) if variable.path == path)
