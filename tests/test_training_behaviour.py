"""What training does, asserted on its results rather than its settings.

Early stopping stops at the epoch its rule says, `best.keras` holds the best epoch's weights,
a small CNN learns the synthetic faces, `clip_norm` bounds every update and EMA weights are
the ones validated and checkpointed (docs/training.md). Tiny models, a few seconds each.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotionkit.data import load_data
from emotionkit.data.pipeline import build_dataset
from emotionkit.data.spec import DataSpec
from emotionkit.data.synthetic_source import SyntheticSource
from emotionkit.data.types import SplitData
from emotionkit.training import compile_model, fit_model
from emotionkit.training.fit import FitResult
from emotionkit.training.spec import TrainSpec

Weights = list[np.ndarray]


class WeightRecorder(keras.callbacks.Callback):
    """The model's weights before training, after every step and at the end of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Weights] = []
        self.epochs: list[Weights] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.steps.append(self.model.get_weights())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epochs.append(self.model.get_weights())


def train_spec(**train: Any) -> TrainSpec:
    """A `train` section with a constant rate, so the schedule plays no part."""
    return TrainSpec.model_validate({"schedule": {"name": "constant"}, **train})


def dense_model(classes: int = 3) -> Any:
    """Logits = a Dense layer on 4x4 pixels: every weight trainable, no BatchNorm."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(classes, name="logits")]
    )


def pixel_batches(images: np.ndarray, labels: np.ndarray, classes: int = 3) -> Any:
    targets = np.eye(classes, dtype=np.float32)[labels]
    return tf.data.Dataset.from_tensor_slices((images.astype(np.float32), targets)).batch(8)


def saved_weights(path: Path) -> Weights:
    return keras.saving.load_model(path, compile=False).get_weights()


def weights_equal(a: Weights, b: Weights) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# --- early stopping ----------------------------------------------------------------------

VAL_IMAGES = 20


class EpochCounter(keras.callbacks.Callback):
    epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch


def scripted_validation(val_accuracy: list[float], counter: EpochCounter) -> Any:
    """Validation whose accuracy at epoch e is `val_accuracy[e]` for a model that predicts
    class 0: blank images (so only the bias decides), the first `acc * N` labelled 0."""

    def batches() -> Any:
        right = round(val_accuracy[counter.epoch] * VAL_IMAGES)
        labels = np.where(np.arange(VAL_IMAGES) < right, 0, 1)
        yield np.zeros((VAL_IMAGES, 4, 4, 1), np.float32), np.eye(3, dtype=np.float32)[labels]

    signature = (tf.TensorSpec((None, 4, 4, 1)), tf.TensorSpec((None, 3)))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


@pytest.mark.parametrize(
    ("val_accuracy", "early_stopping", "epochs_run", "best_epoch"),
    [
        # Epochs run = the last improving epoch (1-based) + patience.
        # Best at epoch 3; 3 epochs without beating 0.7 (a tie is no improvement) end it
        # after epoch 6: the later 0.9 is never reached.
        ([0.2, 0.5, 0.7, 0.6, 0.7, 0.65, 0.9], {"patience": 3}, 6, 3),
        # 0.4 at epoch 3 improves on 0.2 by more than min_delta; the gains of 0.05 and 0.1
        # after it do not, so training stops after epoch 5, whose 0.5 is still the best
        # checkpoint (the checkpoint counts any gain).
        ([0.2, 0.3, 0.4, 0.45, 0.5, 0.9], {"patience": 2, "min_delta": 0.15}, 5, 5),
        # no patience: every epoch runs, and the first stays the best
        ([0.9, 0.1, 0.1, 0.1], {}, 4, 1),
    ],
)
def test_early_stopping_stops_after_patience_epochs_without_improvement(
    tmp_path: Path,
    val_accuracy: list[float],
    early_stopping: dict[str, Any],
    epochs_run: int,
    best_epoch: int,
) -> None:
    rng = np.random.default_rng(0)
    train = pixel_batches(rng.normal(size=(16, 4, 4, 1)), np.zeros(16, np.int64)).repeat()
    model = dense_model()  # trained on class 0 only, so its bias keeps predicting class 0
    model.get_layer("logits").bias.assign(np.array([1.0, 0.0, 0.0], np.float32))
    spec = train_spec(
        epochs=len(val_accuracy), monitor="val_accuracy", early_stopping=early_stopping
    )
    compile_model(model, spec, steps_per_epoch=2)
    counter = EpochCounter()
    result = fit_model(
        model, train, scripted_validation(val_accuracy, counter), spec, tmp_path,
        steps_per_epoch=2, batch_size=8, extra_callbacks=[counter],
    )  # fmt: skip
    assert result.history["val_accuracy"] == pytest.approx(val_accuracy[:epochs_run])
    assert result.best_epoch == best_epoch
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + epochs_run


# --- the best checkpoint, and learning ---------------------------------------------------

TRAIN_IMAGES, FLIPPED_EPOCH = 560, 4


def small_cnn() -> Any:
    """Three strided convolutions and a BatchNorm: learns the faces in seconds. Its BatchNorm
    follows the batches within ~5 steps (momentum 0.8): with Keras' 0.99 the moving statistics
    that validation uses need ~500 steps, far more than these 140."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Rescaling(1 / 127.5, offset=-1.0),
            layers.Conv2D(16, 3, strides=2),
            layers.BatchNormalization(momentum=0.8),
            layers.ReLU(),
            layers.Conv2D(32, 3, strides=2, activation="relu"),
            layers.Conv2D(32, 3, strides=2, activation="relu"),
            layers.Flatten(),
            layers.Dense(7, name="logits"),
        ]
    )


