"""The recipe: typed, validated sections that every pipeline stage takes a part of.

A recipe is YAML (read with `yaml.safe_load`) validated by the pydantic models below. Each
field carries a description: it is the documentation, the JSON Schema (`emotionkit recipe
schema`) and the source of the recipe reference in `docs/`. Unknown keys are rejected with the
closest valid name, the way Ultralytics rejects a mistyped `epochz`.

Example:
    >>> recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=3", "model.width=0.25"])
    >>> recipe.train.epochs
    3
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emotionkit.errors import RecipeError


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RuntimeSpec(Section):
    """Where and how the computation runs."""

    backend: Literal["auto", "jax", "tensorflow"] = Field(
        "auto",
        description="Keras backend. `auto`: KERAS_BACKEND if set, else JAX when an NVIDIA GPU "
        "is visible and TensorFlow on CPU-only machines (TensorFlow's oneDNN kernels train a "
        "ResNet-18 ~2.5x faster than XLA:CPU on a 2-core machine).",
    )
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = Field(
        "auto",
        description="Compute precision. `auto`: mixed_bfloat16 on GPUs with bf16 support "
        "(compute capability >= 8.0), mixed_float16 on older GPUs, float32 on CPU (bf16 is "
        "slower than float32 on CPUs without AMX).",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA compilation of the train step. `auto`: Keras' own choice."
    )
    distribution: Literal["none", "data_parallel"] = Field(
        "none",
        description="`data_parallel`: replicate the model on `devices` and split each "
        "`data.batch_size` (the global batch) evenly across them, with Keras' "
        "`DataParallel` (JAX) or `tf.distribute.MirroredStrategy` (TensorFlow; "
        "`MultiWorkerMirroredStrategy` when `TF_CONFIG` is set). Multi-host set-up: "
        "docs/distributed.md.",
    )
    devices: Literal["all"] | int = Field(
        "all",
        description="`data_parallel`: `all` local accelerators (GPUs/TPUs, else CPU devices) "
        "or the first N of them on each host.",
    )

    @field_validator("devices")
    @classmethod
    def _positive_device_count(cls, value: Literal["all"] | int) -> Literal["all"] | int:
        if value != "all" and value < 1:
            raise ValueError("must be `all` or a device count >= 1")
        return value

    @model_validator(mode="after")
    def _devices_need_data_parallel(self) -> RuntimeSpec:
        if self.distribution == "none" and self.devices != "all":
            raise ValueError(
                "runtime.devices applies to runtime.distribution data_parallel: set "
                "runtime.distribution=data_parallel or remove runtime.devices"
            )
        return self


class SyntheticSource(Section):
    """Built-in synthetic faces: no download, deterministic, for quickstart and tests."""

    kind: Literal["synthetic"] = "synthetic"
    train_size: int = Field(3000, ge=7, description="Number of training images.")
    val_size: int = Field(700, ge=7, description="Number of validation images.")
    test_size: int = Field(0, ge=0, description="Number of test images (0: no test split).")


class ImageFolderSource(Section):
    """Folders of images: `ROOT/train/<class>/*`, optional `ROOT/val/...` and `ROOT/test/...`."""

    kind: Literal["image_folder"] = "image_folder"
    path: Path = Field(description="ROOT folder holding `train/` (and optionally `val/`, `test/`).")


SplitName = Literal["train", "val", "test"]
FER2013_USAGE_SPLITS: dict[str, SplitName] = {
    "Training": "train",
    "PublicTest": "val",
    "PrivateTest": "test",
}
"""fer2013.csv `Usage` -> split (the Kaggle convention: PublicTest is the validation set)."""

SPLIT_NAMES_AS_VALUES: dict[str, SplitName] = {"train": "train", "val": "val", "test": "test"}
SOFT_LABEL_SPLIT_VALUES: dict[str, SplitName] = {**SPLIT_NAMES_AS_VALUES, **FER2013_USAGE_SPLITS}
TFDS_DEFAULT_SPLITS: dict[SplitName, str] = {"train": "train"}

FER2013_CSV_LABELS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
"""The class of each integer `emotion` in the original fer2013.csv (0 angry ... 6 neutral)."""


class Fer2013CsvSource(Section):
    """The original Kaggle `fer2013.csv`: `emotion,pixels,Usage` rows of 48x48 pixel strings."""

    kind: Literal["fer2013_csv"] = "fer2013_csv"
    path: Path = Field(description="The CSV file.")
    usage_splits: dict[str, SplitName] = Field(
        default_factory=FER2013_USAGE_SPLITS.copy,
        description="`Usage` value -> split. Rows whose `Usage` is not listed are skipped; map "
        "PublicTest to test as well to keep only a carved validation split.",
    )
    label_names: list[str] = Field(
        default_factory=lambda: list(FER2013_CSV_LABELS),
        description="Class name of each integer `emotion` (FER2013's order: 0 angry, 1 "
        "disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral); labels are re-indexed to "
        "`data.classes` (default: these names sorted).",
    )


class SoftLabelCsvSource(Section):
    """Vote-count / probability CSVs (FER+ `fer2013new.csv` style, emotion distributions)."""

    kind: Literal["soft_label_csv"] = "soft_label_csv"
    path: Path = Field(description="The CSV file.")
    image_column: str | None = Field(
        None,
        description="Column holding an image path (relative to the CSV's folder). Exactly one "
        "of `image_column` and `pixels_column` is set.",
    )
    pixels_column: str | None = Field(
        None, description="Column holding a space-separated pixel string (square, row-major)."
    )
    class_columns: list[str] | None = Field(
        None,
        description="Columns of votes or probabilities, one per class, in class order "
        "(default: `data.classes`). Each row is normalised to sum to 1; rows without votes "
        "are dropped and counted.",
    )
    split_column: str | None = Field(
        None, description="Column naming each row's split (default: every row is train)."
    )
    split_values: dict[str, SplitName] = Field(
        default_factory=SOFT_LABEL_SPLIT_VALUES.copy,
        description="Value of `split_column` -> split; rows with other values are skipped.",
    )

    @model_validator(mode="after")
    def _one_image_column(self) -> SoftLabelCsvSource:
        if (self.image_column is None) == (self.pixels_column is None):
            raise ValueError(
                "set exactly one of image_column (image paths) and pixels_column (pixel strings)"
            )
        return self


class NpzSource(Section):
    """A NumPy `.npz` with `x` (N,H,W[,C]) uint8 and `y` (N,) labels or (N,K) distributions."""

    kind: Literal["npz"] = "npz"
    path: Path = Field(
        description="The `.npz` file: `x`, `y`, optionally `x_val`/`y_val`, `x_test`/`y_test` "
        "and `class_names`."
    )


class TfdsSource(Section):
    """A TensorFlow Datasets dataset already prepared under `data_dir` (read offline)."""

    kind: Literal["tfds"] = "tfds"
    name: str = Field(description="Dataset name, optionally with config/version (`name:1.0.0`).")
    data_dir: Path = Field(description="TFDS data directory holding the prepared dataset.")
    splits: dict[SplitName, str] = Field(
        default_factory=TFDS_DEFAULT_SPLITS.copy,
        description="Our split -> TFDS split expression (e.g. `{train: 'train[:90%]', val: "
        "'train[90%:]', test: test}`).",
    )
    image_key: str = Field("image", description="Feature holding the image.")
    label_key: str = Field("label", description="Feature holding the integer class label.")


Source = Annotated[
    SyntheticSource
    | ImageFolderSource
    | Fer2013CsvSource
    | SoftLabelCsvSource
    | NpzSource
    | TfdsSource,
    Field(discriminator="kind"),
]
SOURCE_KINDS = frozenset(
    str(cls.model_fields["kind"].default)
    for cls in (
        SyntheticSource,
        ImageFolderSource,
        Fer2013CsvSource,
        SoftLabelCsvSource,
        NpzSource,
        TfdsSource,
    )
)
AugmentOp = dict[str, dict[str, Any]]


class DataSpec(Section):
    """What data is read and how it is turned into batches."""

    source: Source = Field(
        default_factory=SyntheticSource, description="Where the images come from."
    )
    image_size: int = Field(48, ge=16, le=512, description="Square input size in pixels.")
    channels: Literal[1, 3] = Field(1, description="1 (grayscale) or 3 (RGB) input channels.")
    val_split: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Fraction of train carved out (stratified, seeded) as validation when the "
        "source has no validation split.",
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="Global batch size: with `runtime.distribution: data_parallel` it is "
        "split evenly across all devices of all hosts (it must divide by the device count).",
    )
    classes: list[str] | None = Field(
        None,
        description="Class names in label order. Default: sorted folder names "
        "(`image_folder`), FER2013's names sorted (`fer2013_csv`), the file's `class_names` "
        "(`npz`), the dataset's label names (`tfds`).",
    )
    pixel_mean: float | None = Field(
        None,
        ge=0.0,
        le=255.0,
        description="Input normalisation mean (0-255) built into the model; `null`: the "
        "train split's mean. Set it (with `pixel_std`) to keep a pretrained model's "
        "normalisation.",
    )
    pixel_std: float | None = Field(
        None, gt=0.0, description="Input normalisation std (0-255); `null`: the train split's."
    )
    cache: bool = Field(
        True,
        description="Keep decoded image files in `$EMOTIONKIT_CACHE_DIR` (default "
        "`~/.cache/emotionkit`), keyed by the files' paths, sizes and times and the decode "
        "settings: later runs on the same folder skip decoding.",
    )
    on_error: Literal["skip", "raise"] = Field(
        "skip",
        description="An undecodable or empty image file: `skip` drops it, counts it and lists "
        "it in the run's `data_errors.json` with a one-line warning; `raise` stops with the "
        "path.",
    )
    balance: Literal["none", "class_weights", "oversample"] = Field(
        "none",
        description="Imbalance handling: `class_weights` weighs the loss per class (see "
        "`class_weight_beta`); `oversample` resamples train batches in tf.data towards "
        "`oversample_exponent`'s target distribution. The table is printed and saved in "
        "manifest.json.",
    )
    class_weight_beta: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="`null`: inverse-frequency weights; a beta such as 0.999: weights by the "
        "effective number of samples (1 - beta^n) / (1 - beta) (Cui et al. 2019). Weights "
        "are scaled so the average weight per train image is 1.",
    )
    oversample_exponent: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="`oversample` target: class c is drawn with probability proportional to "
        "count_c ** exponent (0: uniform over classes, 0.5: square-root, 1: natural).",
    )
    augment: list[AugmentOp] = Field(
        default_factory=list,
        description="Ordered train-only augmentations, each `{name: {params}}`, e.g. "
        "`[{flip: {}}, {rotate: {degrees: 10}}]`. See docs/data.md for the names.",
    )


class ModelSpec(Section):
    """The network: a KerasCV ResNet with a small-image stem (or a MobileNetV3) + logits."""

    name: Literal["resnet", "mobilenet_v3_small"] = Field(
        "resnet",
        description="Model family: `resnet` (KerasCV ResNet, the fields below) or "
        "`mobilenet_v3_small` (light CPU/edge model; uses `width` as alpha, `dropout`, and "
        "needs 3 channels or `expand_channels`).",
    )
    expand_channels: bool = Field(
        False,
        description="Repeat a 1-channel (grayscale) input to 3 channels inside the model, to "
        "feed a 3-channel backbone or 3-channel pretrained weights.",
    )
    depth: Literal[18, 34, 50, 101] = Field(
        18, description="ResNet depth: 18/34 basic blocks, 50/101 bottleneck blocks."
    )
    stem: Literal["cifar", "stride2", "deep_stride2", "imagenet"] = Field(
        "cifar",
        description="`cifar`: 3x3 stride-1 conv, no max-pool (keeps detail of 48x48 faces); "
        "`stride2`: 3x3 stride-2 conv, no max-pool (48 -> 24, ~4x fewer FLOPs); "
        "`deep_stride2`: a half-width 3x3 conv at full resolution, then `stride2` (the CPU "
        "choice: a few % more FLOPs than `stride2`); `imagenet`: 7x7 stride-2 conv + "
        "max-pool (48 -> 12).",
    )
    width: float = Field(1.0, gt=0.0, le=4.0, description="Multiplier on every filter count.")
    stage_blocks: list[int] | None = Field(
        None,
        description="Blocks per stage, overriding `depth` (e.g. [1, 1, 1, 1] for tiny test "
        "models).",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the head.")
    version: Literal["v1", "v2"] = Field(
        "v1",
        description="`v1`: post-activation blocks (He et al. 2015); `v2`: pre-activation "
        "blocks (He et al. 2016, BatchNorm+ReLU before each convolution) with a final "
        "BatchNorm+ReLU (`post_bn`), as KerasCV's ResNetV2.",
    )
    weights: Path | None = Field(
        None,
        description="Local `.keras` or `.weights.h5` file to initialise from. Layers are "
        "matched by name (`.keras`) or by Keras' per-class position (`.weights.h5`, which "
        "stores no layer names) and by shape; mismatched layers (e.g. a head with another "
        "class count) keep their fresh initialisation and are listed in manifest.json "
        "under `pretrained`.",
    )
    weights_strict: bool = Field(
        False,
        description="Make any layer that `model.weights` cannot fill (shape mismatch, "
        "missing or unused) an error instead of a reported skip.",
    )
    freeze: Literal["none", "backbone", "stem"] | list[str] = Field(
        "none",
        description="Layers kept frozen (not trained; their BatchNorm runs in inference "
        "mode): `backbone` (all but the `logits` head), `stem` (the `conv1_*` layers) or a "
        "list of layer-name glob patterns such as `[conv1_*, stack0_*]`. See "
        "`train.unfreeze_at_epoch`.",
    )


OptimizerName = Literal["adamw", "sgd"]
ScheduleName = Literal["cosine", "constant", "step", "one_cycle"]
LossName = Literal["cross_entropy", "focal", "kl_divergence", "mse", "l1", "bce"]

SOFT_LABEL_LOSSES: frozenset[str] = frozenset({"kl_divergence", "mse", "l1"})
"""Losses that compare the softmax with a target distribution (distribution learning)."""

DEFAULT_WARMUP_EPOCHS: dict[str, float] = {"cosine": 1.0, "constant": 0.0, "step": 0.0}
"""`train.schedule.warmup_epochs: null` per schedule (one_cycle uses `pct_start` instead).

