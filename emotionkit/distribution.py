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
from collections.abc import Callable, Iterator
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

CPU_COLLECTIVE_TIMEOUT_SECONDS = 600
"""XLA:CPU's limit on one collective (`--xla_cpu_collective_call_terminate_timeout_seconds`).

XLA's own default, 40 s, aborts the whole process with a C++ check failure (`rendezvous.cc
... Termination timeout for all reduce ... of 40 seconds exceeded`) when one virtual device's
thread is starved of CPU, as on a 2-core machine shared with another training: no traceback,
no `failed` status. Ten minutes is far above any step of a CPU job; a peer that really hangs
still ends the run, and a lost process of a multi-process job is stopped by its launcher.
A value already in `XLA_FLAGS` wins."""


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


def raise_cpu_collective_timeout() -> None:
    """Add `CPU_COLLECTIVE_TIMEOUT_SECONDS` to `XLA_FLAGS` unless the flag is set there.

    XLA reads `XLA_FLAGS` once, when JAX creates its first backend (the first device list),
    not when Keras imports JAX: this runs before that, in `_start_jax`.
    """
    flag = "xla_cpu_collective_call_terminate_timeout_seconds"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{flag}={CPU_COLLECTIVE_TIMEOUT_SECONDS}".strip()


COORDINATOR_TIMEOUT_ENV = "EMOTIONKIT_COORDINATOR_TIMEOUT"
"""Seconds a process other than 0 waits for the coordinator to listen (default 300, JAX's own
`initialization_timeout`) before it stops with exit code 2."""


def jax_coordinator() -> tuple[str, str] | None:
    """`(variable, host:port)` of the JAX coordinator for processes 1 … N-1, else None."""
    if int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID") or 0) == 0:
        return None  # process 0 is the coordinator
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS"):
        if os.environ.get(name):
            return name, os.environ[name].split(",")[0].strip()
    return None  # SLURM / Open MPI / Cloud TPU detection: JAX's own


