"""Data parallel on two virtual CPU devices: same training as one device, backups resume on one.

Virtual devices must exist before the framework initialises, so the two-device run is a child
process (`XLA_FLAGS=--xla_force_host_platform_device_count=2` for JAX,
`EMOTIONKIT_TF_CPU_DEVICES=2` for TensorFlow); the one-device runs happen in this process,
which sees one device. Only the backend in KERAS_BACKEND is tested (nox runs both).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotionkit import load_recipe
from emotionkit.distribution import (
    TF_CPU_DEVICES_ENV,
    Distribution,
    batch_plan,
    even_validation_batches,
)
from emotionkit.errors import RecipeError
from emotionkit.training.spec import OptimizerSpec
from emotionkit.workflow import resume, train
from tests.conftest import BACKEND, REPO, TINY_OVERRIDES

QUICKSTART = REPO / "recipes" / "quickstart.yaml"
# 4 steps of 32 images per epoch; two epochs so that a backup after epoch 1 can be resumed.
# An even validation set: under JAX an odd last image would be dropped from val_* (see
# `even_validation_batches`), which is not the same numbers to compare.
OVERRIDES = [
    *TINY_OVERRIDES,
    "data.source={kind: synthetic, train_size: 128, val_size: 36, test_size: 0}",
    "train.epochs=2",
    # SGD, not AdamW: Adam divides by the gradient's own scale, so it would hide gradients
    # that are summed instead of averaged over devices; SGD's steps grow with them.
    "train.optimizer={name: sgd, lr: 0.05, weight_decay: 0.0}",
    "export.formats=[]",
]
DATA_PARALLEL = "runtime.distribution=data_parallel"

# How close a two-device run is to a one-device run with the same global batch (epoch-mean
# losses over 2 epochs of 4 SGD steps).
# JAX: DataParallel shards one jitted global step, so BatchNorm statistics and the loss are
# reduced over the whole batch as on one device; only the order of float32 sums differs (an
# all-reduce of two halves): measured 1.5e-6 relative after 8 steps here, 7e-5 in a fresh CI
# environment (XLA:CPU's kernel and thread choices differ); the bound, 1e-3, still catches a
# summed instead of averaged gradient (twice the step: percents of loss after 8 SGD steps).
# TensorFlow: MirroredStrategy normalises each replica's 16 images with their own BatchNorm
# statistics (Keras' default `synchronized=False`, as in Goyal et al. and PyTorch DDP without
# SyncBN), so the two runs are different computations by design: measured 0.5% after 4 steps
# and 3.4% after 8. (Without BatchNorm the TensorFlow runs agree to 1e-7: the gradient
# averaging itself is exact.) The bound is twice the measured gap.
LOSS_RTOL = {"jax": 1e-3, "tensorflow": 0.07}[BACKEND]


def two_device_env() -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    if BACKEND == "jax":
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    else:
        env[TF_CPU_DEVICES_ENV] = "2"
    return env


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def manifest(run_dir: Path) -> dict[str, object]:
    return dict(json.loads((run_dir / "manifest.json").read_text()))


@pytest.mark.slow
def test_two_devices_train_like_one_and_their_backup_resumes_on_one(tmp_path: Path) -> None:
    with (tmp_path / "two.log").open("w+") as log:
        two = subprocess.Popen(
            [sys.executable, "-m", "emotionkit", "train", str(QUICKSTART), *OVERRIDES,
             DATA_PARALLEL, "--runs-dir", str(tmp_path / "two")],
            cwd=REPO, env=two_device_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            one = train(load_recipe(QUICKSTART, OVERRIDES), runs_dir=tmp_path / "one").run_dir
        finally:
            two.wait(timeout=600)
        log.seek(0)
        output = log.read()
    assert two.returncode == 0, output[-3000:]
    assert "data_parallel on 2 device(s); global batch 32 = 16 per device" in output
    (two_dir,) = (tmp_path / "two" / "quickstart").iterdir()
    plan = manifest(two_dir)["distribution"]
    assert isinstance(plan, dict)
    assert (plan["num_devices"], plan["per_device_batch"], plan["lr_factor"]) == (2, 16, 1.0)

    one_rows, two_rows = history(one), history(two_dir)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(
            [row[key] for row in two_rows], [row[key] for row in one_rows], rtol=LOSS_RTOL
        )

    # An interrupted two-device run (its epoch-2 backup lost) resumes on this one-device
    # process from the epoch-1 backup, and ends where the two-device run ended.
    shutil.rmtree(two_dir / "checkpoints" / "backups" / "epoch_0002")
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(two_dir, resumed_dir)
    (resumed_dir / "manifest.json").write_text(
        json.dumps({**manifest(two_dir), "status": "running"})
    )
    resume(resumed_dir)
    resumed_plan = manifest(resumed_dir)["distribution"]
    assert isinstance(resumed_plan, dict) and resumed_plan["num_devices"] == 1
    resumed_rows = history(resumed_dir)
    assert [row["epoch"] for row in resumed_rows] == [0, 1]
    np.testing.assert_allclose(resumed_rows[1]["loss"], two_rows[1]["loss"], rtol=LOSS_RTOL)


def test_a_global_batch_that_does_not_split_is_refused_naming_the_key() -> None:
    two = Distribution("data_parallel", BACKEND, devices=["cpu:0", "cpu:1"])
    with pytest.raises(RecipeError, match=r"data.batch_size=33 .* 2 devices"):
        batch_plan(two, 33, OptimizerSpec())


@pytest.mark.parametrize(
    ("scaling", "batch", "grad_accum", "factor"),
    [("none", 256, 1, 1.0), ("linear", 256, 1, 8.0), ("linear", 64, 2, 4.0), ("sqrt", 128, 1, 2.0)],
)
def test_the_rate_follows_the_effective_global_batch_not_the_device_count(
    scaling: str, batch: int, grad_accum: int, factor: float
) -> None:
    reference = None if scaling == "none" else 32
    optimizer = OptimizerSpec(
        lr=1e-3, lr_scaling=scaling, lr_reference_batch=reference, grad_accum=grad_accum
    )
    for devices in (["cpu:0"], ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]):
        plan = batch_plan(Distribution("data_parallel", BACKEND, devices), batch, optimizer)
        assert plan["lr"] == pytest.approx(1e-3 * factor)
        assert plan["per_device_batch"] == batch // len(devices)


def test_recipe_rules_for_distribution_keys() -> None:
    with pytest.raises(RecipeError, match=r"runtime\.devices applies to runtime\.distribution"):
        load_recipe(QUICKSTART, ["runtime.devices=2"])
    with pytest.raises(RecipeError, match="lr_reference_batch together"):
        load_recipe(QUICKSTART, ["train.optimizer.lr_scaling=linear"])
    recipe = load_recipe(QUICKSTART, [DATA_PARALLEL, "runtime.devices=2"])
    assert (recipe.runtime.distribution, recipe.runtime.devices) == ("data_parallel", 2)


def test_jax_validation_drops_only_the_tail_that_cannot_split() -> None:
    import tensorflow as tf

    dataset = tf.data.Dataset.range(35).batch(8)
    two = Distribution("data_parallel", "jax", ["cpu:0", "cpu:1"], engine=object())
    kept = even_validation_batches(dataset, 35, 8, two)
    assert [len(batch) for batch in kept] == [8, 8, 8, 8, 2]
    assert int(kept.cardinality()) == 5  # known, so Keras does not warn about running out
    tf_two = Distribution("data_parallel", "tensorflow", ["cpu:0", "cpu:1"], engine=object())
    assert even_validation_batches(dataset, 35, 8, tf_two) is dataset  # uneven is fine there
