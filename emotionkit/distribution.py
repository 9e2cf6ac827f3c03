"""Data-parallel training through the engines built for it: Keras DataParallel, tf.distribute.

`runtime.distribution: data_parallel` replicates the model on every chosen device and splits
each global batch (`data.batch_size`) evenly across them. No gradient averaging is written
here: under JAX, Keras' `DataParallel` shards the batch axis and XLA (GSPMD) inserts the
all-reduce; under TensorFlow, `MirroredStrategy` (one host) or `MultiWorkerMirroredStrategy`
(`TF_CONFIG` set) runs the step per replica and Keras scales the loss for the sum of
gradients. This module only chooses the devices, starts multi-host runtimes before any
computation, checks the batch split, scales the learning rate and hands out the scope in
which the model is built, compiled and fitted. See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from emotionkit.errors import EmotionkitError, RecipeError
from emotionkit.training.spec import OptimizerSpec, TrainSpec

TF_CPU_DEVICES_ENV = "EMOTIONKIT_TF_CPU_DEVICES"
"""Split the host CPU into this many TensorFlow logical devices (tests, CLI checks on a laptop):
TensorFlow's counterpart of JAX's `XLA_FLAGS=--xla_force_host_platform_device_count=N`."""

MULTIHOST_ENV = "EMOTIONKIT_MULTIHOST"
"""`1`: call `keras.distribution.initialize()` (JAX) even when no variable below is set, for
clusters JAX detects by itself (Cloud TPU pods, Open MPI)."""

JAX_MULTIHOST_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "JAX_COORDINATOR_ADDRESS",
)


@dataclass
class Distribution:
    """The devices a run trains on and the engine that spreads the batch over them."""

    mode: str
    backend: str
    devices: list[str]
    num_processes: int = 1
    process_index: int = 0
    engine: Any = field(default=None, repr=False)

    @property
    def num_devices(self) -> int:
        return max(1, len(self.devices))

    @property
    def is_chief(self) -> bool:
        """Process 0 writes the run directory; the others write to a throw-away folder."""
        return self.process_index == 0

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build, compile, load and fit models in here (nothing happens for `none`)."""
        if self.engine is None:
            yield
        else:
            with self.engine.scope():
                yield

    def describe(self) -> str:
        engine = type(self.engine).__name__ if self.engine is not None else "no distribution"
        hosts = f" on {self.num_processes} processes" if self.num_processes > 1 else ""
        return f"{self.mode}: {self.num_devices} device(s){hosts} ({engine})"


def start_distribution(mode: str, devices: str | int, backend: str) -> Distribution:
    """Start the recipe's distribution; call it before any JAX or TensorFlow computation.

    Multi-host JAX and `MultiWorkerMirroredStrategy` must be set up before the first
    computation (a seed, a variable) or they fail, which is why this runs inside
    `configure_frameworks`, before the seeds.
    """
    if backend == "tensorflow":
        configure_tf_virtual_cpus()
    if mode == "none":
        return Distribution("none", backend, devices=[])
    if backend == "jax":
        return _start_jax(devices)
    return _start_tensorflow(devices)


def configure_tf_virtual_cpus() -> None:
    """Honour `EMOTIONKIT_TF_CPU_DEVICES=N`: N logical CPU devices, before TF initialises."""
    count = int(os.environ.get(TF_CPU_DEVICES_ENV) or 0)
    if count < 2:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    # RuntimeError: TensorFlow already initialised its devices (an earlier run in this
    # process); the configuration it has is kept.
    with contextlib.suppress(RuntimeError):
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )


def jax_multihost_requested() -> bool:
    """True when a launcher set up a multi-process JAX job (see docs/distributed.md)."""
    if os.environ.get(MULTIHOST_ENV) == "1":
        return True
    if any(os.environ.get(name) for name in JAX_MULTIHOST_VARIABLES):
        return True
    return int(os.environ.get("SLURM_NTASKS") or 1) > 1 and "SLURM_JOB_ID" in os.environ


def _start_jax(devices: str | int) -> Distribution:
    import keras

    if jax_multihost_requested():
        # Reads KERAS_DISTRIBUTION_* and forwards to jax.distributed.initialize(), which
        # falls back on JAX_COORDINATOR_ADDRESS and SLURM / Cloud TPU / Open MPI detection.
        keras.distribution.initialize()
    import jax

    chosen = [
        device
        for process in range(jax.process_count())
        for device in _first(
            [d for d in jax.devices() if d.process_index == process], devices, "JAX"
        )
    ]
    names = [f"{device.platform}:{device.id}" for device in chosen]
    engine = keras.distribution.DataParallel(devices=names)
    return Distribution(
        "data_parallel", "jax", names, jax.process_count(), jax.process_index(), engine
    )


