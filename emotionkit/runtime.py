"""Runtime: pick the Keras backend before Keras is imported, then precision, XLA and seeds.

Keras reads `KERAS_BACKEND` once, at its first import, so the backend must be settled before
anything imports `keras`. Hardware is detected from the operating system (NVIDIA driver files,
`CUDA_VISIBLE_DEVICES`) without importing TensorFlow or JAX, which would cost seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from emotionkit.errors import EmotionkitError
from emotionkit.installed import backend_installed, tensorflow_available
from emotionkit.sections import Section

if TYPE_CHECKING:
    from emotionkit.distribution import Distribution

NVIDIA_GPU_DIR = Path("/proc/driver/nvidia/gpus")


class RuntimeSpec(Section):
    """Where and how the computation runs."""

    backend: Literal["auto", "jax", "tensorflow"] = Field(
        "auto",
        description="Keras backend. `auto`: KERAS_BACKEND if set, else JAX when an NVIDIA GPU "
        "is visible and TensorFlow on CPU-only machines (TensorFlow's oneDNN kernels train a "
        "ResNet-18 about twice as fast as XLA:CPU on a 2-core machine: docs/benchmarks.md).",
    )
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = Field(
        "auto",
        description="Compute precision. `auto`: mixed_bfloat16 on GPUs with bf16 support "
        "(compute capability >= 8.0), mixed_float16 on older GPUs, float32 on CPU (bf16 is "
        "slower than float32 on CPUs without AMX).",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA compilation of the train step. `auto`: Keras' own choice."
    )
    distribution: Literal["none", "data_parallel"] = Field(
        "none",
        description="`data_parallel`: replicate the model on `devices` and split each "
        "`data.batch_size` (the global batch) evenly across them, with Keras' "
        "`DataParallel` (JAX) or `tf.distribute.MirroredStrategy` (TensorFlow; "
        "`MultiWorkerMirroredStrategy` when `TF_CONFIG` is set). Multi-host set-up: "
        "docs/distributed.md.",
    )
    device: Literal["auto", "gpu", "cpu"] = Field(
        "auto",
        description="`gpu`: require a GPU that the chosen backend can use (exit 2 with the "
        "install line otherwise); `cpu`: train on the CPU even where a GPU is visible; "
        "`auto`: the GPU when the backend sees one, else the CPU (and the run says why).",
    )
    devices: Literal["all"] | int = Field(
        "all",
        description="`data_parallel`: `all` local accelerators (GPUs/TPUs, else CPU devices) "
        "or the first N of them on each host.",
    )

    @field_validator("devices")
    @classmethod
    def _positive_device_count(cls, value: Literal["all"] | int) -> Literal["all"] | int:
        if value != "all" and value < 1:
            raise ValueError("must be `all` or a device count >= 1")
        return value

    @model_validator(mode="after")
    def _devices_need_data_parallel(self) -> RuntimeSpec:
        if self.distribution == "none" and self.devices != "all":
            raise ValueError(
                "runtime.devices applies to runtime.distribution data_parallel: set "
                "runtime.distribution=data_parallel or remove runtime.devices"
            )
        return self


@dataclass(frozen=True)
class RuntimeChoice:
    """What the runtime section resolved to, and why: printed and saved in the manifest."""

    backend: str
    backend_reason: str
    precision: str
    precision_reason: str
    jit_compile: bool | str
    gpu_visible: bool
    distribution: str = "none"
    devices: str | int = "all"
    device: str = "auto"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def nvidia_gpu_visible() -> bool:
    """True when an NVIDIA GPU is present and not hidden by CUDA_VISIBLE_DEVICES."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return NVIDIA_GPU_DIR.is_dir() and any(NVIDIA_GPU_DIR.iterdir())


def gpu_supports_bf16() -> bool:
    """True for compute capability >= 8.0 (Ampere and newer), read from nvidia-smi's driver.

    Without a readable answer we assume a modern GPU: bf16 is the safe default there and
    an old GPU is rare in 2026.
    """
    for gpu in NVIDIA_GPU_DIR.glob("*/information"):
        text = gpu.read_text(errors="ignore")
        old_models = ("Tesla K", "Tesla P", "Tesla V", "Tesla T4", "GeForce GTX", "RTX 20")
        if any(name in text for name in old_models):
            return False
    return True


