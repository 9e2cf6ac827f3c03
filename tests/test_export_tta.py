"""`export.tta: hflip`: mirror test-time augmentation inside the exports and metrics.json.

One tiny run with `export.tta=hflip` (ONNX only, to stay fast). Under the JAX backend it
trains on JAX and exports in a TensorFlow child process, so the mirrored parity reference is
checked across backends too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emotionkit.errors import ExportError
from emotionkit.export import REFERENCE_FILE, _parity_reference, export_run
from emotionkit.export_formats import onnx_outputs, read_onnx_metadata
from emotionkit.recipe import load_recipe
from emotionkit.workflow.stages import describe_best
from tests.conftest import REPO, TINY_OVERRIDES


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emotionkit import workflow

    overrides = [*TINY_OVERRIDES, "export.formats=[onnx]", "export.tta=hflip"]
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", overrides)
    return workflow.train(recipe, runs_dir=tmp_path_factory.mktemp("runs")).run_dir


@pytest.fixture(scope="module")
def parity_images(tta_run: Path) -> np.ndarray:
    """The 16 validation images of the parity reference, raw pixels."""
    with np.load(tta_run / "export" / REFERENCE_FILE) as stored:
        return np.asarray(stored["images"], np.float32)


def mirror(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images[:, :, ::-1])  # NHWC: axis 2 is the width


def test_export_passes_the_gate_against_the_mirrored_reference(tta_run: Path) -> None:
    report = json.loads((tta_run / "export" / "export.json").read_text())
    assert report["passed"] is True and set(report["checks"]) == {"keras_tensorflow", "onnx"}
    assert all(check["max_abs_diff"] <= 1e-4 for check in report["checks"].values())
    with np.load(tta_run / "export" / REFERENCE_FILE) as stored:
        assert stored["mirror_logits"].shape == stored["logits"].shape == (16, 7)
    assert report["metadata"]["tta"] == "hflip"
    assert read_onnx_metadata(tta_run / "export" / "model.onnx")["tta"] == "hflip"


def test_onnx_averages_the_keras_views_and_is_mirror_invariant(
    tta_run: Path, parity_images: np.ndarray
) -> None:
    import keras

    model = keras.saving.load_model(tta_run / "checkpoints" / "best.keras", compile=False)
    plain = np.asarray(model.predict_on_batch(parity_images))
    mirrored = np.asarray(model.predict_on_batch(mirror(parity_images)))
    assert np.abs(plain - mirrored).max() > 1e-4  # the Keras model alone is not symmetric
    onnx_file = tta_run / "export" / "model.onnx"
    outputs = onnx_outputs(onnx_file, parity_images)
    np.testing.assert_allclose(outputs["logits"], (plain + mirrored) / 2, atol=1e-4)
    np.testing.assert_allclose(
        onnx_outputs(onnx_file, mirror(parity_images))["logits"], outputs["logits"], atol=1e-5
    )
    softmax = np.exp(outputs["logits"]) / np.exp(outputs["logits"]).sum(-1, keepdims=True)
    np.testing.assert_allclose(outputs["probabilities"], softmax, atol=1e-6)


def test_metrics_json_reports_mirrored_and_single_view_scores(
    tta_run: Path, tmp_path: Path
) -> None:
    """metrics.json's val figures are the ONNX model's; `evaluate RUN` reproduces them."""
    from emotionkit.evaluate.evaluation import evaluate

    val = json.loads((tta_run / "metrics.json").read_text())["val"]
    assert val["tta"] == "hflip" and set(val["single_view"]) == {"accuracy", "macro_f1"}
    onnx = evaluate(tta_run / "export" / "model.onnx", out=tmp_path / "onnx").metrics
    assert onnx["tta"] == "none" and onnx["num_images"] == 70  # a model file: no extra TTA
    assert onnx["accuracy"] == pytest.approx(val["accuracy"])
    run = evaluate(tta_run, out=tmp_path / "run").metrics  # a run: its export.tta
    assert run["tta"] == "hflip" and run["target_kind"] == "keras"
    assert run["accuracy"] == pytest.approx(val["accuracy"])
    assert run["macro_f1"] == pytest.approx(val["macro_f1"])
    assert run["without_tta"]["accuracy"] == pytest.approx(val["single_view"]["accuracy"])


def test_old_reference_without_mirror_logits_names_export_tta(
    tta_run: Path, tmp_path: Path
) -> None:
    """A run trained before `export.tta` existed, exported with `export.tta=hflip`."""
    copy = tmp_path / "run"
    shutil.copytree(tta_run, copy)
    reference = copy / "export" / REFERENCE_FILE
    with np.load(reference) as stored:
        images, logits = stored["images"], stored["logits"]
    np.savez_compressed(reference, images=images, logits=logits)
    with pytest.raises(ExportError, match=r"export\.tta: hflip .*parity_reference\.npz"):
        export_run(copy)  # the run's recipe says hflip (JAX: in the TensorFlow child)
    _, plain = _parity_reference(copy / "export", "none")
    np.testing.assert_array_equal(plain, logits)  # export.tta=none still exports it


def test_console_line_shows_the_single_view_accuracy_beside_the_mirrored_one() -> None:
    plain = {"accuracy": 0.6442, "macro_f1": 0.62}
    mirrored = {"accuracy": 0.658, "macro_f1": 0.63, "tta": "hflip", "single_view": plain}
    assert describe_best(12, plain) == "best epoch 12: val accuracy 0.6442, val macro-F1 0.6200"
    assert describe_best(12, mirrored) == (
        "best epoch 12: val accuracy 0.6580 (mirror TTA; single view 0.6442), val macro-F1 0.6300"
    )


def test_cli_export_tta_option_overrides_the_recipe(tta_run: Path, tmp_path: Path) -> None:
    """`emotionkit export RUN --tta none` re-exports a mirrored run as a single-view model."""
    from typer.testing import CliRunner

    from emotionkit.cli import app

    copy = tmp_path / "run"
    shutil.copytree(tta_run, copy)
    result = CliRunner().invoke(app, ["export", str(copy), "--tta", "none"])
    assert result.exit_code == 0, result.output
    report = json.loads((copy / "export" / "export.json").read_text())
    assert report["passed"] is True and report["metadata"]["tta"] == "none"
    with np.load(copy / "export" / REFERENCE_FILE) as stored:
        images, plain = np.asarray(stored["images"], np.float32), stored["logits"]
    logits = onnx_outputs(copy / "export" / "model.onnx", images)["logits"]
    np.testing.assert_allclose(logits, plain, atol=1e-4)  # the single view, not the mean
    bad = CliRunner().invoke(app, ["export", str(copy), "--tta", "hflip_crops"])
    assert bad.exit_code != 0 and "`export.tta`" in str(bad.exception)  # names the field
