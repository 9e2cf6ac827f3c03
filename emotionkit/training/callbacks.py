"""Callbacks: atomic checkpoints and resume backups, early stopping, the learning rate in the
logs, a NaN guard and a Rich progress display."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from emotionkit.errors import EmotionkitError


class NonFiniteLossError(EmotionkitError):
    """The training loss became NaN or Inf."""


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current learning rate to the epoch logs (so history.csv has an `lr` column)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def monitor_sign(monitor: str) -> float:
    """+1 when a larger `monitor` is better (accuracy, F1), -1 for losses."""
    return -1.0 if monitor.endswith("loss") else 1.0


@contextmanager
def ema_weights(model: Any) -> Iterator[None]:
    """Inside the block the model holds its EMA weights (if its optimizer keeps an EMA).

    Keras' `SwapEMAWeights` swaps them in for validation only; checkpoints written at epoch
    end would hold the raw weights. The swap is exact (values are exchanged, not averaged
    again), so the raw weights training goes on with are untouched.
    """
    if not getattr(model.optimizer, "use_ema", False):
        yield
        return
    swapper = keras.callbacks.SwapEMAWeights()
    swapper.set_model(model)
    swapper._swap_variables()
    try:
        yield
    finally:
        swapper._swap_variables()


def save_atomically(model: Any, path: Path) -> None:
    """`model.save` to a temporary name, then rename: no truncated file after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras` every epoch and `best.keras` (EMA weights, if any) on improvement.

    Files are written atomically (Keras' ModelCheckpoint writes in place). `best` and
    `best_epoch` are part of the resume state.
    """

    def __init__(
        self, directory: Path, monitor: str, halted: Callable[[], bool] = lambda: False
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.halted = halted  # a failed epoch (non-finite loss) must not replace good files
        self.sign = monitor_sign(monitor)
        self.best = -math.inf
        self.best_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.halted():
            return
        logs = logs or {}
        save_atomically(self.model, self.directory / "last.keras")
        value = logs.get(self.monitor)
        if value is None:
            raise EmotionkitError(
                f"train.monitor={self.monitor!r} is not among the logged metrics: {sorted(logs)}."
            )
        if self.sign * float(value) > self.best:
            self.best = self.sign * float(value)
            self.best_epoch = epoch
            with ema_weights(self.model):
                save_atomically(self.model, self.directory / "best.keras")

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def restore(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])


class EarlyStop(keras.callbacks.Callback):
    """Stops after `patience` epochs without the monitor improving by more than `min_delta`.

    Not Keras' EarlyStopping: its counters reset in `on_train_begin`, and a resumed run must
    carry them on. There is no "restore best weights": the best checkpoint is what gets
    evaluated and exported anyway.
    """

    def __init__(self, monitor: str, patience: int | None, min_delta: float) -> None:
        super().__init__()
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.sign = monitor_sign(monitor)
        self.best = -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.patience is None:
            return
        value = self.sign * float((logs or {})[self.monitor])
        if value > self.best + self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def restore(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]


class ResumeBackup(keras.callbacks.Callback):
    """After every epoch: `backups/epoch_NNNN/` = model.keras (weights, optimizer, EMA,
    schedule step) + state.json (epoch, checkpoint and early-stopping state).

    Each backup is built in a temporary folder and renamed into place, so the newest
    complete backup is always a consistent pair; older ones beyond `keep` are pruned.
    Keep it after the checkpoint, early-stopping and CSV callbacks: it records their state.
    """

    def __init__(
        self,
        directory: Path,
        keep: int,
        state: Callable[[], dict[str, Any]],
        halted: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self.directory, self.keep, self.state = Path(directory), keep, state
        self.halted = halted  # a failed epoch (non-finite loss) is not a resume point

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.halted():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch_{epoch + 1:04d}"
        partial = self.directory / f".{final.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        self.model.save(partial / "model.keras")
        state = {"epoch": epoch + 1, **self.state(), "seed_states": seed_states(self.model)}
        (partial / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        for old in latest_backups(self.directory)[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)


def seed_states(model: Any) -> list[list[int]]:
    """The RNG states of the model's layers (Dropout...): `.keras` files do not keep them."""
    return [
        [int(x) for x in keras.ops.convert_to_numpy(v)]
        for v in model.variables
        if v.path.endswith("seed_generator_state")
    ]


def restore_seed_states(model: Any, states: list[list[int]]) -> None:
    """Put back what `seed_states` saved, so dropout masks continue where they stopped."""
    variables = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for variable, state in zip(variables, states, strict=True):
        variable.assign(keras.ops.convert_to_tensor(state, dtype=variable.dtype))


def latest_backups(directory: Path) -> list[Path]:
    """Complete backups, newest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("epoch_[0-9][0-9][0-9][0-9]"), reverse=True)


class EpochLogs(keras.callbacks.Callback):
    """Hands each epoch's logs to `log(epoch, logs)` (the run's experiment loggers)."""

    def __init__(self, log: Callable[[int, dict[str, Any]], None]) -> None:
        super().__init__()
        self.log = log

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.log(epoch, dict(logs or {}))


class ConfusionMatrixImage(keras.callbacks.Callback):
    """Every `every` epochs, the validation confusion matrix as a TensorBoard image.

    Row-normalised (each true class sums to 1), so rare classes such as FER's disgust are as
    readable as the common ones; scored with the EMA weights when there are some, like the
    validation metrics.
    """

    def __init__(self, log_dir: Path, val_data: Any, class_names: list[str], every: int) -> None:
        super().__init__()
        self.log_dir, self.val_data = Path(log_dir), val_data
        self.class_names, self.every = class_names, every

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.every <= 0 or (epoch + 1) % self.every:
            return
        import numpy as np
        import tensorflow as tf

        from emotionkit.confusion import confusion_matrix, confusion_png

        predicted, labels = [], []
        with ema_weights(self.model):
            for images, one_hot in self.val_data.as_numpy_iterator():
                predicted.append(np.asarray(self.model.predict_on_batch(images)).argmax(-1))
                labels.append(one_hot.argmax(-1))
        matrix = confusion_matrix(
            np.concatenate(labels), np.concatenate(predicted), len(self.class_names)
        )
        image = tf.io.decode_png(confusion_png(matrix, self.class_names), channels=3)
        with tf.summary.create_file_writer(str(self.log_dir / "validation")).as_default():
            tf.summary.image("confusion_matrix", image[None], step=epoch)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first NaN/Inf batch loss and records where it happened."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: dict[str, Any] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = {"epoch": self.epoch + 1, "step": batch + 1, "loss": float(loss)}
            self.model.stop_training = True


class RichProgress(keras.callbacks.Callback):
    """Per-epoch lines with metrics and images/s; a live step bar when attached to a TTY."""

    def __init__(self, epochs: int, steps: int, batch_size: int, console: Console) -> None:
        super().__init__()
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.progress.add_task("train", total=self.steps, loss=float("nan"))
            self.progress.start()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=batch + 1, loss=(logs or {}).get("loss", 0))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        seconds = time.perf_counter() - self.started
        shown = " ".join(f"{k}={float(v):.4f}" for k, v in (logs or {}).items() if k != "lr")
        rate = self.steps * self.batch_size / max(seconds, 1e-9)
        self.console.print(
            f"epoch {epoch + 1}/{self.epochs} {shown} ({seconds:.1f}s, {rate:.0f} img/s)",
            highlight=False,
            soft_wrap=True,
        )
