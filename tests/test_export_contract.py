"""Export contract: raw-pixel input, named outputs, metadata, dynamic batch, the gates.

Under the JAX backend the run trains on JAX and exports in a TensorFlow child process, so the
nox backend parametrisation covers "exported from a JAX run" and "from a TensorFlow run".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotionkit.export import _check_artifact, int8_gate
from emotionkit.export_formats import onnx_outputs, read_onnx_metadata
from emotionkit.recipe import load_recipe
from tests.conftest import REPO, TINY_OVERRIDES


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emotionkit import workflow

    overrides = [
        *TINY_OVERRIDES,
        "export.formats=[saved_model, onnx, onnx_int8]",
        "export.int8_max_drop=100",
    ]  # fmt: skip  (70 tiny-model images: gate numbers only)
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", overrides)
    return workflow.train(recipe, runs_dir=tmp_path_factory.mktemp("runs")).run_dir


def test_every_artifact_passes_the_gate_with_named_outputs(exported_run: Path) -> None:
    report = json.loads((exported_run / "export" / "export.json").read_text())
    assert report["passed"] is True
    assert set(report["checks"]) == {"keras_tensorflow", "saved_model", "onnx", "onnx_int8"}
    for name in ("saved_model", "onnx"):
        check = report["checks"][name]
        assert check["batch_sizes"] == [1, 5, 16] and check["max_abs_diff"] <= 1e-4
        assert check["probabilities_match_softmax"] and check["top1_agreement"] == 1.0
    assert report["checks"]["onnx"]["opset"] >= 13
    with np.load(exported_run / "export" / "parity_reference.npz") as stored:
        images, reference = stored["images"].astype(np.float32), stored["logits"]
    for batch in (1, 5):  # independent re-check with onnxruntime, dynamic batch
        outputs = onnx_outputs(exported_run / "export" / "model.onnx", images[:batch])
        assert set(outputs) == {"logits", "probabilities"}
        np.testing.assert_allclose(outputs["logits"], reference[:batch], atol=1e-4)
        np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_metadata_travels_inside_every_artifact(exported_run: Path) -> None:
    mapping = json.loads((exported_run / "labels_mapping.json").read_text())
    names = [mapping[str(i)] for i in range(len(mapping))]
    for onnx_file in ("model.onnx", "model.int8.onnx"):
        metadata = read_onnx_metadata(exported_run / "export" / onnx_file)
        assert json.loads(metadata["class_names"]) == names
        assert (metadata["image_size"], metadata["channels"]) == ("32", "1")
        assert metadata["input_range"] == "0-255" and float(metadata["pixel_std"]) > 0
        assert len(metadata["recipe_sha256"]) == 64
    saved = exported_run / "export" / "saved_model" / "assets.extra" / "emotionkit.json"
    assert json.loads(json.loads(saved.read_text())["class_names"]) == names


def test_int8_report_is_consistent(exported_run: Path) -> None:
    check = json.loads((exported_run / "export" / "export.json").read_text())["checks"]["onnx_int8"]
    assert check["validation_images"] == 70 and check["calibration_images"] == 7 * 32
    assert check["accuracy_drop_points"] == pytest.approx(
        100 * (check["float_accuracy"] - check["int8_accuracy"])
    )
    assert 0.0 <= check["top1_agreement"] <= 1.0


def test_int8_gate_fails_above_the_allowed_drop() -> None:
    labels = np.arange(100) % 4
    right = np.eye(4)[labels]
    worse = right.copy()
    worse[:2] = np.eye(4)[(labels[:2] + 1) % 4]  # two more mistakes: -2 points
    assert int8_gate(right, worse, labels, max_drop=2.0)["passed"] is True
    failed = int8_gate(right, worse, labels, max_drop=1.0)
    assert failed["passed"] is False and failed["accuracy_drop_points"] == pytest.approx(2.0)
    assert failed["top1_agreement"] == pytest.approx(0.98)


def test_wrong_normalisation_fails_the_parity_gate(exported_run: Path, tmp_path: Path) -> None:
    """The shipped ONNX with an extra /255 on its input: the classic preprocessing bug."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(exported_run / "export" / "model.onnx"))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "by255"))
    for node in graph.node:
        node.input[:] = ["scaled_image" if name == "image" else name for name in node.input]
    graph.node.insert(0, helper.make_node("Mul", ["image", "by255"], ["scaled_image"]))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with np.load(exported_run / "export" / "parity_reference.npz") as stored:
        images, reference = stored["images"].astype(np.float32), stored["logits"]
    spec = load_recipe(exported_run / "recipe.yaml").export
    good = _check_artifact(lambda x: onnx_outputs(exported_run / "export" / "model.onnx", x),
                           images, reference, spec)  # fmt: skip
    bad = _check_artifact(lambda x: onnx_outputs(broken, x), images, reference, spec)
    assert good["passed"] is True
    assert bad["passed"] is False and bad["max_abs_diff"] > 1e-3


def test_cli_export_format_option_picks_the_artifacts(exported_run: Path, tmp_path: Path) -> None:
    """`--format` overrides the recipe (and reaches the TensorFlow child of a JAX run)."""
    import shutil

    from typer.testing import CliRunner

    from emotionkit.cli import app

    copy = tmp_path / "run"
    shutil.copytree(exported_run, copy)
    for artifact in ("saved_model", "model.onnx", "model.int8.onnx", "export.json"):
        path = copy / "export" / artifact
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = CliRunner().invoke(app, ["export", str(copy), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    report = json.loads((copy / "export" / "export.json").read_text())
    assert set(report["checks"]) == {"keras_tensorflow", "onnx"} and report["passed"]
    assert (copy / "export" / "model.onnx").is_file()
    assert not (copy / "export" / "saved_model").exists()
