"""Compile and fit: the recipe's optimizer, schedule, loss and metrics, then `Model.fit`."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from rich.console import Console

from emotionkit.models.freeze import unfreeze_all
from emotionkit.training.callbacks import (
    AtomicCheckpoint,
    EarlyStop,
    LearningRateLogger,
    ResumeBackup,
    RichProgress,
    StopOnNonFiniteLoss,
)
from emotionkit.training.losses import FocalLoss, build_loss
from emotionkit.training.metrics import build_training_metrics
from emotionkit.training.registries import OPTIMIZERS
from emotionkit.training.schedules import build_schedule

if TYPE_CHECKING:
    from emotionkit.training.loggers import RunLoggers
    from emotionkit.training.spec import TrainSpec

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


class LayerwiseLearningRate(keras.optimizers.Optimizer):
    """Mixin: the chosen variables step at `lr_scale` times the scheduled rate, and the
    no-weight-decay names survive saving.

    This is discriminative fine-tuning: after `train.unfreeze_at_epoch` the pretrained
    backbone moves more gently than the freshly initialised head. Keras optimisers have one
    rate; overriding `update_step` (called per variable by both the TF and JAX backends)
    is the smallest correct change. Weight decay still uses the unscaled rate. Put it first
    in the bases, before the Keras optimizer it scales.

    Keras keeps `exclude_from_weight_decay` out of the optimizer's config, so a model
    reloaded from a `.keras` backup would decay BatchNorm and biases; `no_decay_names` is
    in the config and re-applied, which keeps a resumed run exact.
    """

    def __init__(
        self,
        scaled_variables: Collection[str] = (),
        lr_scale: float = 1.0,
        no_decay_names: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scaled_variables = frozenset(scaled_variables)
        self.lr_scale = lr_scale
        self._scaled_keys: frozenset[int] = frozenset()
        self.no_decay_names = list(no_decay_names)
        if self.no_decay_names:
            self.exclude_from_weight_decay(var_names=self.no_decay_names)

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
        config.update(
            scaled_variables=sorted(self.scaled_variables),
            lr_scale=self.lr_scale,
            no_decay_names=self.no_decay_names,
        )
        return config


@keras.saving.register_keras_serializable(package="emotionkit")
class LayerwiseAdamW(LayerwiseLearningRate, keras.optimizers.AdamW):
    """AdamW with a per-variable rate scale (see `LayerwiseLearningRate`)."""


@keras.saving.register_keras_serializable(package="emotionkit")
class LayerwiseSGD(LayerwiseLearningRate, keras.optimizers.SGD):
    """SGD (momentum, Nesterov) with a per-variable rate scale (see `LayerwiseLearningRate`)."""


def build_optimizer(
    spec: TrainSpec,
    steps_per_epoch: int,
    *,
    scaled_variables: Collection[str] = (),
    lr_scale: float = 1.0,
) -> Any:
    """The recipe's `train.optimizer` with its schedule; no decay on BatchNorm and biases."""
    options = spec.optimizer
    kwargs: dict[str, Any] = {
        "learning_rate": build_schedule(spec.schedule, options.lr, steps_per_epoch, spec.epochs),
        "weight_decay": options.weight_decay,
        "clipnorm": options.clip_norm,
        "use_ema": options.ema is not None,
        "ema_momentum": options.ema or 0.99,
    }
    if options.grad_accum > 1:  # Keras refuses gradient_accumulation_steps=1
        kwargs["gradient_accumulation_steps"] = options.grad_accum
    return OPTIMIZERS.get(options.name)(
        options,
        scaled_variables=scaled_variables,
        lr_scale=lr_scale,
        no_decay_names=NO_DECAY_VARIABLES,
        **kwargs,
    )


