"""The recipe's `train` section: optimizer, schedule, loss and the fitting loop's options.

Loss, schedule and optimizer names are the ones registered in `training/registries.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from emotionkit.sections import NameIn, Section, reject_unused
from emotionkit.training import catalog
from emotionkit.training.registries import LOGGERS, LOSSES, OPTIMIZERS, SCHEDULES

BUILT_IN_CATALOG = catalog
"""Imported for its registrations: the built-in loss, schedule and optimizer names."""


class OptimizerSpec(Section):
    """AdamW or SGD with decoupled weight decay (not applied to BatchNorm and bias)."""

    name: Annotated[str, NameIn(OPTIMIZERS)] = Field(
        "adamw",
        description="`adamw` (Loshchilov & Hutter 2019) or `sgd` (with `momentum` and "
        "`nesterov`). Both take `weight_decay`, `clip_norm`, `ema` and `grad_accum`.",
    )
    lr: float = Field(
        1e-3,
        gt=0.0,
        description="Peak learning rate (at `lr_reference_batch` when `lr_scaling` is set).",
    )
    weight_decay: float = Field(
        0.05,
        ge=0.0,
        description="Decoupled weight decay: each step multiplies weights by (1 - lr * "
        "weight_decay). Typical AdamW value: 0.05. For SGD, a classic L2 of 5e-4 at momentum "
        "0.9 is about 5e-3 here (momentum amplifies L2 by 1 / (1 - momentum)).",
    )
    momentum: float = Field(
        0.9, ge=0.0, lt=1.0, description="SGD momentum (only with `name: sgd`)."
    )
    nesterov: bool = Field(True, description="Nesterov momentum (only with `name: sgd`).")
    clip_norm: float | None = Field(None, gt=0.0, description="Clip each gradient's norm.")
    ema: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Exponential moving average of the weights with this momentum (e.g. "
        "0.999). The averaged weights are the ones validated, saved as `best.keras` and "
        "exported; training itself steps the raw weights.",
    )
    grad_accum: int = Field(
        1,
        ge=1,
        description="Average the gradients of this many batches before each update: the "
        "effective batch is `data.batch_size * grad_accum` (BatchNorm still sees single "
        "batches). The schedule still counts batches.",
    )
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none",
        description="Scale `lr` with the effective global batch B = `data.batch_size * "
        "grad_accum` relative to `lr_reference_batch` (the batch `lr` was tuned at): "
        "`linear` uses lr * B / reference (Goyal et al. 2017, with the warmup of "
        "`train.schedule`), `sqrt` lr * sqrt(B / reference) (often preferred for "
        "Adam-type optimizers). The device count does not enter: `data.batch_size` is "
        "already the global batch. The applied rate is printed and saved in manifest.json.",
    )
    lr_reference_batch: int | None = Field(
        None,
        ge=1,
        description="With `lr_scaling`: the global batch at which `lr` was tuned, e.g. 32 "
        "when a recipe tuned at batch 32 is run at `data.batch_size: 256` on 8 GPUs.",
    )

    @model_validator(mode="after")
    def _lr_scaling_needs_reference(self) -> OptimizerSpec:
        if (self.lr_scaling == "none") != (self.lr_reference_batch is None):
            raise ValueError(
                "set train.optimizer.lr_scaling (linear or sqrt) and "
                "train.optimizer.lr_reference_batch together, or neither"
            )
        return self

    @model_validator(mode="after")
    def _sgd_options_need_sgd(self) -> OptimizerSpec:
        reject_unused(
            self, self.name, "train.optimizer", {"momentum": {"sgd"}, "nesterov": {"sgd"}}
        )
        return self


class ScheduleSpec(Section):
    """Learning-rate schedule, stepped per batch."""

    name: Annotated[str, NameIn(SCHEDULES)] = Field(
        "cosine",
        description="`cosine`: linear warmup from 0, then cosine decay to 0; `constant`: "
        "`lr` (after an optional warmup); `step`: warmup, then `lr` times `gamma` at each "
        "epoch in `milestones`; `one_cycle`: linear warmup from lr / `div_factor` to `lr` "
        "over `pct_start` of training, then cosine decay to lr / `final_div_factor` (Smith "
        "& Topin 2017).",
    )
    warmup_epochs: float | None = Field(
        None,
        ge=0.0,
        description="Linear warmup length in epochs (fractions allowed). `null`: 1 for "
        "`cosine`, 0 for `constant` and `step`, `pct_start * train.epochs` for `one_cycle`.",
    )
    milestones: list[int] = Field(
        default_factory=list,
        description="`step`: epochs (counted from 0, increasing, after the warmup) at which "
        "the rate is multiplied by `gamma`, e.g. `[30, 60, 80]`.",
    )
    gamma: float = Field(
        0.1, gt=0.0, le=1.0, description="`step`: factor applied at each milestone."
    )
    pct_start: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        description="`one_cycle`: fraction of training spent warming up (when "
        "`warmup_epochs` is null).",
    )
    div_factor: float = Field(
        25.0, ge=1.0, description="`one_cycle`: the warmup starts at lr / div_factor."
    )
    final_div_factor: float = Field(
        1e4,
        ge=1.0,
        description="`one_cycle`: training ends at lr / final_div_factor (fastai's "
        "convention; PyTorch's OneCycleLR ends at lr / (div_factor * final_div_factor)).",
    )

    @model_validator(mode="after")
    def _options_match_schedule(self) -> ScheduleSpec:
        one_cycle = {"one_cycle"}
        reject_unused(
            self,
            self.name,
            "train.schedule",
            {
                "milestones": {"step"},
                "gamma": {"step"},
                "pct_start": one_cycle,
                "div_factor": one_cycle,
                "final_div_factor": one_cycle,
            },
        )
        return self

    def resolved_warmup_epochs(self, epochs: int) -> float:
        """Warmup length in epochs once `null` is replaced by this schedule's default."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        if self.name == "one_cycle":
            return self.pct_start * epochs
        return SCHEDULES.get(self.name).default_warmup_epochs


