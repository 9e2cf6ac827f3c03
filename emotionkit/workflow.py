"""The train workflow: recipe -> runtime -> data -> model -> fit -> evaluate -> export.

Each stage is one call with the part of the recipe it needs; this module only wires them
and records what happened in the run directory. It is what `emotionkit train` runs.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from emotionkit.errors import EmotionkitError
from emotionkit.recipe import Recipe, TrainSpec
from emotionkit.runs import (
    create_run_dir,
    git_commit,
    package_versions,
    update_manifest,
    write_json,
)
from emotionkit.runtime import RuntimeChoice, configure_frameworks, resolve_runtime

if TYPE_CHECKING:
    from emotionkit.distribution import Distribution


class TrainingFailedError(EmotionkitError):
    """Training stopped on a non-finite loss; the manifest says where."""


@dataclass
class TrainResult:
    """Where the run went and its headline numbers."""

    run_dir: Path
    metrics: dict[str, Any]
    export: dict[str, Any]


def train(
    recipe: Recipe,
    runs_dir: str | Path = "runs",
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train, evaluate and export one recipe into a fresh run directory.

    Args:
        recipe: a validated recipe (see `emotionkit.load_recipe`).
        runs_dir: parent of `<recipe.name>/<timestamp>/`.
        console: where progress goes (defaults to stdout).
        callbacks: extra Keras callbacks for `fit`.

    Returns:
        The run directory, the metrics written to `metrics.json` and the export report.
    """
    console = console or Console()
    started = time.time()
    choice, distribution, plan = _start_runtime(recipe, console)
    run_dir = create_run_dir(_writable_runs_dir(runs_dir, distribution), recipe.name)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    update_manifest(
        run_dir,
        status="running",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        versions=package_versions(),
        git_commit=git_commit(),
        runtime=choice.as_dict(),
        devices=_device_names(),
        distribution=plan,
    )
    metrics, export = _run_stages(
        recipe, choice, (distribution, plan), run_dir, console, callbacks, resuming=False
    )
    update_manifest(run_dir, status="completed", wall_seconds=round(time.time() - started, 1))
    return TrainResult(run_dir, metrics, export)


def resume(
    run_dir: str | Path, console: Console | None = None, callbacks: list[Any] | None = None
) -> TrainResult:
    """Continue an interrupted run in its own directory, from its newest backup.

    The recipe, the split (`split.json`) and the per-epoch data streams are the run's own,
    and the backup holds the weights, optimizer and EMA state, the schedule step and the
    checkpoint / early-stopping counters: the resumed run ends as the uninterrupted one would.
    With no backup yet (stopped during epoch 1) training restarts from epoch 0.

    Raises:
        EmotionkitError: `run_dir` is not a run directory, or the run already completed.
    """
    from emotionkit.recipe import load_recipe

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file() or not (run_dir / "recipe.yaml").is_file():
        raise EmotionkitError(f"--resume {run_dir}: not a run directory (no manifest.json).")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("status") == "completed":
        raise EmotionkitError(f"--resume {run_dir}: this run already completed; nothing to do.")
    console = console or Console()
    started = time.time()
    recipe = load_recipe(run_dir / "recipe.yaml")
    choice, distribution, plan = _start_runtime(recipe, console)
    update_manifest(
        run_dir,
        status="running",
        failure=None,
        resumed=int(manifest.get("resumed", 0)) + 1,
        distribution=plan,
    )
    metrics, export = _run_stages(
        recipe, choice, (distribution, plan), run_dir, console, callbacks, resuming=True
    )
    wall = float(manifest.get("wall_seconds") or 0.0) + time.time() - started
    update_manifest(run_dir, status="completed", wall_seconds=round(wall, 1))
    return TrainResult(run_dir, metrics, export)


def _start_runtime(
    recipe: Recipe, console: Console
) -> tuple[RuntimeChoice, Distribution, dict[str, Any]]:
    """Backend, devices and batch split, checked before anything is written."""
    from emotionkit.distribution import batch_plan, describe_plan

    choice = resolve_runtime(recipe.runtime)
    console.print(
        f"backend: {choice.backend} ({choice.backend_reason}); precision: "
        f"{choice.precision} ({choice.precision_reason})",
        highlight=False,
        soft_wrap=True,
    )
    distribution = configure_frameworks(choice, recipe.seed)
    plan = batch_plan(distribution, recipe.data.batch_size, recipe.train.optimizer)
    console.print(describe_plan(plan), highlight=False, soft_wrap=True)
    return choice, distribution, plan


