"""`emotionkit evaluate` on every artifact kind, TTA, other data, and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emotionkit.cli import app
from emotionkit.errors import DataError, EmotionkitError
from emotionkit.evaluate.tta import tta_logits, views


@pytest.fixture(scope="module")
def trained_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's tiny run (tests/conftest.py), as these tests write into it."""
    copy = tmp_path_factory.mktemp("runs") / tiny_run.parent.name / tiny_run.name
    shutil.copytree(tiny_run, copy)
    return copy


def test_keras_saved_model_and_onnx_score_the_same(trained_run: Path, tmp_path: Path) -> None:
    from emotionkit.evaluate.evaluation import evaluate

    scores = {}
    for target in (trained_run, trained_run / "export" / "saved_model",
                   trained_run / "export" / "model.onnx"):  # fmt: skip
        evaluation = evaluate(target, out=tmp_path / target.name)
        scores[evaluation.target.kind] = evaluation.metrics
        assert json.loads((tmp_path / target.name / "metrics.json").read_text())["split"] == "val"
    assert set(scores) == {"keras", "saved_model", "onnx"}
    accuracies = [metrics["accuracy"] for metrics in scores.values()]
    assert max(accuracies) - min(accuracies) <= 0.001
    assert scores["onnx"]["num_images"] == 70  # the run's own validation split
    training_time = json.loads((trained_run / "metrics.json").read_text())["val"]
    assert scores["keras"]["accuracy"] == pytest.approx(training_time["accuracy"])


def test_cli_evaluate_writes_metrics_predictions_and_plots(trained_run: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(trained_run), "--tta", "hflip"])
    assert result.exit_code == 0, result.output
    eval_dir = Path(result.output.strip().splitlines()[-1])
    assert eval_dir == trained_run / "eval" / "val"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["tta"] == "hflip" and "without_tta" in metrics
    assert "precision" in result.output and "TTA hflip: accuracy" in result.output
    with np.load(eval_dir / "predictions.npz") as stored:
        assert stored["logits"].shape == (70, 7) and stored["images"].shape == (70, 32, 32, 1)
        assert stored["embeddings"].shape[0] == 70
        # the TTA logits are the mean of the plain ones and the mirrored images' ones
        assert not np.allclose(stored["logits"], stored["logits_no_tta"])
    for name in ("confusion_counts", "reliability", "mistakes", "curves", "gradcam"):
        assert (eval_dir / "plots" / f"{name}.png").stat().st_size > 1000


def test_bare_model_file_with_other_data_maps_classes_by_name(
    trained_run: Path, tmp_path: Path
) -> None:
    """An .onnx outside its run, scored on an .npz whose classes come in another order."""
    from emotionkit.evaluate.evaluation import evaluate

    reference = evaluate(trained_run, out=tmp_path / "reference").metrics
    with np.load(tmp_path / "reference" / "predictions.npz") as stored:
        images, labels = stored["images"], stored["labels"]
    names = reference["class_names"]
    shuffled = names[::-1]
    relabelled = np.array([shuffled.index(names[label]) for label in labels])
    data = tmp_path / "faces.npz"
    np.savez(data, x=images, y=relabelled, x_test=images, y_test=relabelled,
             class_names=np.array(shuffled))  # fmt: skip
    bare = tmp_path / "model.onnx"
    shutil.copy(trained_run / "export" / "model.onnx", bare)
    with pytest.raises(EmotionkitError, match="not inside a run directory"):
        evaluate(bare)
    scored = evaluate(bare, data=data, split="test", out=tmp_path / "bare").metrics
    # a bare file knows no class names: they come from the data, in the data's order, so the
    # outputs are read as the reversed classes; with the run's names the two agree exactly
    assert scored["class_names"] == shuffled
    from_run = evaluate(
        trained_run / "export" / "model.onnx", data=data, split="test", out=tmp_path / "mapped"
    ).metrics
    assert from_run["class_names"] == names
    assert from_run["accuracy"] == pytest.approx(reference["accuracy"])
    assert from_run["confusion_matrix"] == reference["confusion_matrix"]


def test_missing_split_names_the_available_ones(trained_run: Path) -> None:
    from emotionkit.evaluate.evaluation import evaluate

    with pytest.raises(DataError, match="--split test: the data has splits train, val"):
        evaluate(trained_run, split="test")


def test_tta_views_and_mean() -> None:
    images = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6, 1)
    assert len(list(views(images, "none"))) == 1
    flipped = list(views(images, "hflip"))
    np.testing.assert_array_equal(flipped[1], images[:, :, ::-1])
    crops = list(views(images, "hflip_crops"))
    assert len(crops) == 10 and all(view.shape == images.shape for view in crops)
    np.testing.assert_array_equal(crops[0], images)  # the centre crop of the padding
    np.testing.assert_array_equal(crops[1][:, 2:, 2:], images[:, :-2, :-2])  # top-left shift

    def column_sums(batch: np.ndarray) -> np.ndarray:
        return batch.sum(axis=(1, 3))  # (N, W): changes under a mirror

    expected = (column_sums(images) + column_sums(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(tta_logits(column_sums, images, "hflip"), expected)
    with pytest.raises(EmotionkitError, match="--tta must be one of"):
        list(views(images, "rotate"))


def test_cli_report_fills_every_section(trained_run: Path) -> None:
    from emotionkit.evaluate.report import REPORT_SECTIONS

    result = CliRunner().invoke(app, ["report", str(trained_run)])
    assert result.exit_code == 0, result.output
    report = Path(result.output.strip().splitlines()[-1])
    assert report == trained_run / "report.html"
    html = report.read_text()
    for section in REPORT_SECTIONS:
        assert f'id="{section}"' in html
    assert "not available" not in html  # eval, plots, Grad-CAM and export parity all there
    assert html.count("data:image/png;base64,") >= 9


def test_cli_compare_shows_the_one_differing_key(trained_run: Path, tmp_path: Path) -> None:
    import yaml

    other = tmp_path / "other-run"
    shutil.copytree(trained_run, other, ignore=shutil.ignore_patterns("checkpoints", "export"))
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["train"]["optimizer"]["lr"] = 0.5
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    markdown = tmp_path / "compare.md"
    result = CliRunner().invoke(
        app, ["compare", str(trained_run), str(other), "--markdown", str(markdown)]
    )
    assert result.exit_code == 0, result.output
    differences = markdown.read_text().split("Recipe differences")[1]
    key_rows = [line for line in differences.splitlines() if line.startswith("| `")]
    assert key_rows == ["| `train.optimizer.lr` | 0.003 | 0.5 |"]
    assert "train.optimizer.lr" in result.output