class LossSpec(Section):
    """Training loss on the model's logits (computed in float32 under mixed precision)."""

    name: Annotated[str, NameIn(LOSSES)] = Field(
        "cross_entropy",
        description="`cross_entropy` (softmax); `focal` (softmax focal loss, Lin et al. "
        "2017: `gamma`, `alpha`); soft-label losses between the softmax and the target "
        "distribution: `kl_divergence` (KL(target || predicted)), `mse`, `l1`; `bce` "
        "(per-class sigmoid binary cross-entropy, for multi-label targets).",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing for `cross_entropy`, `focal` (targets * (1 - s) + s / "
        "K) and `bce` (targets * (1 - s) + s / 2).",
    )
    gamma: float = Field(
        2.0,
        ge=0.0,
        description="`focal`: focusing exponent; each class term is scaled by (1 - p)^gamma "
        "(0: plain cross-entropy).",
    )
    alpha: Literal["auto"] | list[float] | None = Field(
        None,
        description="`focal`: per-class weights. `null`: none; `auto`: inverse train class "
        "frequency, scaled so the average weight per train image is 1; or one weight per "
        "class in `data.classes` order.",
    )

    @field_validator("alpha", mode="before")
    @classmethod
    def _alpha_is_auto_or_weights(cls, value: Any) -> Any:
        """One clear message instead of pydantic's one per union member."""
        if value is None or value == "auto":
            return value
        if isinstance(value, list) and value and all(_is_weight(item) for item in value):
            return value
        raise ValueError("must be null, auto or a list of per-class weights >= 0 such as [1, 2.5]")

    @model_validator(mode="after")
    def _options_match_loss(self) -> LossSpec:
        smoothed = {"cross_entropy", "focal", "bce"}
        reject_unused(
            self,
            self.name,
            "train.loss",
            {"gamma": {"focal"}, "alpha": {"focal"}, "label_smoothing": smoothed},
        )
        return self


def _is_weight(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


class EarlyStoppingSpec(Section):
    """Stop when `train.monitor` has not improved for a while (the best epoch is kept)."""

    patience: int | None = Field(
        None,
        ge=1,
        description="Epochs without an improvement of `train.monitor` by more than "
        "`min_delta` before training stops. `null`: never stop early. The best checkpoint, "
        "not the last weights, is what is evaluated and exported either way.",
    )
    min_delta: float = Field(
        0.0, ge=0.0, description="Smallest change of the monitor that counts as improving."
    )


class DistillSpec(Section):
    """Knowledge distillation (Hinton et al. 2015): learn from an ONNX teacher's predictions
    as well as from the labels (docs/training.md, section Distillation)."""

    teacher: str = Field(
        description="The teacher: an emotionkit ONNX export (`.onnx` file or run directory "
        "with `export/model.onnx`) or a bundled model's name (`fer2013-cpu`). It runs with "
        "onnxruntime on the host, on the same augmented images as the student; its classes "
        "must include the data's (matched by name) and its input size and channels must be "
        "`data.image_size` and `data.channels`.",
    )
    alpha: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the teacher in the training target: (1 - alpha) * labels + "
        "alpha * softmax(teacher_logits / temperature). 0: labels only; 1: the teacher only.",
    )
    temperature: float = Field(
        1.0,
        gt=0.0,
        description="Softens the teacher's distribution (T > 1 spreads its probability over "
        "the runner-up classes). The student's own softmax stays at T = 1, so the loss needs "
        "no T^2 rescaling.",
    )


class TrainSpec(Section):
    """How the model is fitted."""

    epochs: int = Field(10, ge=1, description="Number of epochs.")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    top_k: int = Field(
        2,
        ge=1,
        description="Logged as `top{k}_accuracy`: a prediction counts as right when the true "
        "class is among the k highest logits.",
    )
    monitor: Literal["val_macro_f1", "val_accuracy", "val_loss"] = Field(
        "val_macro_f1", description="Validation metric that picks the best checkpoint."
    )
    early_stopping: EarlyStoppingSpec = Field(default_factory=lambda: EarlyStoppingSpec())
    tensorboard: bool = Field(
        False,
        description="Write TensorBoard logs (per-epoch losses, metrics and learning rate) to "
        "the run's `tensorboard/` folder: `tensorboard --logdir runs/`. The same as "
        "`tensorboard` in `train.loggers`.",
    )
    confusion_matrix_every: int = Field(
        5,
        ge=0,
        description="With the `tensorboard` logger: every this many epochs, an image of the "
        "row-normalised validation confusion matrix (0: never).",
    )
    keep_backups: int = Field(
        2,
        ge=1,
        description="Per-epoch resume backups kept in `checkpoints/backups/` (model, "
        "optimizer, EMA and callback state; older ones are pruned). `best.keras` and "
        "`last.keras` are kept besides.",
    )
    unfreeze_at_epoch: int | None = Field(
        None,
        ge=1,
        description="Epoch (counted from 0) at which the layers frozen by `model.freeze` "
        "start training: epochs before it train the unfrozen layers only (a head warmup), "
        "then everything trains. `null`: stay frozen for the whole run.",
    )
    backbone_lr_scale: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Discriminative fine-tuning: from `unfreeze_at_epoch` on, the layers "
        "that `model.freeze` held step at this multiple of the scheduled rate while the "
        "head keeps the full rate.",
    )

    distill: DistillSpec | None = Field(
        None,
        description="Train against a mix of the labels and a teacher model's softened "
        "predictions (`teacher`, `alpha`, `temperature`). `null`: labels only.",
    )
    loggers: list[Annotated[str, NameIn(LOGGERS)]] = Field(
        default_factory=list,
        description="Experiment trackers that record the run: the recipe as parameters, "
        "per-epoch metrics, the best checkpoint's per-class scores, and (MLflow, W&B) "
        "metrics.json, history.csv, recipe.yaml and the ONNX model as artifacts. "
        "`tensorboard` (the run's `tensorboard/`), `mlflow` (`MLFLOW_TRACKING_URI`, else a "
        "file store in `RUNS_DIR/mlruns`; extra `mlflow`), `wandb` (offline unless "
        "`WANDB_MODE` is set, in the run's `wandb/`; extra `wandb`). See docs/experiments.md.",
    )

    def logger_names(self) -> list[str]:
        """`loggers`, plus `tensorboard` when the older `tensorboard: true` asks for it."""
        names = list(dict.fromkeys(self.loggers))
        return [*names, "tensorboard"] if self.tensorboard and "tensorboard" not in names else names

    @model_validator(mode="after")
    def _warmup_shorter_than_training(self) -> TrainSpec:
        warmup = self.schedule.resolved_warmup_epochs(self.epochs)
        if warmup >= self.epochs:
            raise ValueError(
                f"train.schedule.warmup_epochs ({warmup}) must be smaller than train.epochs "
                f"({self.epochs}): set train.schedule.warmup_epochs=0 (or below "
                f"{self.epochs}), or raise train.epochs"
            )
        return self

    @model_validator(mode="after")
    def _milestones_inside_training(self) -> TrainSpec:
        if self.schedule.name != "step":
            return self
        milestones = self.schedule.milestones
        warmup = self.schedule.resolved_warmup_epochs(self.epochs)
        if not milestones:
            raise ValueError(
                "train.schedule.name step needs train.schedule.milestones, e.g. [30, 60]"
            )
        if milestones != sorted(set(milestones)):
            raise ValueError(f"train.schedule.milestones {milestones} must be increasing")
        if milestones[0] < warmup or milestones[-1] >= self.epochs:
            raise ValueError(
                f"train.schedule.milestones {milestones} must lie between the end of the "
                f"warmup (epoch {warmup}) and train.epochs ({self.epochs})"
            )
        return self

    @model_validator(mode="after")
    def _unfreeze_inside_training(self) -> TrainSpec:
        if self.unfreeze_at_epoch is not None and self.unfreeze_at_epoch >= self.epochs:
            raise ValueError(
                f"train.unfreeze_at_epoch ({self.unfreeze_at_epoch}) must be smaller than "
                f"train.epochs ({self.epochs})"
            )
        if self.backbone_lr_scale != 1.0 and self.unfreeze_at_epoch is None:
            raise ValueError("train.backbone_lr_scale needs train.unfreeze_at_epoch to be set")
        return self
