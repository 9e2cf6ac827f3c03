"""Export stage: best checkpoint -> SavedModel + ONNX, each checked against Keras.

Both converters need TensorFlow: ONNX goes through tf2onnx, which on the JAX backend would
need the heavy `jax2onnx`. A `.keras` file saved under JAX loads under TensorFlow with the same
outputs, so a JAX run exports in a child process running the TensorFlow backend. The parity
reference (validation images + the training backend's logits) is written by the training run,
so the check compares the artifacts with the model as it was trained, across backends.

Artifacts are built in `export/.staging/` and moved into `export/` only when their parity
check passes: a failed export leaves `export.json` (with the numbers) and nothing that looks
like a valid model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import ExportError
from emotionkit.recipe import ExportSpec, load_recipe
from emotionkit.runs import package_versions, write_json

REFERENCE_FILE = "parity_reference.npz"


def export_run(run_dir: Path, spec: ExportSpec | None = None) -> dict[str, Any]:
    """Export `run_dir/checkpoints/best.keras` to the formats of `spec` and gate on parity.

    Args:
        run_dir: a run directory written by `emotionkit train`.
        spec: the export section; defaults to the one in `run_dir/recipe.yaml`.

    Returns:
        The content of `export/export.json`.

    Raises:
        ExportError: a parity check failed or a converter refused the model.
    """
    run_dir = Path(run_dir)
    spec = spec or load_recipe(run_dir / "recipe.yaml").export
    if not spec.formats:
        return {}
    if _active_backend() == "tensorflow":
        return export_with_tensorflow(run_dir, spec)
    return _export_in_child_process(run_dir)


def write_parity_reference(run_dir: Path, images: np.ndarray, logits: np.ndarray) -> None:
    """Save the images and the training backend's logits that exports are checked against."""
    export_dir = run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(export_dir / REFERENCE_FILE, images=images, logits=logits)


def export_with_tensorflow(run_dir: Path, spec: ExportSpec) -> dict[str, Any]:
    """Build, check and publish the artifacts; needs the TensorFlow backend in this process."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    export_dir = run_dir / "export"
    staging = export_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = load_float32_model(run_dir / "checkpoints" / "best.keras")
    images, reference = _parity_reference(export_dir, model)
    # Calling the model also builds its traced signature, which the ONNX exporter needs.
    reloaded = np.asarray(model.predict_on_batch(images))
    checks: dict[str, Any] = {"keras_tensorflow": _compare(reloaded, reference, spec.parity_atol)}
    if "saved_model" in spec.formats:
        model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        checks["saved_model"] = _compare(
            _saved_model_logits(staging / "saved_model", images), reference, spec.parity_atol
        )
    if "onnx" in spec.formats:
        model.export(str(staging / "model.onnx"), format="onnx", verbose=False)
        checks["onnx"] = _compare(
            _onnx_logits(staging / "model.onnx", images), reference, spec.parity_atol
        )
        checks["onnx"]["opset"] = _onnx_opset(staging / "model.onnx")
    report = {
        "passed": all(check["passed"] for check in checks.values()),
        "parity_samples": len(images),
        "atol": spec.parity_atol,
        "checks": checks,
        "exported_by": package_versions(),
    }
    _publish(staging, export_dir, report)
    return report


def load_float32_model(path: Path) -> Any:
    """Load a `.keras` file with every layer in float32 (converters need float32 graphs).

    Mixed-precision models keep float32 variables, so rebuilding the architecture under a
    float32 policy and copying the weights loses nothing.
    """
    import keras

    model = keras.saving.load_model(path, compile=False)
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    config = _force_float32(model.get_config())
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _force_float32(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return {**node, "config": {**node.get("config", {}), "name": "float32"}}
        return {key: _force_float32(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_force_float32(item) for item in node]
    return node


def _parity_reference(export_dir: Path, model: Any) -> tuple[np.ndarray, np.ndarray]:
    path = export_dir / REFERENCE_FILE
    if not path.exists():
        raise ExportError(
            f"{path} is missing: it is written by `emotionkit train`; re-run the training or "
            "restore the file."
        )
    with np.load(path) as stored:
        images, logits = stored["images"].astype(np.float32), stored["logits"]
    return images, logits


def _compare(candidate: np.ndarray, reference: np.ndarray, atol: float) -> dict[str, Any]:
    max_abs_diff = float(np.abs(candidate - reference).max())
    agreement = float((candidate.argmax(-1) == reference.argmax(-1)).mean())
    return {
        "max_abs_diff": max_abs_diff,
        "top1_agreement": agreement,
        "passed": bool(max_abs_diff <= atol and agreement == 1.0),
    }


def _saved_model_logits(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(images)))


def _onnx_logits(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: images})[0])


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def _publish(staging: Path, export_dir: Path, report: dict[str, Any]) -> None:
    write_json(export_dir / "export.json", report)
    if not report["passed"]:
        shutil.rmtree(staging)
        failed = {name: c for name, c in report["checks"].items() if not c["passed"]}
        raise ExportError(
            f"Export parity check failed for {sorted(failed)}: {json.dumps(failed)}; no "
            f"artifact was kept (details in {export_dir / 'export.json'})."
        )
    for item in staging.iterdir():
        target = export_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()


def _active_backend() -> str:
    if "keras" in sys.modules:
        return str(sys.modules["keras"].backend.backend())
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _export_in_child_process(run_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "emotionkit.export", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ExportError(lines[-1] if lines else f"export child exited {result.returncode}")
    return dict(json.loads((run_dir / "export" / "export.json").read_text()))


def _main(argv: list[str]) -> int:
    """Child-process entry point: `python -m emotionkit.export RUN_DIR` (TensorFlow backend)."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    try:
        export_with_tensorflow(Path(argv[0]), load_recipe(Path(argv[0]) / "recipe.yaml").export)
    except ExportError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
