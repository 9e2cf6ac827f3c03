"""Export stage: best checkpoint -> SavedModel + ONNX, each checked against Keras.

Both converters need TensorFlow: ONNX goes through tf2onnx, which on the JAX backend would
need the heavy `jax2onnx`. A `.keras` file saved under JAX loads under TensorFlow with the same
outputs, so a JAX run exports in a child process running the TensorFlow backend. The parity
reference (validation images + the training backend's logits of them, of their mirror images
and their ten-view mean) is written by the training run, so the check compares the artifacts
with the model as it was trained, across backends; with `export.tta: hflip` the reference is
the mean of the plain and mirror logits, with `hflip_crops` the stored ten-view mean (computed
on NumPy views, `tta.views`, so it does not share the in-graph TensorFlow views).

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

from emotionkit.errors import EmotionkitError, ExportError
from emotionkit.evaluate.metrics import softmax
from emotionkit.evaluate.target_metrics import sigmoid
from emotionkit.export_formats import (
    artifact_metadata,
    is_multi_label,
    onnx_outputs,
    quantize_int8,
    saved_model_outputs,
    write_onnx,
    write_saved_model,
)
from emotionkit.export_spec import ExportSpec
from emotionkit.models.float32 import load_float32_model
from emotionkit.recipe import load_recipe
from emotionkit.runs import package_versions, write_json
from emotionkit.tta import mean_logits, tta_logits

REFERENCE_FILE = "parity_reference.npz"
CROPS_KEY = "hflip_crops_logits"  # the reference's ten-view mean logits


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
    return _export_in_child_process(run_dir, spec)


def write_parity_reference(
    run_dir: Path,
    images: np.ndarray,
    logits: np.ndarray,
    *,
    mirror_logits: np.ndarray,
    crops_logits: np.ndarray | None = None,
) -> None:
    """Save the images and the training backend's logits that exports are checked against.

    Args:
        run_dir: the run directory; the file is `export/parity_reference.npz`.
        images: validation images (N, H, W, C), raw pixels.
        logits: the trained model's logits of `images`.
        mirror_logits: its logits of the mirror images `images[:, :, ::-1]`, the reference of
            an `export.tta: hflip` export (mean of both), so the TTA setting can change at
            export time.
        crops_logits: its mean logits over the ten `hflip_crops` views of `images`
            (`tta.tta_logits`), the reference of an `export.tta: hflip_crops` export.
    """
    export_dir = run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"images": images, "logits": logits, "mirror_logits": mirror_logits}
    if crops_logits is not None:
        arrays[CROPS_KEY] = crops_logits
    np.savez_compressed(export_dir / REFERENCE_FILE, **arrays)


def export_with_tensorflow(run_dir: Path, spec: ExportSpec) -> dict[str, Any]:
    """Build, check and publish the artifacts; needs the TensorFlow backend in this process."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    export_dir = run_dir / "export"
    staging = export_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = load_float32_model(run_dir / "checkpoints" / "best.keras")
    images, reference = _parity_reference(export_dir, spec.tta)
    metadata = artifact_metadata(run_dir, model, spec.tta)
    multi_label = is_multi_label(metadata)
    keras_logits = tta_logits(lambda x: np.asarray(model.predict_on_batch(x)), images, spec.tta)
    checks: dict[str, Any] = {
        "keras_tensorflow": _compare(keras_logits, reference, spec.parity_atol)
    }
    if "saved_model" in spec.formats:
        write_saved_model(model, staging / "saved_model", metadata, spec.tta)
        checks["saved_model"] = _check_artifact(
            lambda x: saved_model_outputs(staging / "saved_model", x), images, reference, spec,
            multi_label,
        )  # fmt: skip
    if {"onnx", "onnx_int8"} & set(spec.formats):
        conversion = write_onnx(model, staging / "model.onnx", metadata, spec.opset, spec.tta)
        checks["onnx"] = _check_artifact(
            lambda x: onnx_outputs(staging / "model.onnx", x), images, reference, spec,
            multi_label,
        )  # fmt: skip
        checks["onnx"].update(conversion)
    if "onnx_int8" in spec.formats:
        checks["onnx_int8"] = _export_int8(run_dir, staging, metadata, spec)
        if "onnx" not in spec.formats:
            (staging / "model.onnx").unlink()
            checks["onnx"]["kept"] = False  # built only as the INT8 source
    report = {
        "passed": all(check["passed"] for check in checks.values()),
        "parity_samples": len(images),
        "atol": spec.parity_atol,
        "checks": checks,
        "metadata": metadata,
        "exported_by": package_versions(),
    }
    _publish(staging, export_dir, report)
    return report


