"""The training stage's registries: losses, learning-rate schedules, optimizers and loggers.

`train.loss.name`, `train.schedule.name`, `train.optimizer.name` and `train.loggers` accept
exactly the names registered here. Each entry is a small factory that imports Keras (or its
logging library) only when called, so validating a recipe (`emotionkit recipe show`) never
loads a backend. The built-in entries are in `training/catalog.py`; a new one is a decorated
function in any module, e.g.

    @register_loss("poly1")
    def poly1(spec, alpha):
        return Poly1Loss(epsilon=1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emotionkit.registry import Registry

if TYPE_CHECKING:
    from emotionkit.training.loggers import LoggerContext, RunLogger
    from emotionkit.training.schedules import StepPlan
    from emotionkit.training.spec import LossSpec, ScheduleSpec

LossFactory = Callable[["LossSpec", "list[float] | None"], Any]
"""`(train.loss, resolved per-class alpha or None) -> keras.losses.Loss` on logits."""
ScheduleFactory = Callable[["ScheduleSpec", "StepPlan"], Any]
"""`(train.schedule, step plan) -> LearningRateSchedule` (or a float)."""
OptimizerFactory = Callable[..., Any]
"""`(train.optimizer, **keras_kwargs) -> keras optimizer` (kwargs: rate, decay, EMA...)."""
LoggerFactory = Callable[["LoggerContext"], "RunLogger"]
"""`(run directory, train section, flattened recipe, saved state) -> a started RunLogger`."""


@dataclass(frozen=True)
class LossEntry:
    build: LossFactory
    soft_labels: bool = False
    """Compares the softmax with a target distribution (distribution learning)."""


@dataclass(frozen=True)
class ScheduleEntry:
    build: ScheduleFactory
    default_warmup_epochs: float = 0.0
    """`train.schedule.warmup_epochs: null` (one_cycle uses `pct_start` instead)."""


@dataclass(frozen=True)
class LoggerEntry:
    build: LoggerFactory
    module: str | None = None
    """The library it needs (checked before a run starts), from the extra `extra`."""
    extra: str | None = None


LOSSES: Registry[LossEntry] = Registry("loss", "train.loss.name")
SCHEDULES: Registry[ScheduleEntry] = Registry("schedule", "train.schedule.name")
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer", "train.optimizer.name")
LOGGERS: Registry[LoggerEntry] = Registry("logger", "train.loggers")


def register_loss(name: str, *, soft_labels: bool = False) -> Callable[[LossFactory], LossFactory]:
    """Decorator: register a loss factory as `train.loss.name: name`."""

    def add(build: LossFactory) -> LossFactory:
        LOSSES.add(name, LossEntry(build, soft_labels))
        return build

    return add


def register_schedule(
    name: str, *, default_warmup_epochs: float = 0.0
) -> Callable[[ScheduleFactory], ScheduleFactory]:
    """Decorator: register a schedule factory as `train.schedule.name: name`."""

    def add(build: ScheduleFactory) -> ScheduleFactory:
        SCHEDULES.add(name, ScheduleEntry(build, default_warmup_epochs))
        return build

    return add


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Decorator: register an optimizer factory as `train.optimizer.name: name`."""
    return OPTIMIZERS.register(name)


def register_logger(
    name: str, *, module: str | None = None, extra: str | None = None
) -> Callable[[LoggerFactory], LoggerFactory]:
    """Decorator: register a logger factory as a `train.loggers` name; `module` is the
    optional library it imports (installed by the package's extra `extra`)."""

    def add(build: LoggerFactory) -> LoggerFactory:
        LOGGERS.add(name, LoggerEntry(build, module, extra))
        return build

    return add


def soft_label_losses() -> frozenset[str]:
    """Names of the registered losses that learn a target distribution."""
    return frozenset(name for name, entry in LOSSES.items() if entry.soft_labels)