Cosine keeps its historical 1-epoch warmup and constant its none, so recipes written before
the field became optional train exactly as they did."""


class OptimizerSpec(Section):
    """AdamW or SGD with decoupled weight decay (not applied to BatchNorm and bias)."""

    name: OptimizerName = Field(
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
        _reject_unused(
            self, self.name, "train.optimizer", {"momentum": {"sgd"}, "nesterov": {"sgd"}}
        )
        return self


class ScheduleSpec(Section):
    """Learning-rate schedule, stepped per batch."""

    name: ScheduleName = Field(
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
        _reject_unused(
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
        return DEFAULT_WARMUP_EPOCHS[self.name]


class LossSpec(Section):
    """Training loss on the model's logits (computed in float32 under mixed precision)."""

    name: LossName = Field(
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
        _reject_unused(
            self,
            self.name,
            "train.loss",
            {"gamma": {"focal"}, "alpha": {"focal"}, "label_smoothing": smoothed},
        )
        return self


def _is_weight(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _reject_unused(section: Section, name: str, where: str, used_by: dict[str, set[str]]) -> None:
    """Refuse an option set to a non-default value for a `name` that ignores it.

    A silently ignored `gamma` or `milestones` is a recipe that does not do what it says.
    Fields left out, or set to their default (`label_smoothing: 0.0`), are fine.
    """
    fields = type(section).model_fields
    for field, names in used_by.items():
        if name in names or field not in section.model_fields_set:
            continue
        if getattr(section, field) != fields[field].get_default(call_default_factory=True):
            raise ValueError(
                f"{where}.{field} applies to {where}.name {' or '.join(sorted(names))}, not "
                f"{name}: remove it or change {where}.name"
            )


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
        "the run's `tensorboard/` folder: `tensorboard --logdir runs/`.",
    )
    confusion_matrix_every: int = Field(
        5,
        ge=0,
        description="With `tensorboard`: every this many epochs, an image of the row-normalised "
        "validation confusion matrix (0: never).",
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

    @model_validator(mode="after")
    def _warmup_shorter_than_training(self) -> TrainSpec:
        warmup = self.schedule.resolved_warmup_epochs(self.epochs)
        if warmup >= self.epochs:
            raise ValueError(
                f"train.schedule.warmup_epochs ({warmup}) must be smaller than train.epochs "
                f"({self.epochs})"
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


ExportFormat = Literal["saved_model", "onnx", "onnx_int8"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("saved_model", "onnx")


class ExportSpec(Section):
    """What is exported after training, and the parity gate it must pass."""

    formats: list[ExportFormat] = Field(
        default_factory=lambda: list(EXPORT_FORMATS),
        description="Artifacts written to `export/` after training ([] to skip): "
        "`saved_model`, `onnx` (float32) and `onnx_int8` (static INT8 quantisation of the "
        "ONNX model). Each must pass the parity gate.",
    )
    parity_samples: int = Field(
        64, ge=1, description="Validation images used to compare exports with Keras."
    )
    parity_atol: float = Field(
        1e-4, gt=0.0, description="Largest allowed absolute logit difference vs Keras."
    )
    opset: int | None = Field(
        None,
        ge=13,
        description="ONNX opset; `null`: the newest that both tf2onnx and onnx support, falling "
        "back to lower opsets (reason logged in export.json) when conversion or loading fails.",
    )
    int8_max_drop: float = Field(
        1.0,
        ge=0.0,
        description="`onnx_int8` gate: largest allowed validation accuracy drop of the INT8 "
        "model against the float ONNX model, in percentage points.",
    )
    int8_calibration_per_class: int = Field(
        32,
        ge=1,
        description="`onnx_int8`: train images per class (seeded, class-balanced) that "
        "calibrate the static quantisation ranges.",
    )
    tta: Literal["none", "hflip"] = Field(
        "none",
        description="Test-time augmentation baked into every artifact: `hflip` makes the "
        "exported models return the mean logits of the image and its horizontal mirror "
        "(faces are near mirror-symmetric: +1.4 accuracy points on FER2013) at 2x the "
        "inference cost; `metrics.json` then reports the mirrored figures, with the "
        "single-view ones beside them.",
    )


class Recipe(Section):
    """A complete, validated recipe."""

    name: str = Field(description="Run name: runs go to `RUNS_DIR/<name>/<timestamp>`.")
    seed: int = Field(42, description="Fixes splits, shuffles, augmentation and weight init.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)

    @model_validator(mode="after")
    def _unfreeze_needs_freeze(self) -> Recipe:
        if self.train.unfreeze_at_epoch is not None and self.model.freeze in ("none", []):
            raise ValueError(
                "train.unfreeze_at_epoch is set but model.freeze is none: nothing to unfreeze "
                "(set model.freeze: backbone, or remove train.unfreeze_at_epoch)"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved recipe as YAML, loadable again with `load_recipe`."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply dotted `key=value` overrides and validate it.

    Args:
        path: the recipe file.
        overrides: e.g. `["train.epochs=3", "data.augment=[]"]`; values are parsed as YAML.

    Returns:
        The validated recipe.

    Raises:
        RecipeError: a missing/unparsable file, a bad override or a field that does not
            validate; the message names the dotted key.
    """
    path = Path(path)
    raw = _read_yaml(path)
    for override in overrides or []:
        _apply_override(raw, override)
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe dict, turning pydantic's report into one readable paragraph."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(_describe_validation_error(error, raw, source)) from None


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema of the recipe, for editor autocompletion and the docs."""
    return Recipe.model_json_schema()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RecipeError(f"Recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecipeError(f"Recipe {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"Recipe {path} must be a YAML mapping of sections, got {raw!r}.")
    return raw


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` inside the nested dict `raw`, creating sections as needed."""
    key, sep, text = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(
            f"Override {override!r} is not of the form dotted.key=value (e.g. train.epochs=3)."
        )
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as error:
        raise RecipeError(f"Override `{key}`: value {text!r} is not valid YAML: {error}") from None
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise RecipeError(f"Override `{key}`: `{where}` is {child!r}, not a section.")
        node = child
    node[leaf] = value


def _describe_validation_error(error: ValidationError, raw: dict[str, Any], source: str) -> str:
    problems = [_describe_problem(item, raw) for item in error.errors()]
    plural = "s" if len(problems) > 1 else ""
    return f"Recipe {source} has {len(problems)} problem{plural}: " + " ".join(problems)


def _describe_problem(item: Any, raw: dict[str, Any]) -> str:
    loc = _dotted_location(item["loc"])
    if item["type"] == "extra_forbidden":
        parent, _, leaf = loc.rpartition(".")
        valid = _valid_keys(parent, raw)
        close = difflib.get_close_matches(leaf, valid, n=1, cutoff=0.5)
        hint = f" Did you mean `{(parent + '.' if parent else '') + close[0]}`?" if close else ""
        return (
            f"unknown key `{loc}` (value {item['input']!r}).{hint} "
            f"Valid keys{' in `' + parent + '`' if parent else ''}: {', '.join(valid)}."
        )
    if not loc:  # a cross-section check on the whole recipe: its message names the keys
        return str(item["msg"]).removeprefix("Value error, ") + "."
    if item["type"] == "missing":
        return f"`{loc}` is required but missing."
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"`{loc}` = {item.get('input')!r}: {message}."


def _dotted_location(loc: tuple[Any, ...]) -> str:
    """Drop pydantic's discriminator tags (`data.source.synthetic.x` -> `data.source.x`)."""
    parts = [str(part) for part in loc]
    return ".".join(
        part
        for i, part in enumerate(parts)
        if not (i > 0 and parts[i - 1] == "source" and part in SOURCE_KINDS)
    )


def _valid_keys(dotted_parent: str, raw: dict[str, Any]) -> list[str]:
    """Field names of the section at `dotted_parent`, following the data to pick unions."""
    model: type[BaseModel] = Recipe
    node: Any = raw
    for part in [p for p in dotted_parent.split(".") if p]:
        node = node.get(part, {}) if isinstance(node, dict) else {}
        annotation = model.model_fields[part].annotation
        model = _section_class(annotation, node)
    return list(model.model_fields)


def _section_class(annotation: Any, node: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [
        m
        for m in getattr(annotation, "__args__", ())
        if isinstance(m, type) and issubclass(m, BaseModel)
    ]
    for member in members:
        kind = member.model_fields.get("kind")
        if kind is not None and isinstance(node, dict) and node.get("kind") == kind.default:
            return member
    return members[0]