GPU_INSTALL = {
    "jax": "pip install 'jax[cuda12]'",
    "tensorflow": "pip install 'tensorflow[and-cuda]'",
}
"""What makes each backend use an NVIDIA GPU (docs/install.md)."""
CPU_INSTALL = {"jax": "pip install 'emotionkit[jax]'", "tensorflow": "pip install tensorflow"}


def backend_sees_gpu(backend: str) -> bool:
    """True when `backend`'s framework itself lists a GPU (imports the framework).

    The driver files say a GPU exists; only the framework knows whether its build can use
    it (a CPU-only `jax` wheel on a GPU host is the usual case).
    """
    if not backend_installed(backend):
        return False
    try:
        if backend == "jax":
            import jax

            return any(device.platform == "gpu" for device in jax.devices())
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except RuntimeError:  # no GPU platform initialised (e.g. CUDA libraries missing)
        return False


def _require_installed(backend: str, why: str) -> None:
    if not backend_installed(backend):
        raise EmotionkitError(
            f"{why} asks for the {backend} backend, but {backend} is not installed: "
            f"{CPU_INSTALL[backend]} (CPU) or {GPU_INSTALL[backend]} (NVIDIA GPU)."
        )


def resolve_backend(requested: str, gpu: bool | None = None) -> tuple[str, str]:
    """Choose the Keras backend for `runtime.backend` and say why.

    `auto` asks the frameworks rather than guessing: JAX when it lists a GPU, else
    TensorFlow when it does, else TensorFlow on the CPU with the install line that would
    put JAX on the GPU.

    Raises:
        EmotionkitError: the requested backend is not installed (the message has the
            install line), or KERAS_BACKEND names an unsupported one.
    """
    if requested != "auto":
        _require_installed(requested, f"runtime.backend={requested}")
        return requested, "set in the recipe (runtime.backend)"
    from_env = os.environ.get("KERAS_BACKEND")
    if from_env:
        if from_env not in ("jax", "tensorflow"):
            raise EmotionkitError(
                f"KERAS_BACKEND={from_env!r} is not supported: use jax or tensorflow."
            )
        _require_installed(from_env, f"KERAS_BACKEND={from_env}")
        return from_env, "KERAS_BACKEND environment variable"
    if not (nvidia_gpu_visible() if gpu is None else gpu):
        return "tensorflow", "auto: CPU only, TensorFlow (oneDNN) trains ~2x as fast as XLA:CPU"
    if backend_sees_gpu("jax"):
        return "jax", "auto: JAX sees the GPU, JAX/XLA is the faster GPU backend"
    if backend_sees_gpu("tensorflow"):
        return "tensorflow", (
            f"auto: JAX cannot use the GPU ({GPU_INSTALL['jax']} would), TensorFlow can"
        )
    return "tensorflow", (
        "auto: a GPU is present but neither JAX nor TensorFlow can use it, so the CPU "
        f"trains; for the GPU: {GPU_INSTALL['jax']}"
    )


def resolve_precision(requested: str, gpu: bool) -> tuple[str, str]:
    """Choose the dtype policy for `runtime.precision` and say why."""
    if requested != "auto":
        return requested, "set in the recipe (runtime.precision)"
    if not gpu:
        return "float32", "auto: CPU, where bf16 is slower than float32"
    if gpu_supports_bf16():
        return "mixed_bfloat16", "auto: GPU with bf16 support"
    return "mixed_float16", "auto: GPU without bf16, float16 with loss scaling"


