"""The built-in losses, schedules, optimizers and loggers, registered under their recipe names.

Each factory imports its Keras class when called: `training/spec.py` imports this module to
register the names, and validating a recipe must not load a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emotionkit.training.registries import (
    register_logger,
    register_loss,
    register_optimizer,
    register_schedule,
)

if TYPE_CHECKING:
    from emotionkit.training.loggers import LoggerContext, RunLogger
    from emotionkit.training.schedules import StepPlan
    from emotionkit.training.spec import LossSpec, OptimizerSpec, ScheduleSpec


# --- built-in losses: Keras' own where they already take logits --------------------------


@register_loss("cross_entropy")
def _cross_entropy(spec: LossSpec, alpha: list[float] | None) -> Any:
    import keras

    return keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=spec.label_smoothing
    )


@register_loss("focal")
def _focal(spec: LossSpec, alpha: list[float] | None) -> Any:
    from emotionkit.training.losses import FocalLoss

    return FocalLoss(spec.gamma, alpha, spec.label_smoothing)


@register_loss("kl_divergence", soft_labels=True)
def _kl_divergence(spec: LossSpec, alpha: list[float] | None) -> Any:
    from emotionkit.training.losses import KLDivergenceLoss

    return KLDivergenceLoss()


@register_loss("mse", soft_labels=True)
def _mse(spec: LossSpec, alpha: list[float] | None) -> Any:
    from emotionkit.training.losses import DistributionMSE

    return DistributionMSE()


@register_loss("l1", soft_labels=True)
def _l1(spec: LossSpec, alpha: list[float] | None) -> Any:
    from emotionkit.training.losses import DistributionL1

    return DistributionL1()


@register_loss("bce")
def _bce(spec: LossSpec, alpha: list[float] | None) -> Any:
    import keras

    return keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=spec.label_smoothing)


# --- built-in schedules ---------------------------------------------------------------------


# Cosine keeps its historical 1-epoch warmup and constant its none, so recipes written before
# the field became optional train exactly as they did.
@register_schedule("cosine", default_warmup_epochs=1.0)
def _cosine(schedule: ScheduleSpec, plan: StepPlan) -> Any:
    from emotionkit.training.schedules import cosine_schedule

    return cosine_schedule(plan)


@register_schedule("constant")
def _constant(schedule: ScheduleSpec, plan: StepPlan) -> Any:
    from emotionkit.training.schedules import WarmupStepDecay

    if not plan.warmup_steps:
        return plan.peak_lr  # a float: the optimizer keeps one rate variable
    return WarmupStepDecay(plan.peak_lr, plan.warmup_steps)


@register_schedule("step")
def _step(schedule: ScheduleSpec, plan: StepPlan) -> Any:
    from emotionkit.training.schedules import WarmupStepDecay

    boundaries = [round(epoch * plan.steps_per_epoch) for epoch in schedule.milestones]
    return WarmupStepDecay(plan.peak_lr, plan.warmup_steps, boundaries, schedule.gamma)


@register_schedule("one_cycle")
def _one_cycle(schedule: ScheduleSpec, plan: StepPlan) -> Any:
    from emotionkit.training.schedules import OneCycle

    return OneCycle(
        plan.peak_lr,
        plan.warmup_steps,
        plan.total_steps,
        start_lr=plan.peak_lr / schedule.div_factor,
        final_lr=plan.peak_lr / schedule.final_div_factor,
    )


# --- built-in optimizers: decoupled weight decay, per-variable rate scales ------------------


@register_optimizer("adamw")
def _adamw(spec: OptimizerSpec, **kwargs: Any) -> Any:
    from emotionkit.training.fit import LayerwiseAdamW

    return LayerwiseAdamW(**kwargs)


@register_optimizer("sgd")
def _sgd(spec: OptimizerSpec, **kwargs: Any) -> Any:
    from emotionkit.training.fit import LayerwiseSGD

    return LayerwiseSGD(momentum=spec.momentum, nesterov=spec.nesterov, **kwargs)


# --- built-in loggers: TensorBoard ships with the package, MLflow and W&B are extras ----------


@register_logger("tensorboard", module="tensorboard")
def _tensorboard(context: LoggerContext) -> RunLogger:
    from emotionkit.training.loggers import TensorBoardLogger

    return TensorBoardLogger(context)


@register_logger("mlflow", module="mlflow", extra="mlflow")
def _mlflow(context: LoggerContext) -> RunLogger:
    from emotionkit.training.loggers import MlflowLogger

    return MlflowLogger(context)


@register_logger("wandb", module="wandb", extra="wandb")
def _wandb(context: LoggerContext) -> RunLogger:
    from emotionkit.training.loggers import WandbLogger

    return WandbLogger(context)