def compile_model(
    model: Any,
    spec: TrainSpec,
    steps_per_epoch: int,
    jit_compile: bool | str = "auto",
    *,
    initial_epoch: int = 0,
    scaled_variables: Collection[str] = (),
    lr_scale: float = 1.0,
    class_counts: Sequence[int] | None = None,
    ordinal: bool = False,
) -> None:
    """Attach optimizer, loss and metrics from the recipe's `train` section.

    `initial_epoch`, `scaled_variables` and `lr_scale` serve the second phase of two-stage
    fine-tuning: the new optimizer starts its step counter where the first phase stopped (so
    the schedule goes on rather than restarting its warmup), and the variables named in
    `scaled_variables` (the backbone that was frozen) step at `lr_scale` times the rate.

    Args:
        class_counts: train images per class, for focal `train.loss.alpha: auto`. When
            recompiling a model already compiled with such a loss (phase two), it may be
            left out: the loss, and its per-class alpha, are kept.

    Raises:
        RecipeError: a focal `train.loss.alpha` that does not fit the model's classes.
    """
    optimizer = build_optimizer(
        spec, steps_per_epoch, scaled_variables=scaled_variables, lr_scale=lr_scale
    )
    if initial_epoch:
        # The private counter counts batches and drives the schedule; the public
        # `iterations` counts updates (batches // grad_accum) and cannot be assigned then.
        optimizer._iterations.assign(initial_epoch * steps_per_epoch)
    model.compile(
        optimizer=optimizer,
        loss=_training_loss(model, spec, class_counts),
        metrics=build_training_metrics(spec.loss.name, spec.top_k, ordinal),
        jit_compile=jit_compile,
    )


def _training_loss(model: Any, spec: TrainSpec, class_counts: Sequence[int] | None) -> Any:
    previous = getattr(model, "loss", None)
    if class_counts is None and spec.loss.alpha == "auto" and isinstance(previous, FocalLoss):
        return previous  # phase two of fine-tuning: same recipe, alpha already resolved
    num_classes = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
    return build_loss(spec.loss, class_counts, num_classes)


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
    resume_state: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    freeze_batchnorm: bool = False,
    loggers: RunLoggers | None = None,
    ordinal: bool = False,
) -> FitResult:
    """Run `keras.Model.fit`, writing checkpoints, resume backups and history.csv to `run_dir`.

    `train_data` is a function `epochs -> dataset` giving the stream of the epochs in that
    `range` (see `build_dataset(epochs=...)`): each `fit` call, and a resumed run, gets
    exactly its own epochs' batches. A plain one-epoch dataset is also accepted (it is
    re-iterated every epoch).

    With `spec.unfreeze_at_epoch = k`, fit runs twice: epochs [0, k) as compiled by the
    caller (frozen layers stay frozen), then every layer is made trainable, the model is
    recompiled (a new optimizer that knows the new variables, at `backbone_lr_scale` times
    the rate) and fit continues from epoch k. Two `fit` calls rather than a callback that
    recompiles mid-`fit`: Keras builds its train function once per `fit`, so a trainable flag
    flipped inside it is not reliably seen. One checkpoint callback spans both phases (best
    epoch over the whole run) and history.csv is appended to.

    Args:
        extra_callbacks: more Keras callbacks for both phases (tests record weights with one).
        class_names: for the TensorBoard confusion-matrix image (`train.loggers`).
        loggers: the run's experiment loggers (`training.loggers.run_loggers`); their
            callbacks see every epoch of both phases.
        resume_state: a backup's `state.json`: training continues after its `epoch` with
            the checkpoint and early-stopping state it recorded; the model must be the
            backup's (compiled, optimizer state included).
    """
    checkpoints = run_dir / "checkpoints"
    nan_guard = StopOnNonFiniteLoss()
    halted = lambda: nan_guard.failure is not None  # noqa: E731
    checkpoint = AtomicCheckpoint(checkpoints, spec.monitor, halted)
    early_stop = EarlyStop(
        spec.monitor, spec.early_stopping.patience, spec.early_stopping.min_delta
    )
    start = 0
    if resume_state is not None:
        start = int(resume_state["epoch"])
        checkpoint.restore(resume_state["checkpoint"])
        early_stop.restore(resume_state["early_stopping"])
    backup = ResumeBackup(
        checkpoints / "backups",
        spec.keep_backups,
        lambda: {"checkpoint": checkpoint.state(), "early_stopping": early_stop.state()},
        halted,
    )
    progress = RichProgress(spec.epochs, steps_per_epoch, batch_size, console or Console())
    history: dict[str, list[float]] = {}
    for first, stop, unfreezes in _phases(spec, start):
        if nan_guard.failure is not None or early_stop.stopped_epoch is not None:
            break
        if unfreezes:
            frozen = {
                v.path for layer in model.layers if not layer.trainable for v in layer.weights
            }
            unfreeze_all(model, keep_batchnorm=freeze_batchnorm)
            compile_model(
                model, spec, steps_per_epoch, jit_compile, initial_epoch=first,
                scaled_variables=frozen, lr_scale=spec.backbone_lr_scale, ordinal=ordinal,
            )  # fmt: skip
        _build_compiled_state(model, val_data)
        csv = keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=first > 0)
        callbacks = [nan_guard, LearningRateLogger(), checkpoint, early_stop, csv, backup]
        if loggers is not None:  # after LearningRateLogger, so `lr` is among the scalars
            callbacks[2:2] = loggers.fit_callbacks(val_data, class_names)
        if spec.optimizer.ema is not None:  # validate the averaged weights (swapped back after)
            callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=False))
        stream = train_data(range(first, stop)) if callable(train_data) else train_data
        stream, weights = class_weights_in_batches(stream, class_weight)
        try:
            result = model.fit(
                stream,
                validation_data=val_data,
                steps_per_epoch=steps_per_epoch,  # one stream holds all remaining epochs
                initial_epoch=first,
                epochs=stop,
                class_weight=weights,
                callbacks=[*callbacks, progress, *(extra_callbacks or [])],
                shuffle=False,  # the stream is already shuffled, per epoch, from the seed
                verbose=0,
            )
        finally:  # an interrupted fit skips on_train_end, which closes the CSV file
            if csv.csv_file is not None and not csv.csv_file.closed:
                csv.csv_file.close()
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(value) for value in values)
    return FitResult(
        history=history,
        best_epoch=checkpoint.best_epoch + 1,
        checkpoint_dir=checkpoints,
        failure=nan_guard.failure,
    )


