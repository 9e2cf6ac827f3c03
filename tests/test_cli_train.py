"""`emotionkit train` as users run it: a NaN ends the command cleanly; `--resume` rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND, REPO, TINY_OVERRIDES
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow

# The CLI, with the train stream's targets poisoned at epoch 2 (0-based 1), batch 3: a corrupt
# soft label in the middle of a run.
POISONED_CLI = """
import sys
from tests.conftest import REPO  # TensorFlow workarounds first
import tensorflow as tf
from emotionkit.data import pipeline

original = pipeline._train_epoch

def poisoned(split, images_and_labels, num_classes, batch_size, steps, seed, *rest):
    dataset = original(split, images_and_labels, num_classes, batch_size, steps, seed, *rest)
    if seed != pipeline.epoch_seed(42, 1):
        return dataset
    nan_third = lambda i, b: (b[0], tf.where(i == 2, float("nan"), b[1]))
    return dataset.enumerate().map(nan_third)

pipeline._train_epoch = poisoned
from emotionkit.cli import main
sys.argv = ["emotionkit", *sys.argv[1:]]
main()
"""


def test_a_nan_fails_the_command_and_marks_the_run_keeping_the_last_good_checkpoint(
    tmp_path: Path,
) -> None:
    overrides = [*TINY_OVERRIDES, "train.epochs=3", "export.formats=[]"]
    result = subprocess.run(
        [sys.executable, "-c", POISONED_CLI, "train", str(REPO / "recipes" / "quickstart.yaml"),
         *overrides, "--runs-dir", str(tmp_path)],
        cwd=REPO, env={**os.environ, "KERAS_BACKEND": BACKEND}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "non-finite loss at epoch 2, step 3" in error[0]
    (run_dir,) = (tmp_path / "quickstart").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert (manifest["failure"]["epoch"], manifest["failure"]["step"]) == (2, 3)
    import keras

    last = keras.saving.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    assert last.count_params() > 0  # epoch 1's checkpoint, intact and loadable
    assert sorted(p.name for p in (run_dir / "checkpoints" / "backups").iterdir()) == ["epoch_0001"]


def test_resume_refuses_a_recipe_or_a_completed_run(tmp_path: Path) -> None:
    both = run_cli("train", str(REPO / "recipes" / "quickstart.yaml"), "--resume", str(tmp_path))
    assert both.returncode == 2 and "drop the recipe" in both.stderr
    neither = run_cli("train")
    assert neither.returncode == 2 and "--resume RUN_DIR" in neither.stderr
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "completed"}))
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    done = run_cli("train", "--resume", str(tmp_path))
    assert done.returncode == 2 and "already completed" in done.stderr