def resolve_runtime(spec: RuntimeSpec) -> RuntimeChoice:
    """Resolve every `auto` in the runtime section.

    No framework is imported on a machine without an NVIDIA driver; with one, the chosen
    backend is asked whether it can use the GPU.

    Raises:
        EmotionkitError: `runtime.device: gpu` and the backend cannot use a GPU (with the
            install line), or the backend is not installed.
    """
    gpu = spec.device != "cpu" and nvidia_gpu_visible()
    backend, backend_reason = resolve_backend(spec.backend, gpu)
    if gpu:  # the driver shows one; can the chosen backend use it?
        gpu = backend_sees_gpu(backend)
    if spec.device == "gpu" and not gpu:
        raise EmotionkitError(
            f"runtime.device=gpu: the {backend} backend sees no GPU here. On an NVIDIA GPU "
            f"machine: {GPU_INSTALL[backend]}; or set runtime.device=auto to train on the CPU."
        )
    precision, precision_reason = resolve_precision(spec.precision, gpu)
    jit: bool | str = spec.jit_compile
    if jit == "auto" and gpu:
        jit = True
    if spec.device == "cpu":
        backend_reason += "; runtime.device: cpu"
    return RuntimeChoice(
        backend,
        backend_reason,
        precision,
        precision_reason,
        jit,
        gpu,
        spec.distribution,
        spec.devices,
        spec.device,
    )


def activate_backend(backend: str) -> None:
    """Make `backend` the Keras backend; must run before the first `import keras`.

    Raises:
        EmotionkitError: Keras was already imported with a different backend.
    """
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != backend:
            raise EmotionkitError(
                f"runtime.backend={backend!r} was requested but Keras is already imported "
                f"with the {active!r} backend in this process. Set KERAS_BACKEND={backend} "
                "before importing keras, or start a new process."
            )
        return
    os.environ["KERAS_BACKEND"] = backend
    apply_tensorflow_workarounds()
    import_tensorflow_quietly()


VERBOSE_ENV = "EMOTIONKIT_VERBOSE"
"""Set (by `emotionkit --verbose`) to see the frameworks' native logs and warnings."""


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up chatter silenced (unless verbose).

    TensorFlow 2.21 writes absl lines (`I0000 ... oneDNN custom operations are on`, `Could not
    find cuda drivers`) to the process's stderr before `TF_CPP_MIN_LOG_LEVEL` applies, so the
    file descriptor itself is pointed at /dev/null for the import. Python exceptions are not
    affected: a failing import still raises.
    """
    if "tensorflow" in sys.modules or os.environ.get(VERBOSE_ENV) or not tensorflow_available():
        return
    with _native_stderr_silenced():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def apply_tensorflow_workarounds() -> None:
    """Environment settings TensorFlow reads at import; users may override each one.

    - TensorFlow 2.21's oneDNN AVX-512 kernels segfault in the backward pass of a ResNet
      (strided 1x1 shortcut, conv after an input Rescaling) on AVX-512 AMD EPYC CPUs;
      capping oneDNN at AVX2 avoids it at no measurable cost for these small convolutions.
    - TensorFlow's C++ start-up chatter hides the messages that matter.
    """
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
    # Level 3 also hides the "failed call to cuInit" error TF logs on every CPU-only machine.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if nvidia_gpu_visible() else "3")


def configure_frameworks(choice: RuntimeChoice, seed: int) -> Distribution:
    """Apply the backend, distribution, dtype policy and seeds (imports Keras).

    The distribution starts before the seeds: multi-host JAX and TensorFlow's multi-worker
    strategy refuse to start after the first computation, and seeding computes.

    Returns:
        The devices the run trains on and the scope to build and fit the model in.
    """
    from emotionkit.distribution import start_distribution

    if choice.device == "cpu" and "keras" not in sys.modules:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # runtime.device: cpu, before any import
    activate_backend(choice.backend)
    if choice.backend == "jax":
        _keep_tensorflow_off_the_gpu()
    import keras

    distribution = start_distribution(choice.distribution, choice.devices, choice.backend)
    keras.config.set_dtype_policy(choice.precision)
    seed_everything(seed)
    return distribution


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, the Keras backend and TensorFlow (tf.data) from one number."""
    import keras

    keras.utils.set_random_seed(seed)


def _keep_tensorflow_off_the_gpu() -> None:
    """Under JAX, TensorFlow only runs tf.data: hide the GPU so it does not grab its memory."""
    try:
        import tensorflow as tf
    except ImportError:  # a JAX-only install: no tf.data, nothing to hide
        return
    # RuntimeError: devices were already initialised by an earlier call; nothing to do.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
