"""Compile and fit: AdamW + warmup-cosine, cross-entropy on logits, accuracy and macro-F1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from rich.console import Console

from emotionkit.recipe import TrainSpec
from emotionkit.train.callbacks import (
    AtomicCheckpoint,
    LearningRateLogger,
    RichProgress,
    StopOnNonFiniteLoss,
)
from emotionkit.train.schedules import build_schedule

# Variables matched by these names get no weight decay: decaying BatchNorm scales and biases
# only fights the normalisation (Goyal et al. 2017, "no bias decay").
NO_DECAY_VARIABLES = ["gamma", "beta", "bias"]


@dataclass
class FitResult:
    """What `fit_model` produced: the Keras history and where the checkpoints are."""

    history: dict[str, list[float]]
    best_epoch: int
    checkpoint_dir: Path
    failure: dict[str, Any] | None


def compile_model(
    model: Any, spec: TrainSpec, steps_per_epoch: int, jit_compile: bool | str = "auto"
) -> None:
    """Attach optimizer, loss and metrics from the recipe's `train` section."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=build_schedule(spec.schedule, spec.optimizer, steps_per_epoch, spec.epochs),
        weight_decay=spec.optimizer.weight_decay,
        clipnorm=spec.optimizer.clip_norm,
        use_ema=spec.optimizer.ema is not None,
        ema_momentum=spec.optimizer.ema or 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_VARIABLES)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=spec.loss.label_smoothing
        ),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.F1Score(average="macro", name="macro_f1", dtype="float32"),
        ],
        jit_compile=jit_compile,
    )


def fit_model(
    model: Any,
    train_data: Any,
    val_data: Any,
    spec: TrainSpec,
    run_dir: Path,
    *,
    steps_per_epoch: int,
    batch_size: int,
    class_weight: dict[int, float] | None = None,
    console: Console | None = None,
) -> FitResult:
    """Run `keras.Model.fit`, writing checkpoints and history.csv into `run_dir`."""
    checkpoints = run_dir / "checkpoints"
    checkpoint = AtomicCheckpoint(checkpoints, spec.monitor)
    nan_guard = StopOnNonFiniteLoss()
    callbacks = [
        nan_guard,
        LearningRateLogger(),
        checkpoint,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        RichProgress(spec.epochs, steps_per_epoch, batch_size, console or Console()),
    ]
    history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=spec.epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False,  # tf.data already shuffles with the recipe seed
        verbose=0,
    )
    return FitResult(
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        best_epoch=checkpoint.best_epoch + 1,
        checkpoint_dir=checkpoints,
        failure=nan_guard.failure,
    )
