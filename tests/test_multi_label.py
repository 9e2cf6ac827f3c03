"""Multi-label targets end to end: multi-hot rows reach the BCE loss, thresholds are chosen on
validation, and the exported model gives one independent probability per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotionkit.data import load_data
from emotionkit.data.pipeline import build_dataset
from emotionkit.evaluate.target_metrics import choose_thresholds, multi_label_metrics
from emotionkit.export_formats import onnx_outputs, read_onnx_metadata
from emotionkit.recipe import load_recipe
from emotionkit.training import compile_model
from emotionkit.training.spec import TrainSpec
from tests.conftest import TINY_OVERRIDES
from tests.test_sources import data_spec

CLASSES = ["happy", "sad", "surprise"]


def write_votes(path: Path, count: int = 96) -> Path:
    """Faces whose votes split between two classes for every third image."""
    rng = np.random.default_rng(0)
    votes = np.eye(3, dtype=np.float32)[np.arange(count) % 3] * 10
    votes[::3, 2] = 5  # happy 10, surprise 5: multi-label {happy, surprise} at share >= 0.3
    images = rng.integers(0, 256, (count, 32, 32, 1), dtype=np.uint8)
    images[:, :8, :8] = (np.arange(count) % 3 * 100)[:, None, None, None]
    np.savez(path, x=images, y=votes, class_names=np.array(CLASSES))
    return path


def test_multi_hot_targets_reach_the_loss(tmp_path: Path) -> None:
    import keras

    source = {"kind": "npz", "path": str(write_votes(tmp_path / "votes.npz"))}
    spec = data_spec(source, image_size=32).model_copy(update={"targets": "multi_label"})
    data = load_data(spec, seed=0)
    images, targets = next(iter(build_dataset(data.splits["train"], 3, 32, training=False, seed=0)))
    images, targets = np.asarray(images), np.asarray(targets)
    assert (targets.sum(axis=1) == 2).any() and set(np.unique(targets)) == {0.0, 1.0}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(pooled))
    compile_model(model, TrainSpec.model_validate({"loss": {"name": "bce"}}), steps_per_epoch=1)
    loss = model.evaluate(images, targets, verbose=0, return_dict=True)["loss"]
    logits = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    manual = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    assert loss == pytest.approx(manual.mean(), rel=1e-4)


def test_thresholds_are_the_f1_best_and_scores_use_them() -> None:
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=np.float32)
    probabilities = np.array([[0.9, 0.2], [0.35, 0.1], [0.3, 0.6], [0.2, 0.1]])
    logits = np.log(probabilities / (1 - probabilities))
    thresholds = choose_thresholds(targets, logits)
    assert 0.3 < thresholds[0] <= 0.35 and 0.2 < thresholds[1] <= 0.6
    scores = multi_label_metrics(targets, logits, thresholds, ["a", "b"])
    assert scores["exact_match"] == 1.0 and scores["macro_f1"] == 1.0


@pytest.mark.slow
def test_a_multi_label_run_exports_independent_per_class_probabilities(tmp_path: Path) -> None:
    from emotionkit import train

    votes = write_votes(tmp_path / "v.npz")
    overrides = [*TINY_OVERRIDES, f"data.source={{kind: npz, path: {votes}}}",
                 "data.targets=multi_label", "train.loss.name=bce", "train.epochs=1",
                 "train.schedule.warmup_epochs=0", "export.formats=[onnx]"]  # fmt: skip
    run = train(load_recipe("quickstart", overrides), runs_dir=tmp_path / "runs")
    val = json.loads((run.run_dir / "metrics.json").read_text())["val"]
    assert val["targets"] == "multi_label"
    thresholds = [val["multi_label"]["per_class"][name]["threshold"] for name in CLASSES]
    onnx = run.run_dir / "export" / "model.onnx"
    metadata = read_onnx_metadata(onnx)
    assert metadata["targets"] == "multi_label" and json.loads(metadata["thresholds"]) == thresholds
    images = np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 1)).astype(np.float32)
    outputs = onnx_outputs(onnx, images)
    np.testing.assert_allclose(
        outputs["probabilities"], 1 / (1 + np.exp(-outputs["logits"])), atol=1e-5
    )
    assert not np.allclose(outputs["probabilities"].sum(axis=1), 1.0)

    # `emotionkit evaluate` on the vote file: majority-vote accuracy, the distances to the
    # votes, and the multi-label scores at the thresholds the export carries
    from typer.testing import CliRunner

    from emotionkit.cli import app

    result = CliRunner().invoke(
        app, ["evaluate", str(onnx), "--data", str(votes), "--split", "train"]
    )
    assert result.exit_code == 0, result.output
    assert "soft labels (accuracy is against the majority vote): KL" in result.output
    assert "TVD" in result.output and "multi-label at the validation thresholds" in result.output