def class_weights_in_batches(
    stream: Any, class_weight: dict[int, float] | None
) -> tuple[Any, dict[int, float] | None]:
    """`(stream, class_weight)` for `fit`; a Python iterator (the TensorFlow-free NumPy
    stream of `data.array_batches`) carries the weights in its batches instead.

    Keras refuses `class_weight` for Python generators. Each batch then gets the sample
    weights Keras would have made: the weight of the class each target row's argmax names.
    """
    if class_weight is None or not isinstance(stream, Iterator):
        return stream, class_weight
    table = np.asarray([class_weight[index] for index in range(len(class_weight))], np.float32)
    return ((x, y, table[np.asarray(y).argmax(axis=-1)]) for x, y in stream), None


def _build_compiled_state(model: Any, val_data: Any) -> None:
    """Build the compiled loss and metrics on one validation batch before `fit`.

    Otherwise `fit` builds them by peeking at a train batch and then restarts the train
    iterator (the JAX trainer does): the augmentation layers' random state has then moved on
    by one batch, and a resumed run's first epoch would draw other augmentations than the
    uninterrupted run did.
    """
    model.evaluate(val_data.take(1), verbose=0)


def _phases(spec: TrainSpec, start: int) -> list[tuple[int, int, bool]]:
    """`(first_epoch, stop_epoch, unfreezes_first)` of the fit calls still to run from `start`.

    A run resumed inside phase two has its backup's unfrozen, recompiled model already. A run
    whose last epoch was backed up (stopped during evaluation or export) has none left.
    """
    boundary = spec.unfreeze_at_epoch
    if boundary is None or start >= boundary:
        phases = [(start, spec.epochs, False)]
    else:
        phases = [(start, boundary, False), (boundary, spec.epochs, True)]
    return [(first, stop, unfreezes) for first, stop, unfreezes in phases if first < stop]
