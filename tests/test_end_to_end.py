"""Train -> evaluate -> export -> ONNX/SavedModel parity on a tiny model, per backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from emotionkit import load_recipe
from emotionkit.errors import ExportError
from emotionkit.export import export_run
from tests.conftest import BACKEND
from tests.test_cli import run_cli, run_cli_concurrently

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tiny_run: Path) -> Path:
    """The session's tiny run (tests/conftest.py): these tests only read it, or copy it."""
    return tiny_run


def test_run_directory_is_complete(trained_run: Path) -> None:
    for name in (
        "recipe.yaml",
        "manifest.json",
        "history.csv",
        "metrics.json",
        "labels_mapping.json",
        "checkpoints/best.keras",
        "checkpoints/last.keras",
        "export/saved_model/saved_model.pb",
        "export/model.onnx",
        "export/export.json",
        "model.json",
    ):
        assert (trained_run / name).exists(), name
    manifest = json.loads((trained_run / "manifest.json").read_text())
    model_json = json.loads((trained_run / "model.json").read_text())
    assert model_json["parameters"] == manifest["parameters"]
    assert model_json["flops_per_image"] > 0 and model_json["feature_map"] == [
        16,
        16,
        16,
    ]  # 32 px, stride 2 once
    assert manifest["pretrained"] is None and manifest["frozen"] == []
    assert manifest["status"] == "completed"
    assert manifest["runtime"]["backend"] == BACKEND
    assert manifest["versions"]["keras"]
    assert manifest["data"]["splits"]["val"]["size"] == 70
    history = (trained_run / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "accuracy"] and len(history) == 3
    assert "val_macro_f1" in history[0] and "lr" in history[0]


def test_metrics_are_real_numbers(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    val = metrics["val"]
    assert 0.0 <= val["accuracy"] <= 1.0 and 0.0 <= val["macro_f1"] <= 1.0
    assert sum(map(sum, val["confusion_matrix"])) == 70
    assert metrics["best_epoch"] in (1, 2)


def test_exports_match_keras(trained_run: Path) -> None:
    report = json.loads((trained_run / "export" / "export.json").read_text())
    assert report["passed"] is True
    for check in report["checks"].values():
        assert check["max_abs_diff"] <= 1e-4 and check["top1_agreement"] == 1.0
    # independent re-check of the shipped ONNX file against the reference logits
    with np.load(trained_run / "export" / "parity_reference.npz") as reference:
        session = ort.InferenceSession(str(trained_run / "export" / "model.onnx"))
        logits = session.run(None, {session.get_inputs()[0].name: reference["images"]})[0]
        np.testing.assert_allclose(logits, reference["logits"], atol=1e-4)
    assert session.get_inputs()[0].shape[0] in (None, "unk__0") or isinstance(
        session.get_inputs()[0].shape[0], str
    )


def test_cli_export_reexports_a_run(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    (copy / "export" / "model.onnx").unlink()
    result = run_cli("export", str(copy))
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(json.loads(result.stdout)) == {"keras_tensorflow", "saved_model", "onnx"}
    assert (copy / "export" / "model.onnx").is_file()


def test_failed_parity_gate_keeps_no_artifact(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    shutil.rmtree(copy / "export" / "saved_model")
    (copy / "export" / "model.onnx").unlink()
    spec = load_recipe(copy / "recipe.yaml", ["export.parity_atol=1e-15"]).export
    # Corrupt the reference so no converter can match it.
    with np.load(copy / "export" / "parity_reference.npz") as stored:
        images, logits = stored["images"], stored["logits"] + 1.0
    np.savez(copy / "export" / "parity_reference.npz", images=images, logits=logits)
    with pytest.raises(ExportError, match="parity check failed"):
        export_run(copy, spec)
    assert not (copy / "export" / "model.onnx").exists()
    assert not (copy / "export" / "saved_model").exists()
    assert json.loads((copy / "export" / "export.json").read_text())["passed"] is False


def test_cli_train_prints_run_dir_last(tmp_path: Path) -> None:
    """The real console script; export is covered above, so skip it here to save time.

    The training settings are the fixture's, so under JAX these runs find its compiled steps in
    the session's compilation cache (see conftest).
    """
    from tests.conftest import REPO, TINY_OVERRIDES

    args = [
        "train",
        str(REPO / "recipes" / "quickstart.yaml"),
        *TINY_OVERRIDES,
        "export.formats=[]",
        "--runs-dir",
        str(tmp_path),
    ]
    # Both runs at once: each spends most of its time starting up, and the second one's only
    # job is to show that the same recipe and --runs-dir never reuse a run directory.
    first, second = run_cli_concurrently(args, args)
    assert first.returncode == 0, first.stderr[-2000:]
    # Quiet by default: no native framework log lines, no third-party Python warnings.
    output = (first.stdout + first.stderr).splitlines()
    assert not [line for line in output if line[:5] in ("I0000", "W0000", "E0000")]
    assert not [line for line in output if "Warning" in line or "WARNING" in line]
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "quickstart"
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert second.returncode == 0, second.stderr[-2000:]
    assert Path(second.stdout.strip().splitlines()[-1]) != run_dir  # never overwritten
