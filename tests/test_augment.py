"""Every augmentation op, eagerly and inside `tf.data.map`, under the active backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from emotionkit.data.augment import build_augment_fn
from emotionkit.data.registry import AUGMENTATIONS
from emotionkit.errors import RecipeError
from emotionkit.recipe import load_recipe
from tests.conftest import BACKEND

# Keras' MixUp asks JAX for an int64 arange, which JAX truncates to int32 (eager JAX only).
pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning")

REPO = Path(__file__).resolve().parents[1]
NAMES = sorted(AUGMENTATIONS)
MIXING = ["cutmix", "mixup"]
# p=1 so every image is changed; alpha=1 so MixUp weights are not all at the ends of Beta(.2, .2);
# one RandAugment op, as the Equalization it may pick traces a 256-step loop per channel and op
# under JAX (seconds each).
ALWAYS: dict[str, dict[str, Any]] = {name: {"p": 1.0} for name in NAMES}
ALWAYS["mixup"]["alpha"] = 1.0
ALWAYS["randaugment"]["num_ops"] = 1

Batch = tuple[np.ndarray, np.ndarray]


def face_batch(channels: int = 1, size: int = 8) -> Batch:
    """`size` random 48x48 images with distinct one-hot targets, so any mixing shows."""
    images = np.random.default_rng(0).uniform(0, 255, (size, 48, 48, channels))
    return images.astype(np.float32), np.eye(size, dtype=np.float32)


def run_eagerly(ops: list[dict[str, Any]], batch: Batch, seed: int = 0) -> Batch:
    images, targets = build_augment_fn(ops, seed)(tf.constant(batch[0]), tf.constant(batch[1]))
    return np.asarray(images), np.asarray(targets)


def run_in_tf_data(ops: list[dict[str, Any]], batch: Batch, seed: int = 0) -> Batch:
    dataset = tf.data.Dataset.from_tensors(batch).map(build_augment_fn(ops, seed))
    assert dataset.element_spec[0].shape == batch[0].shape  # static shape kept for XLA
    return next(dataset.as_numpy_iterator())


RUNNERS: dict[str, Callable[[list[dict[str, Any]], Batch], Batch]] = {
    "eager": run_eagerly,
    "tf_data": run_in_tf_data,
}


def assert_valid_batch(out: Batch, batch: Batch) -> None:
    images, targets = out
    assert images.shape == batch[0].shape and images.dtype == np.float32
    assert targets.shape == batch[1].shape and targets.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 + 1e-3
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("run", list(RUNNERS))
@pytest.mark.parametrize("name", NAMES)
def test_every_op_changes_images_and_keeps_shape_range_and_targets(name: str, run: str) -> None:
    batch = face_batch()
    out = RUNNERS[run]([{name: ALWAYS[name]}], batch)
    assert_valid_batch(out, batch)
    assert not np.array_equal(out[0], batch[0])
    if name not in MIXING:
        np.testing.assert_array_equal(out[1], batch[1])


@pytest.mark.parametrize("name", NAMES)
def test_probability_zero_leaves_the_batch_unchanged(name: str) -> None:
    batch = face_batch()
    images, targets = run_in_tf_data([{name: {"p": 0.0}}], batch)
    np.testing.assert_array_equal(images, batch[0])
    np.testing.assert_array_equal(targets, batch[1])


@pytest.mark.parametrize("name", ["noise", "mixup"])
def test_probability_gates_each_image_and_its_target_together(name: str) -> None:
    batch = face_batch(size=16)
    images, targets = run_in_tf_data([{name: {"p": 0.5}}], batch)
    kept = (images == batch[0]).all(axis=(1, 2, 3))
    assert 0 < kept.sum() < len(kept)
    np.testing.assert_array_equal(targets[kept], batch[1][kept])


@pytest.mark.parametrize("run", list(RUNNERS))
@pytest.mark.parametrize("name", MIXING)
def test_mixing_ops_make_soft_targets_of_two_classes(name: str, run: str) -> None:
    _, targets = RUNNERS[run]([{name: ALWAYS[name]}], face_batch())
    assert (targets.max(axis=1) < 0.99).any()
    assert ((targets > 0).sum(axis=1) <= 2).all()


@pytest.mark.parametrize(
    "names",
    [
        [name for name in NAMES if name != "randaugment"],
        # ~15 s under JAX: RandAugment's Equalization traces its loop once per channel.
        pytest.param(["randaugment"], marks=[pytest.mark.slow] if BACKEND == "jax" else []),
    ],
    ids=["all_but_randaugment", "randaugment"],
)
def test_three_channel_batch_goes_through_every_op(names: list[str]) -> None:
    batch = face_batch(channels=3, size=4)
    out = run_in_tf_data([{name: ALWAYS[name]} for name in names], batch)
    assert_valid_batch(out, batch)


def test_flip_mirrors_exactly_and_identity_crop_is_exact() -> None:
    batch = face_batch(size=2)
    images, _ = run_in_tf_data([{"flip": {"p": 1.0}}], batch)
    np.testing.assert_array_equal(images, batch[0][:, :, ::-1])
    images, _ = run_in_tf_data([{"flip": {"mode": "vertical", "p": 1.0}}], batch)
    np.testing.assert_array_equal(images, batch[0][:, ::-1])
    whole = {"scale": [1.0, 1.0], "ratio": [1.0, 1.0], "p": 1.0}
    images, _ = run_in_tf_data([{"random_resized_crop": whole}], batch)
    np.testing.assert_allclose(images, batch[0], atol=1e-3)


def test_affine_without_range_is_exact_and_keeps_a_flat_image_flat() -> None:
    batch = face_batch(size=2)
    still = {"degrees": 0.0, "translate": 0.0, "zoom": 0.0, "p": 1.0}
    images, _ = run_in_tf_data([{"affine": still}], batch)
    np.testing.assert_allclose(images, batch[0], atol=1e-3)
    flat = np.full((2, 48, 48, 1), 90.0, np.float32), np.eye(2, dtype=np.float32)
    images, _ = run_in_tf_data([{"affine": {"degrees": 30, "zoom": 0.2, "p": 1.0}}], flat)
    np.testing.assert_allclose(images, 90.0, atol=1e-3)  # reflect fill: no black corners


def test_noise_std_is_in_grey_levels() -> None:
    grey = np.full((4, 48, 48, 1), 128.0, np.float32), np.eye(4, dtype=np.float32)
    images, _ = run_in_tf_data([{"noise": {"std": 5.0, "p": 1.0}}], grey)
    assert 4.5 < (images - 128.0).std() < 5.5


def test_same_seed_gives_the_same_batches_in_a_fresh_dataset() -> None:
    """Sequential map: with parallel calls the layers' shared random state is raced."""
    images, targets = face_batch(size=16)
    ops = [{"flip": {}}, {"random_resized_crop": {}}, {"noise": {}}, {"rotate": {}}]
    ops += [{"cutmix": {"p": 0.5}}]

    def epoch(seed: int) -> np.ndarray:
        dataset = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
        dataset = dataset.map(build_augment_fn(ops, seed))
        return np.concatenate([x for x, _ in dataset.as_numpy_iterator()])

    first = epoch(seed=3)
    np.testing.assert_array_equal(first, epoch(seed=3))
    assert not np.array_equal(first, epoch(seed=4))


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            {"flp": {}},
            r"` = 'flp': unknown augmentation 'flp'\. Did you mean 'flip'\? Registered: .*flip",
        ),
        ({"rotate": {"angle": 3}}, r"\.rotate\.angle` .* Valid keys in .*: degrees, p"),
        ({"noise": {"stdev": 3}}, r"Did you mean `data\.augment\[1\]\.noise\.std`"),
        ({"mixup": 0.2}, r"\.mixup` = 0\.2: Input should be a valid dictionary"),
        ({"flip": {"p": 1.5}}, r"\.flip\.p` = 1\.5: Input should be less than or equal to 1"),
        ({"flip": {"mode": "diagonal"}}, r"\.flip\.mode` = 'diagonal': Input should be 'horiz"),
        ({"random_resized_crop": {"scale": [0.9, 0.5]}}, r"scale` .* must be \[min, max\]"),
        ({"random_resized_crop": {"scale": 0.0}}, r"scale` = 0\.0: must be \[min, max\] within"),
        ({"erasing": {"fill_value": "mean"}}, r"\.erasing\.fill_value` = 'mean': Input should"),
        ({"cutmix": {"alpha": 2.0}}, r"\.cutmix\.alpha` = 2\.0: Input should be less than or"),
        ({"mixup": {"alpha": 0}}, r"\.mixup\.alpha` = 0: Input should be greater than 0"),
        ({"noise": {"std": -1}}, r"\.noise\.std` = -1: Input should be greater than or equal"),
        ({"blur": {"kernel_size": 4}}, r"\.blur\.kernel_size` = 4: must be odd"),
        ({"randaugment": {"factor": 2.0}}, r"\.randaugment\.factor` = 2\.0"),
        ({"contrast": {"factor": "x"}}, r"\.contrast\.factor` = 'x'"),
        ({"flip": {}, "rotate": {}}, r"`: must be one `\{name: \{params\}\}` mapping"),
    ],
)
def test_bad_ops_raise_recipe_errors_naming_the_entry(op: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError, match=r"^`?(unknown key `)?data\.augment\[1\].*" + message):
        build_augment_fn([{"flip": {}}, op], seed=0)


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_build(path: Path) -> None:
    recipe = load_recipe(path)
    build_augment_fn(recipe.data.augment, recipe.seed)
