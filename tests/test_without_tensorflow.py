"""A JAX host without TensorFlow (as GPU hosts set up for JAX often are) trains the quickstart.

The child process refuses every `import tensorflow` with a meta-path hook, then runs the
real CLI: the data are batched with NumPy, the augmentation runs in the jitted train step,
and export is deferred with one line naming the command to run where TensorFlow is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND, REPO, TINY_OVERRIDES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BACKEND != "jax", reason="a JAX-only host: runs in the JAX session"),
]

WITHOUT_TENSORFLOW = """
import atexit, sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTensorFlow())
atexit.register(lambda: print("tensorflow imported:", "tensorflow" in sys.modules))
from emotionkit.cli import main
sys.argv = ["emotionkit", *sys.argv[1:]]
main()
"""


def test_quickstart_trains_on_jax_without_tensorflow(tmp_path: Path) -> None:
    overrides = [
        *(o for o in TINY_OVERRIDES if not o.startswith("runtime.backend")),
        "runtime.backend=jax",
        "data.augment=[flip, {affine: {degrees: 10}}, {mixup: {p: 0.5}}]",
        "data.balance=class_weights",  # Keras takes no class_weight with a Python generator
    ]
    command = [sys.executable, "-c", WITHOUT_TENSORFLOW, "train",
               str(REPO / "recipes" / "quickstart.yaml"), *overrides]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tensorflow imported: False" in result.stdout
    deferral = [line for line in result.stdout.splitlines() if "export deferred" in line]
    assert len(deferral) == 1 and "emotionkit export runs/quickstart/" in deferral[0]
    (run_dir,) = (tmp_path / "runs" / "quickstart").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["export"] == {"deferred": True, "formats": ["saved_model", "onnx"]}
    assert manifest["augment_on"]["placement"] == "device"
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["val"]["num_images"] == 70
    assert not (run_dir / "export" / "model.onnx").exists()
