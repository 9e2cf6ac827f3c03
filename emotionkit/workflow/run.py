"""`train` and `resume`: start the runtime, open the run directory, run the stages in order."""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from emotionkit.errors import EmotionkitError
from emotionkit.recipe import Recipe
from emotionkit.runs import (
    announce_run_dir,
    create_run_dir,
    git_commit,
    package_versions,
    update_manifest,
)
from emotionkit.runtime import RuntimeChoice, configure_frameworks, resolve_runtime
from emotionkit.workflow.stages import (
    check_inputs,
    describe_best,
    evaluate_best,
    model_to_train,
    prepare_data,
    split_datasets,
)

if TYPE_CHECKING:
    from emotionkit.distribution import Distribution
    from emotionkit.training.loggers import RunLoggers


class TrainingFailedError(EmotionkitError):
    """Training stopped on a non-finite loss; the manifest says where."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM during a run, raised like Ctrl-C's KeyboardInterrupt."""


@contextlib.contextmanager
def _true_status(run_dir: Path, console: Console, wall: Callable[[], float]) -> Iterator[None]:
    """Whatever stops the stages, the manifest says so: `interrupted` (Ctrl-C, SIGTERM)
    with the command that resumes, or `failed` with the one-line cause; and how long the run
    has taken so far (`wall()`), which a resume adds its own time to."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise RunInterrupted("SIGTERM")

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        update_manifest(run_dir, status="interrupted", wall_seconds=wall())
        console.print(
            f"interrupted: resume with `emotionkit train --resume {run_dir}`",
            highlight=False,
            soft_wrap=True,  # one line: the command is copied whole
        )
        raise
    except TrainingFailedError:
        update_manifest(run_dir, wall_seconds=wall())  # already `failed`, with epoch and step
        raise
    except Exception as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        update_manifest(run_dir, status="failed", error=cause, wall_seconds=wall())
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


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
    # A missing folder, weights file or teacher stops before any run directory, and before
    # the frameworks load: the error comes in a second, not after TensorFlow's import.
    check_inputs(recipe)
    choice, distribution, plan = _start_runtime(recipe, console)
    run_dir = create_run_dir(_writable_runs_dir(runs_dir, distribution), recipe.name)
    announce_run_dir(run_dir)
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
    metrics, export = _run_logged(
        recipe, choice, (distribution, plan), run_dir, console, callbacks,
        resuming=False, wall=lambda: round(time.time() - started, 1),
    )  # fmt: skip
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
    run_dir = _writable_run_copy(run_dir, distribution)
    announce_run_dir(run_dir)
    update_manifest(
        run_dir,
        status="running",
        failure=None,
        error=None,
        resumed=int(manifest.get("resumed", 0)) + 1,
        distribution=plan,
    )
    before = float(manifest.get("wall_seconds") or 0.0)  # the earlier sessions' time
    metrics, export = _run_logged(
        recipe, choice, (distribution, plan), run_dir, console, callbacks,
        resuming=True, wall=lambda: round(before + time.time() - started, 1),
    )  # fmt: skip
    return TrainResult(run_dir, metrics, export)


def _run_logged(
    recipe: Recipe,
    choice: RuntimeChoice,
    distributed: tuple[Distribution, dict[str, Any]],
    run_dir: Path,
    console: Console,
    callbacks: list[Any] | None,
    *,
    resuming: bool,
    wall: Callable[[], float],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stages, with the manifest's true status and the recipe's loggers around them;
    `wall()` is the run's time so far (every session of it), recorded however it ends."""
    with (
        _true_status(run_dir, console, wall),
        _loggers(recipe, run_dir, distributed[0]) as loggers,
    ):
        metrics, export = _run_stages(
            recipe, choice, distributed, run_dir, console, callbacks, resuming=resuming,
            loggers=loggers,
        )  # fmt: skip
        _finish_loggers(loggers, run_dir, metrics)
    update_manifest(run_dir, status="completed", wall_seconds=wall())
    return metrics, export


def _finish_loggers(loggers: RunLoggers, run_dir: Path, metrics: dict[str, Any]) -> None:
    """Hand the loggers the scores and files; `report.html` first when one keeps files."""
    if loggers.keep_files:
        from emotionkit.evaluate.evaluation import report_run

        report_run(run_dir)
    loggers.finish(metrics)


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


def _loggers(
    recipe: Recipe, run_dir: Path, distribution: Distribution
) -> contextlib.AbstractContextManager[RunLoggers]:
    """The recipe's `train.loggers` for this run; process 0 alone logs a multi-host run."""
    from emotionkit.evaluate.compare import flatten_recipe
    from emotionkit.training.loggers import run_loggers

    spec = recipe.train
    if not distribution.is_chief:
        spec = spec.model_copy(update={"loggers": [], "tensorboard": False})
    params = flatten_recipe(recipe.model_dump(mode="json"))
    return run_loggers(spec, run_dir, params, recipe.name)


