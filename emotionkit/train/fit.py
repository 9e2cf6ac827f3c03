"""Compile and fit: AdamW + warmup-cosine, cross-entropy on logits, accuracy and macro-F1."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from rich.console import Console

from emotionkit.models.freeze import unfreeze_all
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


@keras.saving.register_keras_serializable(package="emotionkit")
class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose chosen variables step at `lr_scale` times the scheduled rate.

    This is discriminative fine-tuning: after `train.unfreeze_at_epoch` the pretrained
    backbone moves more gently than the freshly initialised head. Keras optimisers have one
    rate; overriding `update_step` (called per variable by both the TF and JAX backends)
    is the smallest correct change. Weight decay still uses the unscaled rate.
    """

    def __init__(
        self, scaled_variables: Collection[str] = (), lr_scale: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.scaled_variables = frozenset(scaled_variables)
        self.lr_scale = lr_scale
        self._scaled_keys: frozenset[int] = frozenset()

    def build(self, variables: Any) -> None:
        # The TF backend hands `update_step` raw tf.Variables without `.path`: match by the
        # optimizer's own variable key, computed once here from the Keras variables.
        super().build(variables)
        self._scaled_keys = frozenset(
            self._var_key(v) for v in variables if v.path in self.scaled_variables
        )

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self._var_key(variable) in self._scaled_keys:
            learning_rate = learning_rate * self.lr_scale
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        config = dict(super().get_config())
        config.update(scaled_variables=sorted(self.scaled_variables), lr_scale=self.lr_scale)
        return config


def compile_model(
    model: Any,
    spec: TrainSpec,
    steps_per_epoch: int,
    jit_compile: bool | str = "auto",
    *,
    initial_epoch: int = 0,
    scaled_variables: Collection[str] = (),
    lr_scale: float = 1.0,
) -> None:
    """Attach optimizer, loss and metrics from the recipe's `train` section.

    `initial_epoch`, `scaled_variables` and `lr_scale` serve the second phase of two-stage
    fine-tuning: the new optimizer starts its step counter where the first phase stopped (so
    the schedule goes on rather than restarting its warmup), and the variables named in
    `scaled_variables` (the backbone that was frozen) step at `lr_scale` times the rate.
    """
    optimizer = LayerwiseAdamW(
        scaled_variables=scaled_variables,
        lr_scale=lr_scale,
        learning_rate=build_schedule(spec.schedule, spec.optimizer, steps_per_epoch, spec.epochs),
        weight_decay=spec.optimizer.weight_decay,
        clipnorm=spec.optimizer.clip_norm,
        use_ema=spec.optimizer.ema is not None,
        ema_momentum=spec.optimizer.ema or 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_VARIABLES)
    if initial_epoch:
        optimizer.iterations.assign(initial_epoch * steps_per_epoch)
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
    jit_compile: bool | str = "auto",
    extra_callbacks: list[Any] | None = None,
) -> FitResult:
    """Run `keras.Model.fit`, writing checkpoints and history.csv into `run_dir`.

    With `spec.unfreeze_at_epoch = k`, fit runs twice: epochs [0, k) as compiled by the
    caller (frozen layers stay frozen), then every layer is made trainable, the model is
    recompiled (a new optimizer that knows the new variables, at `backbone_lr_scale` times
    the rate) and fit continues from epoch k. Two `fit` calls rather than a callback that
    recompiles mid-`fit`: Keras builds its train function once per `fit`, so a trainable flag
    flipped inside it is not reliably seen. One checkpoint callback spans both phases (best
    epoch over the whole run) and history.csv is appended to.

    Args:
        extra_callbacks: more Keras callbacks for both phases (tests record weights with one).
    """
    checkpoints = run_dir / "checkpoints"
    checkpoint = AtomicCheckpoint(checkpoints, spec.monitor)
    nan_guard = StopOnNonFiniteLoss()
    progress = RichProgress(spec.epochs, steps_per_epoch, batch_size, console or Console())
    shared = [nan_guard, LearningRateLogger(), checkpoint, progress, *(extra_callbacks or [])]
    phases = [(0, spec.unfreeze_at_epoch or spec.epochs)]
    if spec.unfreeze_at_epoch is not None:
        phases.append((spec.unfreeze_at_epoch, spec.epochs))
    history: dict[str, list[float]] = {}
    for index, (first, stop) in enumerate(phases):
        if index > 0:
            if nan_guard.failure is not None:
                break
            frozen = {
                v.path for layer in model.layers if not layer.trainable for v in layer.weights
            }
            unfreeze_all(model)
            compile_model(
                model, spec, steps_per_epoch, jit_compile, initial_epoch=first,
                scaled_variables=frozen, lr_scale=spec.backbone_lr_scale,
            )  # fmt: skip
        csv = keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=index > 0)
        result = model.fit(
            train_data,
            validation_data=val_data,
            # An oversampled train stream never ends: epochs are counted in steps then.
            steps_per_epoch=steps_per_epoch if int(train_data.cardinality()) < 0 else None,
            initial_epoch=first,
            epochs=stop,
            class_weight=class_weight,
            callbacks=[*shared, csv],
            shuffle=False,  # tf.data already shuffles with the recipe seed
            verbose=0,
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(value) for value in values)
    return FitResult(
        history=history,
        best_epoch=checkpoint.best_epoch + 1,
        checkpoint_dir=checkpoints,
        failure=nan_guard.failure,
    )
