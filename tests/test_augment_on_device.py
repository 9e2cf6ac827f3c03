"""`data.augment_on: device`: every op compiles into the train step and draws what the host
draws (a device-augmented run and its resume: tests/test_augment_on_device_resume.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotionkit.data.augment import build_augment_fn, build_device_augment_fn
from emotionkit.data.registry import AUGMENTATIONS
from emotionkit.errors import RecipeError
from emotionkit.recipe import load_recipe
from tests.conftest import BACKEND

COMPILING = [name for name in AUGMENTATIONS.names() if AUGMENTATIONS.get(name).compiles]
ALWAYS: dict[str, dict[str, Any]] = {name: {"p": 1.0} for name in COMPILING}
ALWAYS["mixup"]["alpha"] = 1.0


def smooth_batch(count: int = 128, size: int = 24, classes: int = 4) -> tuple[Any, Any]:
    """Face-like smooth images (gradients and a blob) and one-hot targets."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:size, 0:size] / size
    slope = rng.uniform(-1, 1, (count, 2, 1, 1))
    images = 128 + 60 * (slope[:, 0] * rows + slope[:, 1] * columns)
    images += 60 * np.exp(-((rows - 0.5) ** 2 + (columns - 0.4) ** 2) * 20)
    targets = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, count)]
    return images[..., None].astype(np.float32), targets


def traced(function: Any) -> Any:
    """`function` traced as in a train step: jitted under JAX; a TensorFlow graph (XLA's
    compile per op is slow on CPU; every op compiles with XLA in the model test below)."""
    if BACKEND == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function)


def summary(images: Any, targets: Any, original: Any) -> np.ndarray:
    """Per image: mean absolute change, mean and std of the pixels, target entropy."""
    images, targets = np.asarray(images), np.asarray(targets)
    change = np.abs(images - original).mean(axis=(1, 2, 3))
    entropy = -(targets * np.log(np.maximum(targets, 1e-12))).sum(axis=1)
    return np.stack([change, images.mean(axis=(1, 2, 3)), images.std(axis=(1, 2, 3)), entropy])


@pytest.mark.parametrize("name", COMPILING)
def test_each_op_draws_the_host_distribution_on_the_device(name: str) -> None:
    images, targets = smooth_batch()
    ops = [{name: ALWAYS[name]}]
    host = build_augment_fn(ops, seed=3)
    device = traced(build_device_augment_fn(ops, seed=3, backend=BACKEND))
    host_stats = np.concatenate(
        [summary(*host(images, targets, step), images) for step in range(4)], axis=1
    )
    device_stats = np.concatenate(
        [summary(*device(images, targets, np.int64(step)), images) for step in range(4)], axis=1
    )
    # 512 images a side: means agree within a few standard errors, spreads within 20 %.
    spread = np.maximum(host_stats.std(axis=1), 1e-3)
    np.testing.assert_array_less(
        np.abs(host_stats.mean(axis=1) - device_stats.mean(axis=1)), 0.25 * spread + 1e-3
    )
    np.testing.assert_allclose(
        device_stats.std(axis=1), host_stats.std(axis=1), rtol=0.2, atol=1e-3
    )
    assert device_stats[0].mean() > 0.1  # p=1: the op did change the images


@pytest.mark.parametrize("name", COMPILING)
def test_each_op_lowers_to_xla(name: str) -> None:
    """No op outside XLA's set: lowered as `jit_compile=True` lowers a train step (no
    LLVM code generation, which costs TensorFlow on CPU ~1-10 s an op)."""
    images, targets = smooth_batch(count=8)
    augment = build_device_augment_fn([{name: ALWAYS[name]}], seed=0, backend=BACKEND)
    if BACKEND == "jax":
        import jax

        text = jax.jit(augment).lower(images, targets, np.int64(1)).as_text()
    else:
        import tensorflow as tf

        function = tf.function(augment, jit_compile=True)
        text = function.experimental_get_compiler_ir(images, targets, tf.constant(1, tf.int64))(
            stage="hlo"
        )
    assert "HloModule" in text or "module" in text


def test_a_model_fits_with_every_op_in_its_compiled_step() -> None:
    import keras

    from emotionkit.training.device_augment import augment_in_train_step

    images, targets = smooth_batch(count=32)
    model = keras.Sequential([keras.Input(images.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(targets.shape[1])])  # fmt: skip
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=True)
    # Every op under JAX; under TensorFlow one (XLA:CPU takes TensorFlow 85 s to compile all
    # thirteen into a step, 40 s for three): each op lowers to XLA on its own above.
    names = COMPILING if BACKEND == "jax" else ["flip"]
    ops = [{name: ALWAYS[name]} for name in names]
    augment_in_train_step(model, build_device_augment_fn(ops, seed=0, backend=BACKEND), BACKEND)
    before = [np.asarray(w).copy() for w in model.get_weights()]
    history = model.fit(images / 255.0 * 255.0, targets, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_an_op_that_cannot_compile_is_refused_on_the_device(quickstart: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"data\.augment\[1\] \(randaugment\) runs only on the host"
    ):
        load_recipe(quickstart, ["data.augment=[flip, randaugment]", "data.augment_on=device"])
    load_recipe(quickstart, ["data.augment=[flip, randaugment]", "data.augment_on=auto"])