def _writable_runs_dir(runs_dir: str | Path, distribution: Distribution) -> Path:
    """Process 0 writes the run; other processes of a multi-host job write to a temp folder.

    Every process trains and saves (tf.distribute's multi-worker saving needs all workers),
    but only one copy of the checkpoints is kept, the pattern TensorFlow's multi-worker guide
    recommends; process 0 alone then evaluates and exports.
    """
    if distribution.is_chief:
        return Path(runs_dir)
    scratch = tempfile.mkdtemp(prefix=f"emotionkit-process{distribution.process_index}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return Path(scratch)


def _writable_run_copy(run_dir: Path, distribution: Distribution) -> Path:
    """Resuming a multi-process run: process 0 continues `run_dir`, the others a scratch copy."""
    if distribution.is_chief:
        return run_dir
    copy = _writable_runs_dir(run_dir.parent, distribution) / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def _run_stages(
    recipe: Recipe,
    choice: RuntimeChoice,
    distributed: tuple[Distribution, dict[str, Any]],
    run_dir: Path,
    console: Console,
    callbacks: list[Any] | None,
    *,
    resuming: bool,
    loggers: RunLoggers,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """data -> model -> fit -> evaluate the best checkpoint -> export; returns the last two."""
    from emotionkit.distribution import (
        even_validation_batches,
        scaled_train_spec,
        this_process_share,
        this_process_stream,
    )
    from emotionkit.training import fit_model

    prepared = prepare_data(recipe, run_dir, console, resuming=resuming)
    data, batch_size, balance = prepared.loaded, recipe.data.batch_size, prepared.balance
    steps = max(1, len(data.splits["train"]) // batch_size)
    distribution, plan = distributed
    train_spec = scaled_train_spec(recipe.train, plan)
    with distribution.scope():  # model variables and optimizer state live on every device
        model, resume_state = model_to_train(
            recipe, train_spec, choice, prepared, run_dir, steps, resuming=resuming
        )
    if resume_state is not None:
        console.print(f"resuming after epoch {resume_state['epoch']}", highlight=False)
    augment_on = _place_augmentation(recipe, choice, model, run_dir, console)
    train_stream, datasets = split_datasets(recipe, prepared, augment_on)
    train_stream = this_process_stream(train_stream, distribution)
    val_data = even_validation_batches(
        datasets["val"], len(data.splits["val"]), batch_size, distribution
    )
    val_data = this_process_share(val_data, distribution)
    with distribution.scope():
        result = fit_model(
            model, train_stream, val_data, train_spec, run_dir,
            steps_per_epoch=steps, batch_size=batch_size,
            class_weight=dict(enumerate(balance["weights"]))
            if balance and balance["weights"] else None,
            console=console, jit_compile=choice.jit_compile, extra_callbacks=callbacks,
            resume_state=resume_state, class_names=data.class_names,
            freeze_batchnorm=recipe.model.freeze_batchnorm, loggers=loggers,
            ordinal=recipe.data.ordinal,
        )  # fmt: skip
    if result.failure is not None:
        update_manifest(run_dir, status="failed", failure=result.failure)
        raise TrainingFailedError(
            f"Training stopped: non-finite loss at epoch {result.failure['epoch']}, step "
            f"{result.failure['step']}; the last good checkpoint is in {result.checkpoint_dir}."
        )
    if not distribution.is_chief:  # its run directory is a scratch copy: nothing to score
        console.print(
            f"process {distribution.process_index}: training done; process 0 evaluates and exports",
            highlight=False,
        )
        return {}, {}
    metrics = evaluate_best(run_dir, datasets, data, result.best_epoch, recipe)
    console.print(describe_best(result.best_epoch, metrics["val"]), highlight=False, soft_wrap=True)
    export = _export_or_defer(run_dir, recipe, console)
    if export:
        update_manifest(
            run_dir, export={"passed": export["passed"], "formats": sorted(export["checks"])}
        )
    return metrics, export


def _export_or_defer(run_dir: Path, recipe: Recipe, console: Console) -> dict[str, Any]:
    """`export_run`, or where TensorFlow is missing one line naming the command to run."""
    from emotionkit.installed import tensorflow_available

    if not recipe.export.formats or tensorflow_available():
        from emotionkit.export import export_run

        return export_run(run_dir, recipe.export)
    console.print(
        f"export deferred: TensorFlow is not installed here; run `emotionkit export {run_dir}` "
        "where it is",
        highlight=False,
        soft_wrap=True,
    )
    update_manifest(run_dir, export={"deferred": True, "formats": recipe.export.formats})
    return {}


def _place_augmentation(
    recipe: Recipe, choice: RuntimeChoice, model: Any, run_dir: Path, console: Console
) -> str:
    """Resolve `data.augment_on`, record it, and move the ops into the train step if `device`."""
    from emotionkit.data.augment import augment_placement, build_device_augment_fn
    from emotionkit.installed import tensorflow_available
    from emotionkit.training.device_augment import augment_in_train_step
    from emotionkit.training.distill import teacher_placement

    placement, reason = augment_placement(
        recipe.data.augment_on, choice.gpu_visible, tensorflow_available()
    )
    if recipe.train.distill is not None and recipe.data.augment:  # the teacher is on the host
        placement, reason = teacher_placement(placement, reason, tensorflow_available())
    update_manifest(run_dir, augment_on={"placement": placement, "reason": reason})
    if recipe.data.augment:
        console.print(f"augmentation: {placement} ({reason})", highlight=False)
    if placement == "device" and recipe.data.augment:
        augment = build_device_augment_fn(recipe.data.augment, recipe.seed, choice.backend)
        augment_in_train_step(model, augment, choice.backend)
    return placement


def _device_names() -> list[str]:
    import keras

    try:
        return [str(device) for device in keras.distribution.list_devices()]
    except (RuntimeError, ValueError, NotImplementedError):
        return ["cpu"]