def synthetic_faces() -> Any:
    source = SyntheticSource(train_size=TRAIN_IMAGES, val_size=70)
    return load_data(DataSpec(source=source, image_size=32), seed=0)


@pytest.fixture(scope="module")
def flipped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[FitResult, WeightRecorder]:
    """The synthetic faces for 4 epochs through the real pipeline (`build_dataset`,
    `compile_model`, `fit_model`), then one epoch on wrong labels (each shifted to the next
    class), which pulls val accuracy down: the best epoch is not the last one."""
    data = synthetic_faces()
    faces = data.splits["train"]
    wrong = SplitData(faces.images, (faces.labels + 1) % 7, faces.ids)

    def train(epochs: range) -> Any:
        right = range(epochs.start, min(epochs.stop, FLIPPED_EPOCH))
        flipped = range(max(epochs.start, FLIPPED_EPOCH), epochs.stop)
        stream = build_dataset(faces, 7, 16, training=True, seed=0, epochs=right)
        return stream.concatenate(
            build_dataset(wrong, 7, 16, training=True, seed=0, epochs=flipped)
        )

    model = small_cnn()
    spec = train_spec(epochs=FLIPPED_EPOCH + 1, optimizer={"lr": 5e-3}, monitor="val_accuracy")
    steps = TRAIN_IMAGES // 16
    compile_model(model, spec, steps)
    recorder = WeightRecorder()
    val = build_dataset(data.splits["val"], 7, 16, training=False, seed=0)
    result = fit_model(
        model, train, val, spec, tmp_path_factory.mktemp("flipped"), steps_per_epoch=steps,
        batch_size=16, extra_callbacks=[recorder],
    )  # fmt: skip
    return result, recorder


def test_best_checkpoint_holds_the_weights_of_the_best_epoch(
    flipped_run: tuple[FitResult, WeightRecorder],
) -> None:
    result, recorder = flipped_run
    val_accuracy = result.history["val_accuracy"]
    best = int(np.argmax(val_accuracy))  # the first epoch with the highest value
    assert best < FLIPPED_EPOCH and val_accuracy[FLIPPED_EPOCH] < val_accuracy[best]
    assert result.best_epoch == best + 1
    best_weights = saved_weights(result.checkpoint_dir / "best.keras")
    assert weights_equal(best_weights, recorder.epochs[best])  # BatchNorm statistics too
    assert not weights_equal(best_weights, recorder.epochs[-1])
    assert weights_equal(saved_weights(result.checkpoint_dir / "last.keras"), recorder.epochs[-1])


def test_a_small_cnn_learns_the_synthetic_faces(
    flipped_run: tuple[FitResult, WeightRecorder],
) -> None:
    """Chance is 1/7 = 0.14; the best checkpoint scores what its epoch logged, well above."""
    result, _ = flipped_run
    val = synthetic_faces().splits["val"]
    model = keras.saving.load_model(result.checkpoint_dir / "best.keras", compile=False)
    predicted = np.asarray(model.predict_on_batch(val.images.astype(np.float32))).argmax(-1)
    accuracy = float(np.mean(predicted == val.labels))
    assert accuracy == pytest.approx(max(result.history["val_accuracy"]), abs=1e-6)
    assert accuracy > 0.45
    losses = result.history["loss"][:FLIPPED_EPOCH]
    assert losses == sorted(losses, reverse=True)  # the training loss falls every epoch


