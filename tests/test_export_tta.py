"""`export.tta`: test-time augmentation inside the exports and metrics.json.

Two tiny runs: `export.tta=hflip` (ONNX only, to stay fast) and `export.tta=hflip_crops`
(ten views; SavedModel and ONNX). Under the JAX backend they train on JAX and export in a
TensorFlow child process, so the view-averaged parity references are checked across backends
too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotionkit.errors import ExportError
from emotionkit.export import CROPS_KEY, REFERENCE_FILE, _parity_reference, export_run
from emotionkit.export_formats import (
    METADATA_FILE,
    onnx_outputs,
    read_onnx_metadata,
    saved_model_outputs,
    tta_views,
)
from emotionkit.recipe import load_recipe
from emotionkit.tta import TTA_MODES, tta_logits, views
from emotionkit.workflow.stages import describe_best
from tests.conftest import REPO, TINY_OVERRIDES


def train_tiny(tmp_path_factory: pytest.TempPathFactory, *overrides: str) -> Path:
    from emotionkit import workflow

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", [*TINY_OVERRIDES, *overrides])
    return workflow.train(recipe, runs_dir=tmp_path_factory.mktemp("runs")).run_dir


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory, "export.formats=[onnx]", "export.tta=hflip")


@pytest.fixture(scope="module")
def crops_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    formats = "export.formats=[saved_model, onnx]"
    return train_tiny(tmp_path_factory, formats, "export.tta=hflip_crops")


def reference_images(run_dir: Path) -> np.ndarray:
    """The 16 validation images of a run's parity reference, raw pixels."""
    with np.load(run_dir / "export" / REFERENCE_FILE) as stored:
        return np.asarray(stored["images"], np.float32)


@pytest.fixture(scope="module")
def parity_images(tta_run: Path) -> np.ndarray:
    return reference_images(tta_run)


def best_model(run_dir: Path) -> Any:
    """The best checkpoint on this test's backend (the run's training backend)."""
    import keras

    return keras.saving.load_model(run_dir / "checkpoints" / "best.keras", compile=False)


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
    ten_view = {**mirrored, "tta": "hflip_crops"}
    assert describe_best(12, ten_view) == (
        "best epoch 12: val accuracy 0.6580 (10-view TTA; single view 0.6442), val macro-F1 0.6300"
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
    bad = CliRunner().invoke(app, ["export", str(copy), "--tta", "vflip"])
    assert bad.exit_code != 0 and "`export.tta`" in str(bad.exception)  # names the field


@pytest.mark.parametrize("mode", TTA_MODES)
def test_graph_views_equal_the_numpy_views_pixel_for_pixel(mode: str) -> None:
    """The exports' TensorFlow views (eager and traced) are `tta.views`, stacked."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 9, 7, 2)).astype(np.float32)  # odd, not square: axes
    expected = np.concatenate(list(views(images, mode)))
    np.testing.assert_array_equal(tta_views(tf.constant(images), mode).numpy(), expected)
    spec = tf.TensorSpec([None, 9, 7, 2], tf.float32)
    traced = tf.function(lambda x: tta_views(x, mode), input_signature=[spec])
    np.testing.assert_array_equal(traced(tf.constant(images)).numpy(), expected)


def test_ten_view_exports_pass_the_gate_and_say_so(crops_run: Path) -> None:
    report = json.loads((crops_run / "export" / "export.json").read_text())
    assert report["passed"] is True
    assert set(report["checks"]) == {"keras_tensorflow", "saved_model", "onnx"}
    assert all(check["max_abs_diff"] <= 1e-4 for check in report["checks"].values())
    assert report["checks"]["onnx"]["batch_sizes"] == [1, 5, 16]
    with np.load(crops_run / "export" / REFERENCE_FILE) as stored:
        assert stored[CROPS_KEY].shape == stored["logits"].shape == (16, 7)
    assert report["metadata"]["tta"] == "hflip_crops"
    assert read_onnx_metadata(crops_run / "export" / "model.onnx")["tta"] == "hflip_crops"
    saved_model = crops_run / "export" / "saved_model"
    assert json.loads((saved_model / "assets.extra" / METADATA_FILE).read_text())["tta"] == (
        "hflip_crops"
    )


def test_ten_view_exports_are_the_numpy_ten_view_mean_of_keras(crops_run: Path) -> None:
    """ONNX and SavedModel against `emotionkit.tta` on this backend's Keras logits."""
    import keras
    import onnx

    model, images = best_model(crops_run), reference_images(crops_run)

    def logits_of(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(np.ascontiguousarray(batch)))

    expected = tta_logits(logits_of, images, "hflip_crops")
    assert np.abs(expected - tta_logits(logits_of, images, "hflip")).max() > 1e-4  # crops count
    onnx_file = crops_run / "export" / "model.onnx"
    outputs = onnx_outputs(onnx_file, images)
    np.testing.assert_allclose(outputs["logits"], expected, atol=1e-4)
    saved = saved_model_outputs(crops_run / "export" / "saved_model", images)
    np.testing.assert_allclose(saved["logits"], expected, atol=1e-4)
    mirrored = onnx_outputs(onnx_file, mirror(images))["logits"]
    np.testing.assert_allclose(mirrored, outputs["logits"], atol=1e-5)  # same ten views
    # the ten views run through the network as one batch: the graph holds it once
    convs = sum(node.op_type == "Conv" for node in onnx.load(str(onnx_file)).graph.node)
    assert convs == sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


def test_metrics_json_reports_the_ten_view_scores_of_the_exports(
    crops_run: Path, tmp_path: Path
) -> None:
    from emotionkit.evaluate.evaluation import evaluate

    val = json.loads((crops_run / "metrics.json").read_text())["val"]
    assert val["tta"] == "hflip_crops" and set(val["single_view"]) == {"accuracy", "macro_f1"}
    onnx = evaluate(crops_run / "export" / "model.onnx", out=tmp_path / "onnx").metrics
    assert onnx["tta"] == "none" and onnx["accuracy"] == pytest.approx(val["accuracy"])
    assert onnx["macro_f1"] == pytest.approx(val["macro_f1"])
    run = evaluate(crops_run, out=tmp_path / "run").metrics  # a run: its export.tta
    assert run["tta"] == "hflip_crops" and run["accuracy"] == pytest.approx(val["accuracy"])
    assert run["without_tta"]["accuracy"] == pytest.approx(val["single_view"]["accuracy"])


def test_old_reference_without_ten_view_logits_names_export_tta(
    crops_run: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(crops_run, copy)
    reference = copy / "export" / REFERENCE_FILE
    with np.load(reference) as stored:
        kept = {key: stored[key] for key in stored.files if key != CROPS_KEY}
    np.savez_compressed(reference, **kept)
    with pytest.raises(ExportError, match=r"export\.tta: hflip_crops .*parity_reference\.npz"):
        export_run(copy)
    _, mirrored = _parity_reference(copy / "export", "hflip")  # other modes still export
    assert mirrored.shape == (16, 7)
