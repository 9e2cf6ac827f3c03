"""The recipe's `data` section: what data is read and how it becomes batches.

`data.source` and `data.augment` take their choices from the data registries
(`emotionkit.data.registry`); the built-in sources and ops register when imported below.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

# The built-in sources and augmentation ops: importing a module registers what it defines.
from emotionkit.data import augment_ops, csv_sources, image_folder, npz_source, tfds_source
from emotionkit.data.faces import FacesSpec, faces_setting
from emotionkit.data.registry import AUGMENTATIONS, SOURCES, AugmentOp, SourceSpec
from emotionkit.data.synthetic_source import SyntheticSource
from emotionkit.sections import OneKeyEntry, PickedBy, Section

BUILT_IN_MODULES = (augment_ops, csv_sources, image_folder, npz_source, tfds_source)
"""Kept as a name so that linters see the registering imports as used."""


class DataSpec(Section):
    """What data is read and how it is turned into batches."""

    source: Annotated[SourceSpec, PickedBy(SOURCES, "kind")] = Field(
        default_factory=SyntheticSource,
        description="Where the images come from: a registered source, picked by `kind`.",
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
    class_map: dict[str, list[str]] | None = Field(
        None,
        description="Train on classes made of the source's, in the map's order: "
        "`{positive: [happy, surprise], negative: [angry, disgust, fear, sad]}` merges, "
        "`{happy: [happy], sad: [sad]}` keeps a subset, `{joy: [happy]}` renames. Images of "
        "classes the map leaves out are dropped and counted in manifest.json.",
    )
    targets: Literal["auto", "single", "distribution", "multi_label"] = Field(
        "auto",
        description="What the model learns from each image: `single`, one class (vote "
        "distributions become their majority class, the first on a tie); `distribution`, "
        "the vote or probability distribution (one class becomes a one-hot row); "
        "`multi_label`, every class with at least `multi_label_min_share` of the votes (a "
        "multi-hot row, for `train.loss.name: bce`); `auto`, what the source gives.",
    )
    multi_label_min_share: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="`targets: multi_label`: the share of the votes a class needs to be "
        "one of the image's labels (0.3: at least 3 of FER+'s 10 annotators).",
    )
    faces: FacesSpec | None = Field(
        None,
        description="Train on wild photos: cut each image file down to its largest face with "
        "`predict`'s detector and crop policy, so training and prediction crops match "
        "(`detect`: MTCNN with the default policy). Face crops stay whole; images without "
        "a face are dropped and listed in `data_errors.json`. See docs/data.md.",
    )
    ordinal: bool = Field(
        False,
        description="The classes, in label order, are ordered (intensity levels, age bands): "
        "vote-distribution runs also report the earth mover's distance over that order "
        "(`emd`). Emotion categories are not ordered, so it is off by default.",
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
    augment: list[Annotated[AugmentOp, OneKeyEntry(AUGMENTATIONS)]] = Field(
        default_factory=list,
        description="Ordered train-only augmentations, each `{name: {params}}`, e.g. "
        "`[{flip: {}}, {rotate: {degrees: 10}}]`. See docs/data.md for the names.",
    )
    augment_on: Literal["auto", "host", "device"] = Field(
        "auto",
        description="Where `augment` runs: `host` in the `tf.data` pipeline (parallel with "
        "the step), `device` inside the compiled train step (XLA; the batches cross to the "
        "accelerator as plain pixels). Both draw the same distributions. `auto`: `device` "
        "when a GPU is visible, `host` on CPU-only machines (measured faster there, see "
        "docs/benchmarks.md).",
    )

    @field_validator("faces", mode="before")
    @classmethod
    def _faces_shorthand(cls, value: object) -> object:
        return faces_setting(value)

    @model_validator(mode="after")
    def _class_map_partitions(self) -> DataSpec:
        seen: dict[str, str] = {}
        for new_class, members in (self.class_map or {}).items():
            if not members:
                raise ValueError(f"data.class_map.{new_class} lists no source class")
            for name in members:
                if name in seen:
                    raise ValueError(
                        f"data.class_map: {name!r} is in both {seen[name]!r} and {new_class!r}"
                    )
                seen[name] = new_class
        return self

    @model_validator(mode="after")
    def _device_ops_compile(self) -> DataSpec:
        if self.augment_on != "device":
            return self
        for index, op in enumerate(self.augment):
            if not op.compiles:
                raise ValueError(
                    f"data.augment[{index}] ({op.entry_name}) runs only on the host (a "
                    "stateful Keras layer that does not compile): set data.augment_on: host "
                    "or auto, or remove it"
                )
        return self
