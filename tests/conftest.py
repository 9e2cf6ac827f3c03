"""Shared test setup: the backend comes from KERAS_BACKEND (nox parametrises it)."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from emotionkit.runtime import apply_tensorflow_workarounds

# Must happen before anything imports TensorFlow (see emotionkit.runtime).
apply_tensorflow_workarounds()
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Decoded-image cache in a throwaway folder, not the user's ~/.cache: made once per session
# (xdist workers and child processes inherit the variable) and removed when it ends.
if "EMOTIONKIT_CACHE_DIR" not in os.environ:
    _image_cache = tempfile.mkdtemp(prefix="emotionkit-cache-")
    os.environ["EMOTIONKIT_CACHE_DIR"] = _image_cache
    atexit.register(shutil.rmtree, _image_cache, ignore_errors=True)
# JAX compiles every new shape and step with XLA:CPU, and the tests build the same tiny ResNet
# again and again, in this process and in the child processes they start (CLI runs, the killed
# training, cross-backend loads): most of the JAX run was compile time. Two settings, neither of
# which changes what a test computes, only how long XLA takes to produce it:
# - a persistent compilation cache in a fresh folder per session, shared with the children
#   (environment variables, which JAX reads at import and child processes inherit); with a
#   size limit JAX guards it with a file lock, so concurrent processes never read a half-written
#   entry (the limit needs `filelock`, a test dependency);
# - no LLVM optimisation of the kernels XLA:CPU generates (compiles ~6x faster; these tiny
#   models spend far longer compiling than running). XLA:CPU does not enable fast-math at any
#   level, so the arithmetic keeps its IEEE semantics; every process of a session (and so every
#   cross-process comparison) uses the same setting.
# Set either variable yourself to override it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="emotionkit-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    if importlib.util.find_spec("filelock") is not None:
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2**31))
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    _flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()

REPO = Path(__file__).resolve().parents[1]
BACKEND = os.environ["KERAS_BACKEND"]

# Two stages of one block (8 and 16 filters at width 1/8): a ResNet still (stem, identity and
# projection shortcuts, a strided stage), with half the layers of four stages, so about half the
# time TensorFlow spends tracing and XLA compiling each of the suite's tiny trainings.
TINY_STAGE_BLOCKS = [1, 1]
TINY_OVERRIDES = [
    "data.source={kind: synthetic, train_size: 280, val_size: 70, test_size: 0}",
    "data.image_size=32",
    "data.batch_size=32",
    "model.width=0.125",
    f"model.stage_blocks={TINY_STAGE_BLOCKS}",
    "train.epochs=2",
    "train.schedule.warmup_epochs=0.5",
    "export.parity_samples=16",
    f"runtime.backend={BACKEND}",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    """Overrides that shrink the quickstart recipe to a seconds-long run."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def quickstart() -> Path:
    return REPO / "recipes" / "quickstart.yaml"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart recipe with TINY_OVERRIDES, trained, evaluated and exported once per
    session and shared by the xdist workers: the first test to need it trains it, under a file
    lock, the others wait for it. Read it only; a test that writes into a run works on a copy.
    """
    from filelock import FileLock

    from emotionkit import load_recipe, train

    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the session's folder, above each worker's own
    record = root / "tiny_run.txt"
    with FileLock(str(root / "tiny_run.lock")):
        if not record.is_file():
            recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", TINY_OVERRIDES)
            record.write_text(str(train(recipe, runs_dir=root / "tiny_runs").run_dir))
    return Path(record.read_text())