def _writable_runs_dir(runs_dir: str | Path, distribution: Distribution) -> Path:
    """Process 0 writes the run; other processes of a multi-host job write to a temp folder.

    Every process runs the same steps (saving included: tf.distribute's multi-worker
    saving needs all workers), but only one copy of checkpoints and exports is kept, the
    pattern TensorFlow's multi-worker guide recommends.
    """
    if distribution.is_chief:
        return Path(runs_dir)
    return Path(tempfile.mkdtemp(prefix=f"emotionkit-process{distribution.process_index}-"))


def _run_stages(
    recipe: Recipe,
    choice: RuntimeChoice,
    distributed: tuple[Distribution, dict[str, Any]],
    run_dir: Path,
    console: Console,
    callbacks: list[Any] | None,
    *,
    resuming: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from emotionkit.data import load_data
    from emotionkit.data.pipeline import balance_table, build_dataset, pixel_mean_std
    from emotionkit.data.sources import split_record
    from emotionkit.distribution import even_validation_batches, scaled_train_spec
    from emotionkit.export import export_run
    from emotionkit.training import fit_model

    spec = recipe.data
    split_file = run_dir / "split.json"
    data = load_data(spec, recipe.seed, split_file=split_file if resuming else None)
    train_split = data.splits["train"]
    mean, std = pixel_mean_std(train_split.images)
    mean = spec.pixel_mean if spec.pixel_mean is not None else mean
    std = spec.pixel_std if spec.pixel_std is not None else std
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
            f"[yellow]warning:[/] skipped {len(data.errors)} unreadable image(s), e.g. "
            f"{data.errors[0]['path']} ({data.errors[0]['reason']}); list in data_errors.json"
        )
    console.print(_describe_splits(data), highlight=False)
    if balance is not None:
        console.print(_describe_balance(balance, data.class_names), highlight=False)

    steps = max(1, len(train_split) // spec.batch_size)
    distribution, plan = distributed
    train_spec = scaled_train_spec(recipe.train, plan)
    with distribution.scope():  # model variables and optimizer state live on every device
        model, resume_state = _model_to_train(
            recipe, train_spec, choice, data, mean, std, run_dir, steps, resuming=resuming
        )
    if resume_state is not None:
        console.print(f"resuming after epoch {resume_state['epoch']}", highlight=False)

    def train_stream(epochs: range) -> Any:
        return build_dataset(
            train_split, data.num_classes, spec.batch_size, training=True, seed=recipe.seed,
            augment=spec.augment, class_sampling=balance["sampling"] if balance else None,
            epochs=epochs,
        )  # fmt: skip

    datasets = {
        name: build_dataset(split, data.num_classes, spec.batch_size, training=False, seed=0)
        for name, split in data.splits.items()
        if name != "train"
    }
    val_data = even_validation_batches(
        datasets["val"], len(data.splits["val"]), spec.batch_size, distribution
    )
    with distribution.scope():
        result = fit_model(
            model,
            train_stream,
            val_data,
            train_spec,
            run_dir,
            steps_per_epoch=steps,
            batch_size=spec.batch_size,
            class_weight=dict(enumerate(balance["weights"]))
            if balance and balance["weights"]
            else None,
            console=console,
            jit_compile=choice.jit_compile,
            extra_callbacks=callbacks,
            resume_state=resume_state,
            class_names=data.class_names,
        )
    if result.failure is not None:
        update_manifest(run_dir, status="failed", failure=result.failure)
        raise TrainingFailedError(
            f"Training stopped: non-finite loss at epoch {result.failure['epoch']}, step "
            f"{result.failure['step']}; the last good checkpoint is in {result.checkpoint_dir}."
        )
    metrics = _evaluate_best(run_dir, datasets, data.class_names, result.best_epoch, recipe)
    console.print(
        _describe_best(result.best_epoch, metrics["val"]), highlight=False, soft_wrap=True
    )
    export = export_run(run_dir, recipe.export)
    if export:
        update_manifest(
            run_dir, export={"passed": export["passed"], "formats": sorted(export["checks"])}
        )
    return metrics, export


def _model_to_train(
    recipe: Recipe,
    train_spec: TrainSpec,
    choice: RuntimeChoice,
    data: Any,
    mean: float,
    std: float,
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
    model = _build_model_stage(recipe, data.num_classes, mean, std, run_dir)
    compile_model(
        model, train_spec, steps_per_epoch, choice.jit_compile,
        class_counts=data.splits["train"].class_counts(data.num_classes),
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
    freeze_layers(model, recipe.model.freeze)
    return model_summary(model)


def _build_model_stage(
    recipe: Recipe, num_classes: int, pixel_mean: float, pixel_std: float, run_dir: Path
) -> Any:
    """Build, initialise from `model.weights`, freeze; record it in model.json and manifest."""
    from emotionkit.models import build_model, freeze_layers, load_pretrained_weights
    from emotionkit.models.summary import model_summary

    spec = recipe.model
    model = build_model(
        spec,
        image_size=recipe.data.image_size,
        channels=recipe.data.channels,
        num_classes=num_classes,
        pixel_mean=pixel_mean,
        pixel_std=pixel_std,
    )
    pretrained = (
        load_pretrained_weights(model, spec.weights, strict=spec.weights_strict)
        if spec.weights is not None
        else None
    )
    frozen = freeze_layers(model, spec.freeze)
    summary = model_summary(model)  # after freezing: trainable counts are phase 1's
    write_json(run_dir / "model.json", summary)
    update_manifest(run_dir, parameters=summary["parameters"], pretrained=pretrained, frozen=frozen)
    return model


def _evaluate_best(
    run_dir: Path, datasets: dict[str, Any], class_names: list[str], best_epoch: int, recipe: Recipe
) -> dict[str, Any]:
    """Score the best checkpoint on val (and test), and save the export parity reference.

    With `export.tta: hflip` the scores are those of the exported models (mean logits of each
    image and its mirror), and each split also gets its `single_view` accuracy and macro-F1.
    """
    import keras
    import numpy as np

    from emotionkit.evaluate.metrics import dataset_metrics
    from emotionkit.export import write_parity_reference

    best = keras.saving.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    metrics: dict[str, Any] = {"best_epoch": best_epoch, "monitor": recipe.train.monitor}
    for name in ("val", "test"):
        if name in datasets:
            metrics[name] = dataset_metrics(best, datasets[name], class_names, recipe.export.tta)
    images = np.concatenate([x for x, _ in datasets["val"].as_numpy_iterator()])
    images = images[: recipe.export.parity_samples]
    write_parity_reference(
        run_dir,
        images,
        np.asarray(best.predict_on_batch(images)),
        mirror_logits=np.asarray(best.predict_on_batch(np.ascontiguousarray(images[:, :, ::-1]))),
    )
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _describe_best(best_epoch: int, val: dict[str, Any]) -> str:
    """`best epoch 12: val accuracy 0.6580 (mirror TTA; single view 0.6442), ...`."""
    tta = f" (mirror TTA; single view {val['single_view']['accuracy']:.4f})" if "tta" in val else ""
    return (
        f"best epoch {best_epoch}: val accuracy {val['accuracy']:.4f}{tta}, "
        f"val macro-F1 {val['macro_f1']:.4f}"
    )


def _describe_splits(data: Any) -> str:
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    return f"data: {data.num_classes} classes, {sizes} images (fingerprint {data.fingerprint})"


def _describe_balance(balance: dict[str, Any], class_names: list[str]) -> str:
    column = "weights" if balance["weights"] else "sampling"
    table = ", ".join(
        f"{name} {value:.3f}" for name, value in zip(class_names, balance[column], strict=True)
    )
    return f"balance ({balance['mode']}): per-class {column} {table}"


def _device_names() -> list[str]:
    import keras

    try:
        return [str(device) for device in keras.distribution.list_devices()]
    except (RuntimeError, ValueError, NotImplementedError):
        return ["cpu"]
