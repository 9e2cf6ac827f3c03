"""Learning-rate schedules, stepped per batch (`train.schedule`).

Every schedule is a function of the optimizer's batch counter, so `steps_per_epoch` turns the
recipe's epochs into steps. The warmups ramp linearly: a rate that starts small keeps AdamW's
early, badly-estimated second moments (and SGD's large first steps) from blowing up
BatchNorm statistics in the first batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from emotionkit.training.registries import SCHEDULES

if TYPE_CHECKING:
    from emotionkit.training.spec import ScheduleSpec


@dataclass(frozen=True)
class StepPlan:
    """The recipe's epochs, turned into optimizer steps."""

    peak_lr: float
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int


class _LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear ramp from `start_lr` to `peak_lr` over `warmup_steps`, then `after_warmup`."""

    def __init__(self, peak_lr: float, warmup_steps: int, start_lr: float = 0.0) -> None:
        self.peak_lr = float(peak_lr)
        self.warmup_steps = int(warmup_steps)
        self.start_lr = float(start_lr)

    def after_warmup(self, step: Any) -> Any:
        raise NotImplementedError

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        fraction = step / max(self.warmup_steps, 1)
        warming = self.start_lr + (self.peak_lr - self.start_lr) * fraction
        return ops.where(step < self.warmup_steps, warming, self.after_warmup(step))

    def get_config(self) -> dict[str, Any]:
        return {
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "start_lr": self.start_lr,
        }


@keras.saving.register_keras_serializable(package="emotionkit")
class WarmupStepDecay(_LinearWarmup):
    """Warmup from 0, then `peak_lr * gamma ** (boundaries passed)`; no boundaries: constant.

    Example:
        >>> schedule = WarmupStepDecay(0.1, warmup_steps=0, boundaries=[300, 600], gamma=0.1)
        >>> schedule(450)  # one boundary passed: 0.1 * 0.1 = 0.01
    """

    def __init__(
        self,
        peak_lr: float,
        warmup_steps: int,
        boundaries: Sequence[int] = (),
        gamma: float = 0.1,
        start_lr: float = 0.0,
    ) -> None:
        super().__init__(peak_lr, warmup_steps, start_lr)
        self.boundaries = [int(boundary) for boundary in boundaries]
        self.gamma = float(gamma)

    def after_warmup(self, step: Any) -> Any:
        rate = ops.full_like(step, self.peak_lr)
        for boundary in self.boundaries:
            rate = ops.where(step >= boundary, rate * self.gamma, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "boundaries": self.boundaries, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="emotionkit")
class OneCycle(_LinearWarmup):
    """Smith's one-cycle: warmup `start_lr` -> `peak_lr`, then cosine down to `final_lr`.

    The rate stays at `final_lr` after `total_steps` (a fit that runs a little longer, e.g. a
    partial last epoch, does not climb back up the cosine).
    """

    def __init__(
        self,
        peak_lr: float,
        warmup_steps: int,
        total_steps: int,
        start_lr: float,
        final_lr: float,
    ) -> None:
        super().__init__(peak_lr, warmup_steps, start_lr)
        self.total_steps = int(total_steps)
        self.final_lr = float(final_lr)

    def after_warmup(self, step: Any) -> Any:
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.minimum((step - self.warmup_steps) / decay_steps, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.final_lr + (self.peak_lr - self.final_lr) * cosine

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "total_steps": self.total_steps, "final_lr": self.final_lr}


def cosine_schedule(plan: StepPlan) -> Any:
    """Linear warmup from 0, then cosine decay to 0.

    Keras' own warmup + cosine: kept so runs (and saved optimizers) predating the other
    schedules are unchanged.
    """
    warmup = plan.warmup_steps
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else plan.peak_lr,
        decay_steps=max(1, plan.total_steps - warmup),
        warmup_target=plan.peak_lr if warmup else None,
        warmup_steps=warmup,
    )


def build_schedule(schedule: ScheduleSpec, lr: float, steps_per_epoch: int, epochs: int) -> Any:
    """The recipe's schedule as a Keras `LearningRateSchedule` (or a float for `constant`).

    Args:
        schedule: the recipe's `train.schedule`.
        lr: the peak rate, `train.optimizer.lr`.
        steps_per_epoch: batches per epoch.
        epochs: `train.epochs`.

    Returns:
        What Keras optimizers take as `learning_rate`.

    Example:
        >>> build_schedule(ScheduleSpec(name="one_cycle"), 1e-3, steps_per_epoch=100, epochs=10)
    """
    warmup_epochs = schedule.resolved_warmup_epochs(epochs)
    plan = StepPlan(
        peak_lr=lr,
        total_steps=max(1, steps_per_epoch * epochs),
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
    )
    return SCHEDULES.get(schedule.name).build(schedule, plan)
