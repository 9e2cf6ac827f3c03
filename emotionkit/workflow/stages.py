"""What a run records around each stage: data, the model to train, the best checkpoint.

`run.py` calls these in order; each takes the recipe, writes its part of the run directory
(`manifest.json`, `split.json`, `model.json`, `metrics.json`, ...) and prints a line or two.
Keras, TensorFlow and the stages themselves are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from emotionkit.recipe import Recipe
from emotionkit.runs import update_manifest, write_json
from emotionkit.runtime import RuntimeChoice, configure_frameworks, resolve_runtime
from emotionkit.training.spec import TrainSpec

if TYPE_CHECKING:
    from emotionkit.data import LoadedData


def check_inputs(recipe: Recipe) -> None:
    """What can be checked before a run directory exists: the data source, the weights, the
    loggers' libraries and the distillation teacher.

    Raises:
        DataError, ModelError, EmotionkitError: naming the recipe field and the missing
            path, class or extra.
    """
    from emotionkit.data.sources import check_source
    from emotionkit.models.pretrained import resolve_weights_path
    from emotionkit.training.loggers import check_loggers_installed

    check_source(recipe.data)
    check_loggers_installed(recipe.train)
    if recipe.model.weights is not None:
        resolve_weights_path(recipe.model.weights)
    if recipe.train.distill is not None:
        from emotionkit.training.distill import check_distill

        check_distill(recipe.train.distill, recipe.data)


@dataclass
class PreparedData:
    """The loaded splits and what the model and the sampler take from the train split."""

    loaded: LoadedData
    pixel_mean: float
    pixel_std: float
    balance: dict[str, Any] | None


def prepare_data(
    recipe: Recipe, run_dir: Path, console: Console, *, resuming: bool
) -> PreparedData:
    """Load the splits (a resumed run: its own `split.json`) and record them in the run.

    Writes the data summary, pixel statistics and class balance to the manifest, plus
    `labels_mapping.json`, `split.json` and (when images were skipped) `data_errors.json`.
    """
    from emotionkit.data import load_data
    from emotionkit.data.pipeline import balance_table
    from emotionkit.data.splits import split_record

    spec = recipe.data
    split_file = run_dir / "split.json"
    data = load_data(spec, recipe.seed, split_file=split_file if resuming else None)
    train_split = data.splits["train"]
    mean, std = input_normalisation(recipe, train_split.images)
    balance = balance_table(spec, train_split.class_counts(data.num_classes))
    update_manifest(
        run_dir,
        data={**data.summary(), "pixel_mean": mean, "pixel_std": std, "balance": balance},
    )
    write_json(run_dir / "labels_mapping.json", dict(enumerate(data.class_names)))
    write_json(split_file, split_record(data.splits))
    if data.errors:
        write_json(run_dir / "data_errors.json", data.errors)
        console.print(
            f"[yellow]warning:[/] skipped {len(data.errors)} image(s), e.g. "
            f"{data.errors[0]['path']} ({data.errors[0]['reason']}); list in data_errors.json"
        )
    console.print(_describe_splits(data), highlight=False)
    if balance is not None:
        console.print(_describe_balance(balance, data.class_names), highlight=False)
    return PreparedData(data, mean, std, balance)


def input_normalisation(recipe: Recipe, train_images: Any) -> tuple[float, float]:
    """`data.pixel_mean`/`pixel_std` when set, else a pretrained ONNX model's, else train's.

    A model fine-tuned from a bundled or ONNX model keeps the normalisation it was trained
    with, as timm and keras-hub presets carry theirs.
    """
    from emotionkit.data.pipeline import pixel_mean_std
    from emotionkit.models.onnx_weights import normalisation_of
    from emotionkit.models.pretrained import resolve_weights_path

    spec, weights = recipe.data, recipe.model.weights
    mean, std = pixel_mean_std(train_images)
    if weights is not None and resolve_weights_path(weights).suffix == ".onnx":
        mean, std = normalisation_of(resolve_weights_path(weights)) or (mean, std)
    return (
        spec.pixel_mean if spec.pixel_mean is not None else mean,
        spec.pixel_std if spec.pixel_std is not None else std,
    )


def split_datasets(
    recipe: Recipe, prepared: PreparedData, augment_on: str
) -> tuple[Callable[[range], Any], dict[str, Any]]:
    """The train stream (a function of the epochs it covers) and a dataset per other split.

    With `augment_on` `device` the train stream carries plain pixels: the train step augments.
    With `train.distill` its targets mix in the teacher's (`training.distill`).
    """
    from emotionkit.data.pipeline import build_dataset
    from emotionkit.training.distill import build_teacher_targets

    spec, data, balance = recipe.data, prepared.loaded, prepared.balance
    host_augment = spec.augment if augment_on == "host" else None
    distill = recipe.train.distill
    teacher = (
        build_teacher_targets(distill, data, augmented=bool(spec.augment)) if distill else None
    )

    def train_stream(epochs: range) -> Any:
        return build_dataset(
            data.splits["train"], data.num_classes, spec.batch_size, training=True,
            seed=recipe.seed, augment=host_augment,
            class_sampling=balance["sampling"] if balance else None, epochs=epochs,
            batch_targets=teacher,
        )  # fmt: skip

    datasets = {
        name: build_dataset(split, data.num_classes, spec.batch_size, training=False, seed=0)
        for name, split in data.splits.items()
        if name != "train"
    }
    return train_stream, datasets


def model_to_train(
    recipe: Recipe,
    train_spec: TrainSpec,
    choice: RuntimeChoice,
    prepared: PreparedData,
    run_dir: Path,
    steps_per_epoch: int,
    *,
    resuming: bool,
) -> tuple[Any, dict[str, Any] | None]:
    """A fresh compiled model, or (resuming) the newest backup's model and its state."""
    import keras

    from emotionkit.training import compile_model
    from emotionkit.training.callbacks import latest_backups, restore_seed_states

    backups = latest_backups(run_dir / "checkpoints" / "backups") if resuming else []
    if backups:
        state = json.loads((backups[0] / "state.json").read_text())
        _truncate_history(run_dir / "history.csv", int(state["epoch"]))
        model = keras.saving.load_model(backups[0] / "model.keras")
        restore_seed_states(model, state["seed_states"])
        return model, state
    _truncate_history(run_dir / "history.csv", 0)
    data = prepared.loaded
    model = _build_model_stage(
        recipe, data.class_names, prepared.pixel_mean, prepared.pixel_std, run_dir
    )
    compile_model(
        model, train_spec, steps_per_epoch, choice.jit_compile,
        class_counts=data.splits["train"].class_counts(data.num_classes),
        ordinal=recipe.data.ordinal,
    )  # fmt: skip
    return model, None


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows: rows after the backup are redone."""
    if not path.is_file():
        return
    if epochs == 0:
        path.unlink()
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: epochs + 1]))


def describe_model(recipe: Recipe) -> dict[str, Any]:
    """`model_summary` of the recipe's model, built (and frozen) as `train` would build it.

    No image is read: the class count comes from the source's folder names (or the 7
    synthetic classes; also the 7 FER classes when the data folder is not on this machine,
    since the summary of a FER recipe should not need the data), and `model.weights` is not
    loaded (it changes no number here).
    """
    from emotionkit.data.sources import list_class_names
    from emotionkit.data.synthetic import FER_CLASSES
    from emotionkit.errors import DataError
    from emotionkit.models import build_model, freeze_layers, model_summary

    try:
        num_classes = len(list_class_names(recipe.data))
    except DataError:
        num_classes = len(FER_CLASSES)
    configure_frameworks(resolve_runtime(recipe.runtime), recipe.seed)
    model = build_model(
        recipe.model,
        image_size=recipe.data.image_size,
        channels=recipe.data.channels,
        num_classes=num_classes,
    )
    freeze_layers(model, recipe.model.freeze, batchnorm=recipe.model.freeze_batchnorm)
    return model_summary(model)


def _build_model_stage(
    recipe: Recipe, class_names: list[str], pixel_mean: float, pixel_std: float, run_dir: Path
) -> Any:
    """Build, initialise from `model.weights`, freeze; record it in model.json and manifest."""
    from emotionkit.models import build_model, freeze_layers, load_pretrained_weights
    from emotionkit.models.summary import model_summary

    spec = recipe.model
    model = build_model(
        spec,
        image_size=recipe.data.image_size,
        channels=recipe.data.channels,
        num_classes=len(class_names),
        pixel_mean=pixel_mean,
        pixel_std=pixel_std,
    )
    pretrained = (
        load_pretrained_weights(
            model, spec.weights, strict=spec.weights_strict, class_names=class_names
        )
        if spec.weights is not None
        else None
    )
    frozen = freeze_layers(model, spec.freeze, batchnorm=spec.freeze_batchnorm)
    summary = model_summary(model)  # after freezing: trainable counts are phase 1's
    write_json(run_dir / "model.json", summary)
    update_manifest(run_dir, parameters=summary["parameters"], pretrained=pretrained, frozen=frozen)
    return model


def evaluate_best(
    run_dir: Path, datasets: dict[str, Any], data: LoadedData, best_epoch: int, recipe: Recipe
) -> dict[str, Any]:
    """Score the best checkpoint on val (and test), and save the export parity reference.

    With `export.tta` `hflip` or `hflip_crops` the scores are those of the exported models
    (mean logits over each image's views: 2 or 10 forward passes), and each split also gets
    its `single_view` accuracy and macro-F1. Accuracy is against the majority class of soft
    targets; distribution targets add their distances to the votes, multi-label targets their
    thresholded scores (`target_metrics`).
    """
    import keras
    import numpy as np

    from emotionkit.evaluate.metrics import batch_logits, split_logits, split_metrics
    from emotionkit.evaluate.target_metrics import target_metrics
    from emotionkit.export import write_parity_reference
    from emotionkit.tta import tta_logits

    best = keras.saving.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    metrics: dict[str, Any] = {"best_epoch": best_epoch, "monitor": recipe.train.monitor}
    tta, names, thresholds = recipe.export.tta, data.class_names, None
    for name in ("val", "test"):
        if name in datasets:
            scored = split_logits(best, datasets[name], tta)  # one pass feeds every score
            metrics[name] = {
                **split_metrics(scored, names, tta),
                **target_metrics(
                    data.targets,
                    scored.averaged,
                    scored.targets,
                    names,
                    thresholds,
                    ordinal=recipe.data.ordinal,
                ),
                "targets": data.targets,
            }
            if "multi_label" in metrics[name]:  # the test split uses val's thresholds
                per_class = metrics[name]["multi_label"]["per_class"]
                thresholds = [per_class[class_name]["threshold"] for class_name in names]
    images = np.concatenate([x for x, _ in datasets["val"].as_numpy_iterator()])
    images = images[: recipe.export.parity_samples]
    logits_of = batch_logits(best)
    write_parity_reference(
        run_dir,
        images,
        logits_of(images),
        mirror_logits=logits_of(images[:, :, ::-1]),
        crops_logits=tta_logits(logits_of, images, "hflip_crops"),
    )
    write_json(run_dir / "metrics.json", metrics)
    return metrics


TTA_NAMES = {"hflip": "mirror TTA", "hflip_crops": "10-view TTA"}  # for the console line


def describe_best(best_epoch: int, val: dict[str, Any]) -> str:
    """`best epoch 12: val accuracy 0.6580 (mirror TTA; single view 0.6442), ...`."""
    tta = (
        f" ({TTA_NAMES[val['tta']]}; single view {val['single_view']['accuracy']:.4f})"
        if "tta" in val
        else ""
    )
    return (
        f"best epoch {best_epoch}: val accuracy {val['accuracy']:.4f}{tta}, "
        f"val macro-F1 {val['macro_f1']:.4f}"
    )


def _describe_splits(data: LoadedData) -> str:
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    return f"data: {data.num_classes} classes, {sizes} images (fingerprint {data.fingerprint})"


def _describe_balance(balance: dict[str, Any], class_names: list[str]) -> str:
    column = "weights" if balance["weights"] else "sampling"
    table = ", ".join(
        f"{name} {value:.3f}" for name, value in zip(class_names, balance[column], strict=True)
    )
    return f"balance ({balance['mode']}): per-class {column} {table}"
