"""`train.loggers`: TensorBoard, MLflow (local file store) and W&B (offline) record a run."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotionkit import load_recipe
from emotionkit.errors import EmotionkitError, RecipeError
from emotionkit.training.loggers import (
    LoggerContext,
    MlflowLogger,
    WandbLogger,
    best_scores,
    check_loggers_installed,
)
from emotionkit.training.registries import LOGGERS
from tests.conftest import REPO, TINY_OVERRIDES
from tests.test_sweep import SWEEP_OVERRIDES, docs_example

QUICKSTART = REPO / "recipes" / "quickstart.yaml"


@pytest.fixture
def tracker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MLflow's default store and W&B offline, with W&B's own folders kept in tmp_path."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))


def wandb_records(run_dir: Path, timeout: float = 60.0) -> list[Any]:
    """The records of the run's offline W&B file, once it is complete (its `exit` record
    written): W&B's writer process can append the last records after `finish` returns, as
    it did twice on a loaded 2-core CI machine."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_file(next((run_dir / "wandb").glob("offline-run-*/run-*.wandb")))
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def read_wandb_file(path: Path) -> list[Any]:
    """The records of an offline W&B file (LevelDB log format, W&B's own header)."""
    from wandb.proto import wandb_internal_pb2

    data, position, chunk, records = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = 32768 - position % 32768  # records never straddle a 7-byte block tail
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def item_key(item: Any) -> str:
    """A history or summary item's name: W&B stores it as `key` or as `nested_key` parts."""
    return item.key or "/".join(item.nested_key)


def test_loggers_are_registered_and_checked() -> None:
    assert {"tensorboard", "mlflow", "wandb"} <= set(LOGGERS.names())
    with pytest.raises(RecipeError, match=r"train.loggers.*Did you mean 'mlflow'"):
        load_recipe(QUICKSTART, ["train.loggers=[mlflw]"])
    both = load_recipe(QUICKSTART, ["train.tensorboard=true", "train.loggers=[wandb]"])
    assert both.train.logger_names() == ["wandb", "tensorboard"]  # the older switch still works


def test_a_missing_extra_is_named_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name)
    )
    recipe = load_recipe(QUICKSTART, ["train.loggers=[mlflow, wandb]"])
    with pytest.raises(EmotionkitError, match=r"pip install 'emotionkit\[wandb\]'"):
        check_loggers_installed(recipe.train)


def test_best_scores_flatten_splits_and_classes() -> None:
    metrics = {
        "best_epoch": 2,
        "monitor": "val_macro_f1",
        "val": {"accuracy": 0.5, "per_class": {"happy": {"f1": 0.25, "support": 3}}},
    }
    assert best_scores(metrics) == {
        "best/best_epoch": 2.0,
        "best/val_accuracy": 0.5,
        "best/val_happy_f1": 0.25,
        "best/val_happy_support": 3.0,
    }


@pytest.mark.usefixtures("tracker_env")
def test_artifacts_and_resume_reach_the_same_tracker_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "quickstart" / "2026-01-01T00-00-00"
    (run_dir / "export").mkdir(parents=True)
    for name in ("metrics.json", "export/model.onnx"):
        (run_dir / name).write_text("{}")
    spec = load_recipe(QUICKSTART).train
    context = LoggerContext(run_dir, spec, {"train.epochs": 6}, "quickstart", {})
    mlflow_logger, wandb_logger = MlflowLogger(context), WandbLogger(context)
    mlflow_logger.log_epoch(0, {"val_macro_f1": 0.5})
    again = MlflowLogger(LoggerContext(**{**vars(context), "state": mlflow_logger.state()}))
    assert again.run_id == mlflow_logger.run_id  # a resumed run logs into the same MLflow run
    artifacts = [run_dir / "metrics.json", run_dir / "export" / "model.onnx"]
    again.finish({"best/val_macro_f1": 0.5}, 0, artifacts)
    wandb_logger.finish({"best/val_macro_f1": 0.5}, 0, artifacts)

    stored = {a.path for a in again.client.list_artifacts(again.run_id)}
    stored |= {a.path for a in again.client.list_artifacts(again.run_id, "export")}
    assert {"metrics.json", "export/model.onnx"} <= stored
    assert again.client.get_run(again.run_id).info.status == "FINISHED"
    (artifact,) = [r.artifact for r in wandb_records(run_dir) if r.HasField("artifact")]
    assert {entry.path for entry in artifact.manifest.contents} == {
        "metrics.json",
        "export/model.onnx",
    }


@pytest.mark.slow
@pytest.mark.usefixtures("tracker_env")
def test_mlflow_and_wandb_hold_a_tiny_runs_metrics(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from emotionkit.workflow import train

    documented = yaml.safe_load(docs_example("tests/test_loggers.py trains"))["train"]["loggers"]
    assert documented == ["tensorboard", "mlflow", "wandb"]
    overrides = [*SWEEP_OVERRIDES, f"train.loggers={documented}"]
    assert TINY_OVERRIDES[0] in overrides
    run_dir = train(load_recipe(QUICKSTART, overrides), runs_dir=tmp_path / "runs").run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    classes = json.loads((run_dir / "labels_mapping.json").read_text()).values()

    client = MlflowClient((tmp_path / "runs" / "mlruns").as_uri())
    run = client.get_run(manifest["loggers"]["mlflow"]["run_id"])
    assert (
        run.info.status == "FINISHED"
        and run.info.run_name == run_dir.relative_to(tmp_path / "runs").as_posix()
    )
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.width"] == "0.125"
    history = client.get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [0, 1]
    assert {f"best/val_{name}_f1" for name in classes} <= set(run.data.metrics)
    assert {"lr", "loss", "val_loss"} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "report.html",
        "metrics.json",
        "history.csv",
        "recipe.yaml",
    }

    records = wandb_records(run_dir)
    steps = [
        {item_key(item): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.HasField("history")
    ]
    assert [step["epoch"] for step in steps] == [0, 1]
    assert all("val_macro_f1" in step and "lr" in step for step in steps)
    summary = {item_key(i) for r in records if r.HasField("summary") for i in r.summary.update}
    assert {f"best/val_{name}_f1" for name in classes} <= summary
    (config,) = [r.run.config for r in records if r.HasField("run")]
    assert "train.optimizer.lr" in {item.key for item in config.update}
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))  # hparams, best/*
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
