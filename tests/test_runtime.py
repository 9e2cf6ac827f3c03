"""Backend, precision and hardware resolution (no framework import needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emotionkit import runtime
from emotionkit.errors import EmotionkitError
from emotionkit.runtime import RuntimeSpec


def test_explicit_backend_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert runtime.resolve_backend("jax")[0] == "jax"


def test_auto_backend_follows_env_then_hardware(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert runtime.resolve_backend("auto") == ("jax", "KERAS_BACKEND environment variable")
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path / "none")
    backend, reason = runtime.resolve_backend("auto")
    assert backend == "tensorflow" and "CPU" in reason
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path / "gpus")
    monkeypatch.setattr(runtime, "backend_sees_gpu", lambda backend: True)
    assert runtime.resolve_backend("auto")[0] == "jax"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert runtime.resolve_backend("auto")[0] == "tensorflow"


@pytest.mark.parametrize(
    ("sees", "backend", "says"),
    [
        ({"jax", "tensorflow"}, "jax", "JAX sees the GPU"),
        ({"tensorflow"}, "tensorflow", "JAX cannot use the GPU (pip install 'jax[cuda12]'"),
        (set(), "tensorflow", "neither JAX nor TensorFlow can use it"),
    ],
)
def test_auto_asks_the_frameworks_whether_they_see_the_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sees: set[str], backend: str, says: str
) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    (tmp_path / "0000:01:00.0").mkdir()
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path)
    monkeypatch.setattr(runtime, "backend_sees_gpu", lambda name: name in sees)
    choice = runtime.resolve_runtime(RuntimeSpec())
    assert choice.backend == backend and says in choice.backend_reason
    assert choice.gpu_visible == bool(sees)  # no GPU usable: float32 on the CPU
    assert choice.precision == ("float32" if not sees else choice.precision)


def test_missing_backend_or_gpu_is_refused_with_the_install_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runtime, "backend_installed", lambda name: name != "jax")
    with pytest.raises(
        EmotionkitError, match=r"jax is not installed: pip install 'emotionkit\[jax\]'"
    ):
        runtime.resolve_runtime(RuntimeSpec(backend="jax"))
    monkeypatch.setattr(runtime, "backend_installed", lambda name: True)
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path / "none")
    with pytest.raises(
        EmotionkitError, match=r"runtime.device=gpu: the jax backend sees no GPU.*jax\[cuda12\]"
    ):
        runtime.resolve_runtime(RuntimeSpec(backend="jax", device="gpu"))


def test_unsupported_env_backend_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(EmotionkitError, match="KERAS_BACKEND='torch'"):
        runtime.resolve_backend("auto")


def test_precision_auto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert runtime.resolve_precision("auto", gpu=False)[0] == "float32"
    gpu = tmp_path / "0000:01:00.0"
    gpu.mkdir()
    (gpu / "information").write_text("Model: \t NVIDIA H100 80GB HBM3\n")
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path)
    assert runtime.resolve_precision("auto", gpu=True)[0] == "mixed_bfloat16"
    (gpu / "information").write_text("Model: \t Tesla T4\n")
    assert runtime.resolve_precision("auto", gpu=True)[0] == "mixed_float16"
    assert runtime.resolve_precision("float32", gpu=True)[0] == "float32"


def test_resolve_runtime_on_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runtime, "NVIDIA_GPU_DIR", tmp_path / "none")
    choice = runtime.resolve_runtime(RuntimeSpec(backend="jax"))
    assert (choice.backend, choice.precision, choice.jit_compile, choice.gpu_visible) == (
        "jax",
        "float32",
        "auto",
        False,
    )
    assert set(choice.as_dict()) >= {"backend", "backend_reason", "precision"}


def test_backend_switch_after_keras_import_is_a_clear_error() -> None:
    code = (
        "import os; os.environ['KERAS_BACKEND']='tensorflow'; import keras\n"
        "from emotionkit.runtime import activate_backend\n"
        "activate_backend('tensorflow')\n"
        "try:\n    activate_backend('jax')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "EmotionkitError" in out.stdout and "already imported" in out.stdout