# --- gradient clipping and EMA -----------------------------------------------------------


def loud_pixels(count: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of scale 100 and random labels: no step can fit them, the gradients stay large."""
    rng = np.random.default_rng(1)
    return rng.normal(scale=100.0, size=(count, 4, 4, 1)), rng.integers(0, 3, count)


def step_norms(recorder: WeightRecorder) -> np.ndarray:
    """(steps, variables): the norm of each variable's change at each step."""
    steps = recorder.steps
    return np.array(
        [
            [np.linalg.norm(after - before) for before, after in zip(old, new, strict=True)]
            for old, new in itertools.pairwise(steps)
        ]
    )


@pytest.mark.parametrize("clip_norm", [None, 0.1])
def test_clip_norm_bounds_each_update_of_each_variable(
    tmp_path: Path, clip_norm: float | None
) -> None:
    """Plain SGD at lr 1 moves a variable by its gradient: clipped, by at most clip_norm."""
    images, labels = loud_pixels()
    optimizer = {"name": "sgd", "lr": 1.0, "momentum": 0.0, "nesterov": False,
                 "weight_decay": 0.0, "clip_norm": clip_norm}  # fmt: skip
    spec = train_spec(epochs=1, optimizer=optimizer)
    model = dense_model()
    compile_model(model, spec, steps_per_epoch=4)
    recorder = WeightRecorder()
    data = pixel_batches(images, labels)
    fit_model(
        model, data, data, spec, tmp_path, steps_per_epoch=4, batch_size=8,
        extra_callbacks=[recorder],
    )  # fmt: skip
    norms = step_norms(recorder)
    assert norms.shape == (4, 2)  # 4 steps, kernel and bias
    if clip_norm is None:
        assert norms.max() > 100 * 0.1  # unclipped, these gradients are huge
    else:
        assert norms.max() <= clip_norm * (1 + 1e-5)
        kernel_steps = norms[:, 0]  # gradients of norm ~100, each cut down to clip_norm
        assert kernel_steps == pytest.approx([clip_norm] * 4, rel=1e-4)


def test_ema_weights_are_validated_and_checkpointed_raw_weights_train(tmp_path: Path) -> None:
    """With `ema: m`, best.keras holds the average a <- m a + (1 - m) w over the steps' raw
    weights w, its logits give the logged val_loss, and last.keras keeps the raw weights."""
    images, labels = loud_pixels()
    images /= 100.0
    momentum = 0.6
    spec = train_spec(epochs=2, optimizer={"lr": 0.05, "ema": momentum}, monitor="val_loss")
    model = dense_model()
    compile_model(model, spec, steps_per_epoch=4)
    recorder = WeightRecorder()
    data = pixel_batches(images, labels)
    result = fit_model(
        model, data, data, spec, tmp_path, steps_per_epoch=4, batch_size=8,
        extra_callbacks=[recorder],
    )  # fmt: skip
    best = result.best_epoch - 1
    raw_steps = recorder.steps[1 : 1 + 4 * (best + 1)]  # raw weights after each step
    average = raw_steps[0]  # Keras starts the average at the first step's weights
    for raw in raw_steps[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, raw, strict=True)]
    best_weights = saved_weights(result.checkpoint_dir / "best.keras")
    for saved, expected in zip(best_weights, average, strict=True):
        np.testing.assert_allclose(saved, expected, rtol=1e-5, atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(best_weights, raw_steps[-1], strict=True)) > 1e-3
    assert weights_equal(saved_weights(result.checkpoint_dir / "last.keras"), recorder.epochs[-1])

    def val_loss(weights: Weights) -> float:
        model.set_weights(weights)
        logits = np.asarray(model.predict_on_batch(images.astype(np.float32)), np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        return float(-log_softmax[np.arange(len(labels)), labels].mean())

    logged = result.history["val_loss"][best]
    assert val_loss(best_weights) == pytest.approx(logged, rel=1e-4)
    assert val_loss(raw_steps[-1]) != pytest.approx(logged, rel=1e-3)
