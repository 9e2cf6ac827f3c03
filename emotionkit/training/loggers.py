"""Experiment loggers (`train.loggers`): TensorBoard, MLflow and Weights & Biases.

Each logger records one run at three moments: at the start the flattened recipe as
parameters; after every epoch the logged metrics (losses, metrics, learning rate and their
`val_` twins); at the end the best checkpoint's scores, per class too
(`best/val_<class>_f1`...), and the run's files as artifacts: `report.html` (the
self-contained report of `emotionkit report`, written for the loggers that keep files),
`metrics.json`, `history.csv`, `recipe.yaml`, `export/export.json` (the parity report) and
the ONNX model. What a logger needs to pick a run up again (an MLflow run id, a W&B
run id) is kept in the manifest's `loggers`, so a resumed run logs into the same run.

The loggers are registered in `training/catalog.py` (`LOGGERS`, see `registries.py`); each
imports its library only when a run starts, and MLflow and W&B are optional extras.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotionkit.errors import EmotionkitError
from emotionkit.runs import update_manifest
from emotionkit.training.registries import LOGGERS

if TYPE_CHECKING:
    from emotionkit.training.spec import TrainSpec

ARTIFACTS = (
    "report.html",
    "recipe.yaml",
    "metrics.json",
    "history.csv",
    "export/export.json",
    "export/model.onnx",
    "export/model.int8.onnx",
)
"""Run files each logger stores at the end, where the run has them (relative paths)."""


@dataclass(frozen=True)
class LoggerContext:
    """What a logger is started with.

    Attributes:
        run_dir: the run directory.
        spec: the recipe's `train` section.
        params: the flattened recipe (`train.optimizer.lr` -> 0.003).
        experiment: the recipe's name: the MLflow experiment, the W&B project.
        state: what this logger stored in the manifest when the run started (resume).
    """

    run_dir: Path
    spec: TrainSpec
    params: dict[str, Any]
    experiment: str
    state: dict[str, Any]

    @property
    def run_name(self) -> str:
        """`<recipe name>/<timestamp>`, as `emotionkit compare` names runs."""
        return f"{self.run_dir.parent.name}/{self.run_dir.name}"


class RunLogger:
    """A logger's hooks; the base class records nothing."""

    keeps_files = True
    """Whether `finish` stores artifacts (then the workflow writes `report.html` first)."""

    def fit_callbacks(self, val_data: Any, class_names: list[str] | None) -> list[Any]:
        """Keras callbacks of its own, for each `fit` (TensorBoard's writer)."""
        return []

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """The epoch's logged values (epoch counted from 0, as in history.csv)."""

    def finish(self, scores: dict[str, float], step: int, artifacts: list[Path]) -> None:
        """The best checkpoint's scores (logged at `step`, its epoch) and the run's files."""

    def close(self, status: str) -> None:
        """The run stopped early: `failed` or `interrupted`."""

    def state(self) -> dict[str, Any]:
        """What a resumed run needs to continue this logger's run (kept in the manifest)."""
        return {}


class RunLoggers:
    """The run's loggers together: the workflow talks to this, not to each one."""

    def __init__(self, loggers: dict[str, RunLogger], run_dir: Path) -> None:
        self.loggers, self.run_dir = loggers, run_dir
        self.finished = False

    @property
    def keep_files(self) -> bool:
        """Some logger stores the run's files: worth writing the report for it."""
        return any(logger.keeps_files for logger in self.loggers.values())

    def fit_callbacks(self, val_data: Any, class_names: list[str] | None) -> list[Any]:
        """Each logger's own callbacks, then one that hands every epoch's logs to all."""
        if not self.loggers:
            return []
        from emotionkit.training.callbacks import EpochLogs

        own = [
            callback
            for logger in self.loggers.values()
            for callback in logger.fit_callbacks(val_data, class_names)
        ]
        return [*own, EpochLogs(self.log_epoch)]

    def log_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        values = {key: float(value) for key, value in logs.items() if _is_number(value)}
        for logger in self.loggers.values():
            logger.log_epoch(epoch, values)

    def finish(self, metrics: dict[str, Any]) -> None:
        """Log the best checkpoint's scores (`metrics.json`'s content) and the artifacts."""
        scores = best_scores(metrics)
        step = max(int(metrics.get("best_epoch", 1)) - 1, 0)
        artifacts = [self.run_dir / name for name in ARTIFACTS if (self.run_dir / name).is_file()]
        for logger in self.loggers.values():
            logger.finish(scores, step, artifacts)
        self.finished = True

    def close(self, status: str) -> None:
        for logger in self.loggers.values():
            with contextlib.suppress(Exception):  # a logger's error must not hide the run's
                logger.close(status)