def tf_chief_worker() -> tuple[str, str] | None:
    """`("TF_CONFIG", host:port)` of worker 0 for the other workers, else None."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    if not workers or int(config.get("task", {}).get("index", 0)) == 0:
        return None
    return "TF_CONFIG", str(workers[0])


def wait_for_coordinator(found: tuple[str, str] | None) -> None:
    """Wait until the coordinator's `host:port` accepts a TCP connection.

    JAX's own wait ends in a C++ abort (`CoordinationServiceAgent::Connect`, exit code 134)
    and TensorFlow's worker waits without end: neither names what to fix. This check comes
    first, before anything is written, and names the variable.

    Args:
        found: `(variable, host:port)` from `jax_coordinator` or `tf_chief_worker`.

    Raises:
        EmotionkitError: nobody listened there within `EMOTIONKIT_COORDINATOR_TIMEOUT` s.
    """
    import socket
    import time

    if found is None:
        return
    name, address = found
    host, _, port = address.rpartition(":")
    timeout = float(os.environ.get(COORDINATOR_TIMEOUT_ENV) or 300)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise EmotionkitError(
                    f"{name}: no coordinator listened at {address} within {timeout:g} s "
                    f"({COORDINATOR_TIMEOUT_ENV}). Start process 0 there, or fix {name}."
                ) from None
            time.sleep(0.5)


SHUTDOWN_TIMEOUT_SECONDS = 3600
"""How long a finished JAX process waits at exit for the others (`jax.distributed`'s shutdown
barrier; JAX's default is 300 s).

Every process trains; then process 0 alone evaluates and exports (the others' copies would be
thrown away), while the others wait at the barrier. On a busy machine or with a large model
that takes more than 5 minutes, and a timed-out barrier fails a run that had succeeded. A
process that dies instead is stopped by its launcher (`emotionkit launch`, srun, the job
controller), so a long wait never hides a failure."""


def initialize_jax_processes() -> None:
    """`keras.distribution.initialize()`'s call to `jax.distributed.initialize`, from the same
    `KERAS_DISTRIBUTION_*` variables, with `SHUTDOWN_TIMEOUT_SECONDS` (Keras passes none).

    Unset variables are left to JAX: `JAX_COORDINATOR_ADDRESS`, then SLURM / Cloud TPU /
    Open MPI detection. Keras' shared random seed is not needed: the recipe's seed is set
    right after.
    """
    import jax

    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or ""
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    rank = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    jax.distributed.initialize(
        coordinator_address=addresses.split(",")[0].strip() or None,
        num_processes=int(count) if count else None,
        process_id=int(rank) if rank else None,
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_SECONDS,
    )


def _start_jax(devices: str | int) -> Distribution:
    import keras

    raise_cpu_collective_timeout()

    if jax_multihost_requested():
        wait_for_coordinator(jax_coordinator())
        initialize_jax_processes()
    import jax

    chosen = [
        device
        for process in range(jax.process_count())
        for device in _first(
            [d for d in jax.devices() if d.process_index == process], devices, "JAX"
        )
    ]
    names = [f"{device.platform}:{device.id}" for device in chosen]
    # Several processes: each reads its slice of every batch (`this_process_share`), not
    # Keras' auto-sharding, which needs a statically known batch size (a `map` after `batch`
    # hides it) and deals a short last batch to one process only (the others then wait).
    engine = keras.distribution.DataParallel(
        devices=names, auto_shard_dataset=jax.process_count() == 1
    )
    return Distribution(
        "data_parallel", "jax", names, jax.process_count(), jax.process_index(), engine
    )


def _start_tensorflow(devices: str | int) -> Distribution:
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # One worker per host; every local GPU of a worker is a replica. tf.distribute
        # auto-shards the tf.data pipeline across workers (AutoShardPolicy.AUTO).
        wait_for_coordinator(tf_chief_worker())
        strategy = _reducing_structures(tf.distribute.MultiWorkerMirroredStrategy())
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


def _reducing_structures(strategy: Any) -> Any:
    """`strategy.reduce` applied leaf by leaf to a structure of per-replica values.

    Keras' TensorFlow trainer (`_maybe_symbolic_build`, Keras 3.15) reduces the first
    `(images, targets)` batch in one `strategy.reduce` call to learn its shapes;
    `MultiWorkerMirroredStrategy.reduce` takes a single value and fails on the tuple
    ("Attempt to convert a value (PerReplica ...) to a Tensor"). Every worker makes the same
    calls in the same order, so reducing each leaf keeps the collectives matched. The same
    trainer reduces each step's scalar logs with `axis=0`, which a scalar does not have:
    a scalar is averaged over the replicas (`axis=None`).
    """
    import tensorflow as tf

    reduce_one = strategy.reduce

    def reduce_leaf(reduce_op: Any, leaf: Any, axis: Any) -> Any:
        local = strategy.experimental_local_results(leaf)[0]
        scalar = getattr(getattr(local, "shape", None), "rank", None) == 0
        return reduce_one(reduce_op, leaf, axis=None if scalar else axis)

    def reduce(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        return tf.nest.map_structure(lambda leaf: reduce_leaf(reduce_op, leaf, axis), value)

    strategy.reduce = reduce
    return strategy


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


def this_process_share(dataset: Any, distribution: Distribution) -> Any:
    """Under multi-process JAX, this process's slice of every global batch (else `dataset`).

    Process p of P keeps rows `[p * n / P, (p + 1) * n / P)` of each batch of n rows: the
    processes read disjoint shares of every step, and Keras puts them back together in rank
    order (`jax.make_array_from_process_local_data`), so the global batch is the one a
    single process would see. n divides by P: training batches are full and
    `even_validation_batches` trims the last validation batch to a multiple of the devices.
    TensorFlow's `MultiWorkerMirroredStrategy` shards the dataset itself.
    """
    if distribution.backend != "jax" or distribution.num_processes == 1:
        return dataset
    import tensorflow as tf

    count, index = distribution.num_processes, distribution.process_index

    def share(*batch: Any) -> Any:
        rows = tf.shape(tf.nest.flatten(batch)[0])[0] // count
        return tf.nest.map_structure(lambda t: t[index * rows : (index + 1) * rows], batch)

    return dataset.map(share).prefetch(tf.data.AUTOTUNE)


def this_process_stream(
    stream: Callable[[range], Any], distribution: Distribution
) -> Callable[[range], Any]:
    """`this_process_share` of a train stream (a function of the epochs it covers)."""
    if distribution.backend != "jax" or distribution.num_processes == 1:
        return stream
    return lambda epochs: this_process_share(stream(epochs), distribution)