def _check_artifact(
    outputs_of: Any, images: np.ndarray, reference: np.ndarray, spec: ExportSpec,
    multi_label: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Logits vs the training run's at batch sizes 1, 5 and all, and the output contract.

    Several batch sizes because a graph traced with a fixed batch, or batch-dependent ops,
    would only show up there.
    """
    full = outputs_of(images)
    if set(full) != {"logits", "probabilities"}:
        return {"passed": False, "reason": f"outputs are {sorted(full)}, not logits/probabilities"}
    logits = [full["logits"]]
    logits += [outputs_of(images[:n])["logits"] for n in (1, 5) if n < len(images)]
    check = _compare(np.concatenate(logits), np.concatenate([reference[: len(x)] for x in logits]),
                     spec.parity_atol)  # fmt: skip
    activation = sigmoid if multi_label else softmax
    activation_error = float(np.abs(full["probabilities"] - activation(full["logits"])).max())
    check["batch_sizes"] = sorted({len(x) for x in logits})
    name = "probabilities_match_" + ("sigmoid" if multi_label else "softmax")
    check[name] = activation_error < 1e-5
    check["passed"] = check["passed"] and check[name]
    return check


def _export_int8(
    run_dir: Path, staging: Path, metadata: dict[str, str], spec: ExportSpec
) -> dict[str, Any]:
    """Quantise the float ONNX; gate on validation accuracy drop and top-1 agreement."""
    calibration, val_images, val_labels = _int8_data(run_dir, spec.int8_calibration_per_class)
    quantize_int8(staging / "model.onnx", staging / "model.int8.onnx", calibration, metadata)
    float_logits = onnx_outputs(staging / "model.onnx", val_images)["logits"]
    int8_logits = onnx_outputs(staging / "model.int8.onnx", val_images)["logits"]
    gate = int8_gate(float_logits, int8_logits, val_labels, spec.int8_max_drop)
    return {"calibration_images": len(calibration), **gate}


def int8_gate(
    float_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray, max_drop: float
) -> dict[str, Any]:
    """INT8 passes when its validation accuracy is at most `max_drop` points below float's.

    Top-1 agreement is recorded, not gated: on a hard task quantisation flips some
    borderline images both ways, which costs agreement but not accuracy.
    """
    float_accuracy = float((float_logits.argmax(-1) == labels).mean())
    int8_accuracy = float((int8_logits.argmax(-1) == labels).mean())
    drop_points = 100.0 * (float_accuracy - int8_accuracy)
    return {
        "validation_images": len(labels),
        "float_accuracy": float_accuracy,
        "int8_accuracy": int8_accuracy,
        "accuracy_drop_points": drop_points,
        "max_drop_points": max_drop,
        "top1_agreement": float((float_logits.argmax(-1) == int8_logits.argmax(-1)).mean()),
        "passed": bool(drop_points <= max_drop + 1e-9),  # 100 * (a - b) rounds up
    }


def _int8_data(run_dir: Path, per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced calibration images from train, and the validation split, as in the run."""
    from emotionkit.data.sources import load_data

    recipe = load_recipe(run_dir / "recipe.yaml")
    split_file = run_dir / "split.json"
    data = load_data(recipe.data, recipe.seed, split_file if split_file.exists() else None)
    train, val = data.splits["train"], data.splits["val"]
    rng = np.random.default_rng(recipe.seed)
    labels = train.hard_labels
    picks = [
        rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(data.num_classes)
    ]
    chosen = np.sort(np.concatenate(picks))
    as_float = np.float32
    return train.images[chosen].astype(as_float), val.images.astype(as_float), val.hard_labels


def _parity_reference(export_dir: Path, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """The stored images and the logits the artifacts must give under `export.tta`."""
    path = export_dir / REFERENCE_FILE
    if not path.exists():
        raise ExportError(
            f"{path} is missing: it is written by `emotionkit train`; re-run the training or "
            "restore the file."
        )
    needed = {"none": "logits", "hflip": "mirror_logits", "hflip_crops": CROPS_KEY}[tta]
    with np.load(path) as stored:
        if needed not in stored:
            raise ExportError(
                f"export.tta: {tta} needs the {needed} of the training backend, which {path} "
                "lacks (the run was trained before that export.tta existed); export with "
                "another export.tta (`none` always works) or re-run the training."
            )
        images, logits = stored["images"].astype(np.float32), stored["logits"]
        if tta == "hflip":
            return images, mean_logits((logits, stored["mirror_logits"]))
        return images, np.asarray(stored[needed])


def _compare(candidate: np.ndarray, reference: np.ndarray, atol: float) -> dict[str, Any]:
    max_abs_diff = float(np.abs(candidate - reference).max())
    agreement = float((candidate.argmax(-1) == reference.argmax(-1)).mean())
    return {
        "max_abs_diff": max_abs_diff,
        "top1_agreement": agreement,
        "passed": bool(max_abs_diff <= atol and agreement == 1.0),
    }


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


def _export_in_child_process(run_dir: Path, spec: ExportSpec) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "emotionkit.export", str(run_dir), spec.model_dump_json()],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ExportError(lines[-1] if lines else f"export child exited {result.returncode}")
    return dict(json.loads((run_dir / "export" / "export.json").read_text()))


def _main(argv: list[str]) -> int:
    """Child-process entry point: `python -m emotionkit.export RUN_DIR [SPEC_JSON]`.

    Runs on the TensorFlow backend; SPEC_JSON (an `ExportSpec`) defaults to the run's recipe.
    """
    os.environ["KERAS_BACKEND"] = "tensorflow"
    run_dir = Path(argv[0])
    spec = (
        ExportSpec.model_validate_json(argv[1])
        if len(argv) > 1
        else load_recipe(run_dir / "recipe.yaml").export
    )
    try:
        export_with_tensorflow(run_dir, spec)
    except EmotionkitError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