def best_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """`best/val_accuracy`, `best/val_happy_f1`...: each split's numbers and per-class scores."""
    scores = {"best/best_epoch": float(metrics.get("best_epoch", 0))}
    for split, values in metrics.items():
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if _is_number(value):
                scores[f"best/{split}_{name}"] = float(value)
        for label, row in (values.get("per_class") or {}).items():
            for name, value in row.items():
                if _is_number(value):
                    scores[f"best/{split}_{label}_{name}"] = float(value)
    return scores


def check_loggers_installed(spec: TrainSpec) -> None:
    """Before a run directory exists: every logger's library is installed.

    Raises:
        EmotionkitError: naming the logger and the extra that installs it.
    """
    for name in spec.logger_names():
        entry = LOGGERS.get(name)
        if entry.module and importlib.util.find_spec(entry.module) is None:
            raise EmotionkitError(
                f"train.loggers: {name} needs {entry.module}, which is not installed: "
                f"pip install 'emotionkit[{entry.extra}]' (or remove {name} from train.loggers)."
            )


@contextlib.contextmanager
def run_loggers(
    spec: TrainSpec, run_dir: Path, params: dict[str, Any], experiment: str
) -> Iterator[RunLoggers]:
    """Start the recipe's loggers for this run; close them as the run ends.

    Inside the block call `fit_callbacks` for `fit` and `finish` with the final metrics; a
    block left by an exception closes the loggers as `failed` (`interrupted` for Ctrl-C or
    SIGTERM) and re-raises.
    """
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    saved = manifest.get("loggers") or {}
    loggers: dict[str, RunLogger] = {}
    for name in spec.logger_names():
        context = LoggerContext(run_dir, spec, params, experiment, saved.get(name) or {})
        loggers[name] = LOGGERS.get(name).build(context)
    if loggers:
        update_manifest(run_dir, loggers={name: lg.state() for name, lg in loggers.items()})
    group = RunLoggers(loggers, run_dir)
    try:
        yield group
    except KeyboardInterrupt:
        group.close("interrupted")
        raise
    except BaseException:
        group.close("failed")
        raise
    if not group.finished:
        group.close("failed")


def import_extra(module: str, extra: str) -> Any:
    """Import an optional library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmotionkitError(
            f"{module} is not installed: pip install 'emotionkit[{extra}]'"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- the built-in loggers ----------------------------------------------------------------------


class TensorBoardLogger(RunLogger):
    """`tensorboard/train`, `tensorboard/validation` (Keras' callback, plus the confusion
    matrix image every `train.confusion_matrix_every` epochs), and in `tensorboard/` the
    recipe as hyperparameters and the best checkpoint's scores. No artifacts: TensorBoard
    keeps none."""

    keeps_files = False

    def __init__(self, context: LoggerContext) -> None:
        self.log_dir = context.run_dir / "tensorboard"
        self.every = context.spec.confusion_matrix_every
        if not context.state.get("params_logged"):
            from tensorboard.plugins.hparams import api as hparams

            params = {key: _hparam(value) for key, value in context.params.items()}
            with self._writer().as_default():
                hparams.hparams(params, trial_id=context.run_name)

    def _writer(self) -> Any:
        import tensorflow as tf

        return tf.summary.create_file_writer(str(self.log_dir))

    def fit_callbacks(self, val_data: Any, class_names: list[str] | None) -> list[Any]:
        import keras

        from emotionkit.training.callbacks import ConfusionMatrixImage

        callbacks: list[Any] = [keras.callbacks.TensorBoard(str(self.log_dir))]
        if class_names and self.every:
            callbacks.append(ConfusionMatrixImage(self.log_dir, val_data, class_names, self.every))
        return callbacks

    def finish(self, scores: dict[str, float], step: int, artifacts: list[Path]) -> None:
        import tensorflow as tf

        with self._writer().as_default():
            for name, value in scores.items():
                tf.summary.scalar(name, value, step=step)

    def state(self) -> dict[str, Any]:
        return {"params_logged": True}


def _hparam(value: Any) -> Any:
    """A value TensorBoard's hyperparameter plugin takes: bool, number or string."""
    return value if isinstance(value, bool | int | float | str) else json.dumps(value)