def _start_tensorflow(devices: str | int) -> Distribution:
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # One worker per host; every local GPU of a worker is a replica. tf.distribute
        # auto-shards the tf.data pipeline across workers (AutoShardPolicy.AUTO).
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
        workers = strategy.cluster_resolver.cluster_spec().num_tasks("worker")
        names = [f"replica:{i}" for i in range(strategy.num_replicas_in_sync)]
        return Distribution(
            "data_parallel", "tensorflow", names, workers, int(task.get("index", 0)), strategy
        )
    local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    names = [device.name for device in _first(local, devices, "TensorFlow")]
    strategy = tf.distribute.MirroredStrategy(names)
    return Distribution("data_parallel", "tensorflow", names, engine=strategy)


def _first(available: list[Any], devices: str | int, framework: str) -> list[Any]:
    if isinstance(devices, str):  # "all"
        return available
    if devices > len(available):
        raise EmotionkitError(
            f"runtime.devices={devices} but {framework} sees {len(available)} device(s) on "
            "this host: lower runtime.devices or use runtime.devices=all."
        )
    return available[:devices]


def batch_plan(
    distribution: Distribution, batch_size: int, optimizer: OptimizerSpec
) -> dict[str, Any]:
    """Devices, per-device batch and learning rate of a run: printed and saved in the manifest.

    Raises:
        RecipeError: `data.batch_size` does not split evenly across the devices.
    """
    devices = distribution.num_devices
    if batch_size % devices:
        raise RecipeError(
            f"data.batch_size={batch_size} is the global batch and must split evenly across "
            f"the {devices} devices: use a multiple of {devices}, e.g. "
            f"data.batch_size={devices * max(1, round(batch_size / devices))}."
        )
    factor = lr_scale_factor(optimizer, batch_size)
    return {
        "mode": distribution.mode,
        "num_devices": devices,
        "devices": distribution.devices,
        "num_processes": distribution.num_processes,
        "process_index": distribution.process_index,
        "global_batch": batch_size,
        "per_device_batch": batch_size // devices,
        "lr_scaling": optimizer.lr_scaling,
        "lr_reference_batch": optimizer.lr_reference_batch,
        "lr_factor": factor,
        "lr": optimizer.lr * factor,
    }


def lr_scale_factor(optimizer: OptimizerSpec, batch_size: int) -> float:
    """Goyal et al.'s rule: the rate follows the effective global batch, not the device count."""
    if optimizer.lr_scaling == "none" or optimizer.lr_reference_batch is None:
        return 1.0
    ratio = batch_size * optimizer.grad_accum / optimizer.lr_reference_batch
    return ratio if optimizer.lr_scaling == "linear" else math.sqrt(ratio)


def scaled_train_spec(spec: TrainSpec, plan: dict[str, Any]) -> TrainSpec:
    """`spec` with `train.optimizer.lr` replaced by the scaled rate of `plan`."""
    if plan["lr_factor"] == 1.0:
        return spec
    optimizer = spec.optimizer.model_copy(update={"lr": plan["lr"]})
    return spec.model_copy(update={"optimizer": optimizer})


def describe_plan(plan: dict[str, Any]) -> str:
    """One line for the console."""
    scaling = (
        f"lr {plan['lr']:.3g} ({plan['lr_scaling']} scaling x{plan['lr_factor']:.3g} from "
        f"reference batch {plan['lr_reference_batch']})"
        if plan["lr_scaling"] != "none"
        else f"lr {plan['lr']:.3g} (no lr scaling)"
    )
    return (
        f"distribution: {plan['mode']} on {plan['num_devices']} device(s); global batch "
        f"{plan['global_batch']} = {plan['per_device_batch']} per device; {scaling}"
    )


def even_validation_batches(
    dataset: Any, num_images: int, batch_size: int, distribution: Distribution
) -> Any:
    """Under JAX DataParallel, drop the last `num_images % devices` validation images.

    JAX shards every batch evenly over the devices and refuses a last batch that does not
    split (`IndivisibleError`); tf.distribute handles uneven batches itself. The dropped
    images (fewer than the device count) only leave the per-epoch `val_*` numbers that pick
    the best checkpoint; metrics.json is computed afterwards on every image.
    """
    keep = num_images - num_images % distribution.num_devices
    if distribution.engine is None or distribution.backend != "jax" or keep == num_images:
        return dataset
    import tensorflow as tf

    # Known cardinality: with an unknown one, Keras warns that the input "ran out of data".
    batches = tf.data.experimental.assert_cardinality(math.ceil(keep / batch_size))
    return dataset.unbatch().take(keep).batch(batch_size).apply(batches)
