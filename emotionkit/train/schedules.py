"""Learning-rate schedules, stepped per batch."""

from __future__ import annotations

from typing import Any

from emotionkit.recipe import OptimizerSpec, ScheduleSpec


def build_schedule(
    schedule: ScheduleSpec, optimizer: OptimizerSpec, steps_per_epoch: int, epochs: int
) -> Any:
    """A Keras schedule (or a float for `constant`).

    `cosine` warms up linearly from 0 to `lr` over `warmup_epochs`, then decays to 0 by the
    last step: the warmup keeps AdamW's early, badly-estimated second moments from blowing
    up BatchNorm statistics in the first steps.
    """
    import keras

    if schedule.name == "constant":
        return optimizer.lr
    total_steps = max(1, steps_per_epoch * epochs)
    warmup_steps = round(schedule.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else optimizer.lr,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=optimizer.lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