class MlflowLogger(RunLogger):
    """A run in the MLflow experiment named like the recipe.

    The store is `MLFLOW_TRACKING_URI` when set, else a local file store next to the runs,
    `RUNS_DIR/mlruns` (`mlflow ui --backend-store-uri RUNS_DIR/mlruns`).
    """

    def __init__(self, context: LoggerContext) -> None:
        import_extra("mlflow", "mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or mlflow_file_store(context.run_dir)
        if uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless asked.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id: str = context.state.get("run_id") or ""
        if self.run_id:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(context.experiment)
        experiment = (
            found.experiment_id if found else self.client.create_experiment(context.experiment)
        )
        tags = {"emotionkit.run_dir": str(context.run_dir)}
        run = self.client.create_run(experiment, run_name=context.run_name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(key, _param_text(value)[:500]) for key, value in context.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items() if math.isfinite(v)]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self._log_metrics(logs, epoch)

    def finish(self, scores: dict[str, float], step: int, artifacts: list[Path]) -> None:
        self._log_metrics(scores, step)
        for path in artifacts:
            folder = path.parent.name if path.parent.name == "export" else None
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
        self.client.set_terminated(self.run_id, "FINISHED")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "KILLED" if status == "interrupted" else "FAILED")

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id}


def mlflow_file_store(run_dir: Path) -> str:
    """`file://.../RUNS_DIR/mlruns`: one store for all the runs under `--runs-dir`."""
    return (run_dir.parent.parent / "mlruns").resolve().as_uri()


class WandbLogger(RunLogger):
    """A W&B run in the project named like the recipe, offline unless `WANDB_MODE` says
    otherwise: its files go to `RUN_DIR/wandb/` (`wandb sync RUN_DIR/wandb/offline-run-*`
    uploads them later)."""

    def __init__(self, context: LoggerContext) -> None:
        wandb = import_extra("wandb", "wandb")
        self.wandb = wandb
        settings = wandb.Settings(console="off", silent=True, disable_git=True, save_code=False)
        self.run = wandb.init(
            project=context.experiment,
            name=context.run_name,
            id=context.state.get("id") or None,
            resume="allow",
            dir=str(context.run_dir),
            mode=os.environ.get("WANDB_MODE") or "offline",
            config=None if context.state.get("id") else context.params,
            settings=settings,
            reinit="create_new",
        )

    def log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self.run.log({**logs, "epoch": epoch}, step=epoch)

    def finish(self, scores: dict[str, float], step: int, artifacts: list[Path]) -> None:
        self.run.summary.update(scores)
        files = self.wandb.Artifact(f"run-{self.run.id}", type="run")
        for path in artifacts:
            name = f"{path.parent.name}/{path.name}" if path.parent.name == "export" else path.name
            files.add_file(str(path), name=name, policy="immutable")
        self.run.log_artifact(files)
        self.run.finish()

    def close(self, status: str) -> None:
        self.run.finish(exit_code=130 if status == "interrupted" else 1)

    def state(self) -> dict[str, Any]:
        return {"id": self.run.id}
