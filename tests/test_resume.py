"""Crash-safe, exact resume (SIGKILL after an epoch), determinism and TensorBoard logs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotionkit import load_recipe
from emotionkit.errors import EmotionkitError
from emotionkit.workflow import resume, train
from tests.conftest import BACKEND, REPO, TINY_OVERRIDES

pytestmark = pytest.mark.slow

# Everything that carries state across epochs: shuffles, augmentation draws (incl. MixUp),
# dropout, AdamW moments, the EMA, the schedule step, the best-checkpoint tracker.
RESUME_OVERRIDES = [
    *TINY_OVERRIDES,
    "data.source={kind: synthetic, train_size: 140, val_size: 35, test_size: 0}",
    "data.augment=[{flip: {}}, {affine: {degrees: 10, translate: 0.1}}, {mixup: {p: 0.5}}]",
    "model.dropout=0.2",
    "train.epochs=4",
    "train.optimizer.ema=0.9",
    "train.tensorboard=true",
    "train.confusion_matrix_every=2",
    "export.formats=[]",
]

KILL_AFTER_SECOND_EPOCH = """
import os, signal, sys
from tests.conftest import REPO  # applies the TensorFlow workarounds first
import keras
from emotionkit import load_recipe
from emotionkit.workflow import train

class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", sys.argv[2:])
train(recipe, runs_dir=sys.argv[1], callbacks=[Kill()])
"""


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def final_weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    model = keras.saving.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", RESUME_OVERRIDES)
    # The run to be killed runs alongside the uninterrupted one (its start-up alone takes
    # seconds); it starts once this one has built its model and begins to fit, so that under
    # JAX it finds the compiled steps in the session's compilation cache (see conftest).
    import keras

    command = [sys.executable, "-c", KILL_AFTER_SECOND_EPOCH, str(tmp_path / "killed"),
               *RESUME_OVERRIDES]  # fmt: skip
    stderr = (tmp_path / "killed.stderr").open("w+")
    children: list[subprocess.Popen[bytes]] = []

    class StartTheRunToKill(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            env = {**os.environ, "KERAS_BACKEND": BACKEND}
            children.append(
                subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr
                )
            )

    with stderr:
        try:
            run = train(recipe, runs_dir=tmp_path / "whole", callbacks=[StartTheRunToKill()])
            whole = run.run_dir
        finally:
            for child in children:
                child.wait(timeout=600)
        (killed,) = children
        stderr.seek(0)
        assert killed.returncode == -signal.SIGKILL, stderr.read()[-2000:]
    (run_dir,) = (tmp_path / "killed" / recipe.name).iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    assert len(history(run_dir)) == 2

    # determinism: the same recipe and seed in another process gives byte-identical epochs
    whole_rows = (whole / "history.csv").read_text().splitlines()
    assert (run_dir / "history.csv").read_text().splitlines() == whole_rows[:3]

    resumed = resume(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed"] == 1
    expected, got = history(whole), history(resumed.run_dir)
    assert [row["epoch"] for row in got] == [0, 1, 2, 3]
    for want, have in zip(expected, got, strict=True):
        assert have["val_loss"] == pytest.approx(want["val_loss"], abs=1e-5)
        assert have["loss"] == pytest.approx(want["loss"], abs=1e-5)
    for want_w, have_w in zip(final_weights(whole), final_weights(run_dir), strict=True):
        np.testing.assert_allclose(have_w, want_w, atol=1e-5)
    assert resumed.metrics["val"]["accuracy"] == pytest.approx(
        json.loads((whole / "metrics.json").read_text())["val"]["accuracy"]
    )
    backups = sorted(p.name for p in (run_dir / "checkpoints" / "backups").iterdir())
    assert backups == ["epoch_0003", "epoch_0004"]  # train.keep_backups: 2
    with pytest.raises(EmotionkitError, match="already completed"):
        resume(run_dir)
    assert {"epoch_lr", "epoch_macro_f1"} <= tensorboard_scalars(whole / "tensorboard" / "train")
    validation = tensorboard_scalars(whole / "tensorboard" / "validation")
    assert {"epoch_macro_f1", "confusion_matrix"} <= validation

    # A run stopped after its last epoch (in evaluation or export) resumes with no epoch left.
    stopped = tmp_path / "stopped" / whole.name
    shutil.copytree(whole, stopped)
    (stopped / "metrics.json").unlink()
    manifest = json.loads((stopped / "manifest.json").read_text())
    (stopped / "manifest.json").write_text(json.dumps({**manifest, "status": "failed"}))
    finished = resume(stopped)
    assert json.loads((stopped / "manifest.json").read_text())["status"] == "completed"
    assert history(stopped) == history(whole)  # no epoch trained again
    assert finished.metrics["val"]["accuracy"] == pytest.approx(
        json.loads((whole / "metrics.json").read_text())["val"]["accuracy"]
    )


def tensorboard_scalars(log_dir: Path) -> set[str]:
    import tensorflow as tf

    tags = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    return tags
