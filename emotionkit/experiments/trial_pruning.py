"""The Keras callback that reports each epoch to an Optuna trial and prunes it.

A module of its own because it imports Keras: `experiments.tune` loads it when a trial runs.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from emotionkit.errors import EmotionkitError


class TrialReport(keras.callbacks.Callback):
    """After each epoch: report the metric to the trial, and stop it if Optuna says so.

    Pruning raises `optuna.TrialPruned` out of `fit`: the run stops there (its manifest is
    then marked `pruned` by the tuner), and Optuna records the trial as pruned. `best` is
    the trial's score so far: the best epoch's value, as the best checkpoint keeps it.
    """

    def __init__(self, trial: Any, metric: str, maximize: bool) -> None:
        super().__init__()
        self.trial, self.metric, self.maximize = trial, metric, maximize
        self.best: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import optuna

        logs = logs or {}
        if self.metric not in logs:
            raise EmotionkitError(
                f"tune metric {self.metric!r} is not among the logged metrics: "
                f"{sorted(key for key in logs if key.startswith('val_'))}."
            )
        value = float(logs[self.metric])
        if math.isfinite(value) and (
            self.best is None or (value > self.best if self.maximize else value < self.best)
        ):
            self.best = value
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {self.metric} {value:.4f}")
