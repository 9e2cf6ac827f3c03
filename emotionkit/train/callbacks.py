"""Callbacks: atomic checkpoints, the learning rate in the logs, and a Rich progress display."""

from __future__ import annotations

import math
import os
import time
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


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras` every epoch and `best.keras` when `monitor` improves.

    Each file is written to a temporary name and renamed: a crash mid-write never leaves a
    truncated checkpoint behind (Keras' ModelCheckpoint writes in place).
    """

    def __init__(self, directory: Path, monitor: str) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.best = -math.inf
        self.best_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self._save(self.directory / "last.keras")
        value = logs.get(self.monitor)
        if value is None:
            raise EmotionkitError(
                f"train.monitor={self.monitor!r} is not among the logged metrics: {sorted(logs)}."
            )
        if self.sign * float(value) > self.best:
            self.best = self.sign * float(value)
            self.best_epoch = epoch
            self._save(self.directory / "best.keras")

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.tmp.keras")
        self.model.save(temporary)
        os.replace(temporary, path)


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
