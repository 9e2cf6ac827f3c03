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
from emotionkit.evaluate.targets import run_class_names
from emotionkit.tta import tta_logits, views


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


def write_split_folder(root: Path, split: str, classes: list[str], per_class: int = 2) -> None:
    """`root/<split>/<class>/*.png`: synthetic faces at the tiny run's 32 px, grey."""
    import cv2

    from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces

    images, labels = generate_synthetic_faces(7 * per_class, seed=5, image_size=32)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = FER_CLASSES[label]
        if name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / name / f"{index}.png"), image)


def test_a_test_only_image_folder_is_scored_reading_only_that_split(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emotionkit.data import image_folder
    from emotionkit.evaluate.evaluation import evaluate

    root = tmp_path / "faces"
    write_split_folder(root, "test", ["happy", "sad", "surprise"])
    scored = evaluate(trained_run, data=root, split="test", out=tmp_path / "only-test")
    names = scored.metrics["class_names"]
    assert scored.metrics["num_images"] == 6 and names == run_class_names(trained_run)
    with np.load(tmp_path / "only-test" / "predictions.npz") as stored:
        # labels are the model's indices of each image's folder name, whatever the folder order
        folders = [Path(image_id).parent.name for image_id in stored["ids"]]
        assert [names[label] for label in stored["labels"]] == folders
        assert all(image_id.startswith("test/") for image_id in stored["ids"])
    # with a train/ beside it, --split test still decodes test/ alone
    write_split_folder(root, "train", ["happy", "sad", "surprise"])

    def no_train_decoding(paths: list[Path], *args: object) -> None:
        raise AssertionError(f"decoded the whole source: {paths[0]} ...")

    monkeypatch.setattr(image_folder, "decode_files", no_train_decoding)
    again = evaluate(trained_run, data=root, split="test", out=tmp_path / "with-train")
    assert again.metrics["accuracy"] == scored.metrics["accuracy"]


def test_cli_evaluate_on_a_missing_split_folder_names_it_in_one_line(
    trained_run: Path, tmp_path: Path
) -> None:
    root = tmp_path / "faces"
    write_split_folder(root, "test", ["happy"])
    onnx = trained_run / "export" / "model.onnx"
    result = CliRunner().invoke(
        app, ["evaluate", str(onnx), "--data", str(root), "--split", "val", "--no-plots"]
    )
    assert isinstance(result.exception, DataError)  # `emotionkit` exits 2 on these
    message = str(result.exception)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"--split val: {root / 'val'} not found ({root} holds test/)")
    assert not (trained_run / "eval" / "val-onnx").exists()  # stopped before writing


def test_each_model_of_a_run_keeps_its_own_evaluation(trained_run: Path) -> None:
    from emotionkit.evaluate.evaluation import evaluate

    checkpoint = evaluate(trained_run)
    exported = evaluate(trained_run / "export" / "model.onnx")
    assert checkpoint.eval_dir == trained_run / "eval" / "val"
    assert exported.eval_dir == trained_run / "eval" / "val-onnx"
    for evaluation, kind in ((checkpoint, "keras"), (exported, "onnx")):
        stored = json.loads((evaluation.eval_dir / "metrics.json").read_text())
        assert stored["target_kind"] == kind
    # the same model again replaces its own folder ...
    assert evaluate(trained_run, tta="hflip").eval_dir == checkpoint.eval_dir
    # ... another model's folder is never overwritten, even when named with --out
    before = (checkpoint.eval_dir / "metrics.json").read_text()
    with pytest.raises(EmotionkitError, match=r"already holds the evaluation of .*best\.keras"):
        evaluate(trained_run / "export" / "model.onnx", out=checkpoint.eval_dir)
    assert (checkpoint.eval_dir / "metrics.json").read_text() == before


@pytest.mark.parametrize(
    ("in_run", "model", "kind", "expected"),
    [
        (True, "checkpoints/best.keras", "keras", "RUN/eval/test"),
        (True, "checkpoints/last.keras", "keras", "RUN/eval/test-keras-last"),
        (True, "export/model.onnx", "onnx", "RUN/eval/test-onnx"),
        (True, "export/model.int8.onnx", "onnx", "RUN/eval/test-onnx-int8"),
        (True, "export/saved_model", "saved_model", "RUN/eval/test-saved_model"),
        (False, "downloads/fer.onnx", "onnx", "eval/fer/test-onnx"),
    ],
)
def test_evaluation_folders_are_named_after_the_model(
    tmp_path: Path, in_run: bool, model: str, kind: str, expected: str
) -> None:
    from emotionkit.evaluate.evaluation import default_eval_dir
    from emotionkit.evaluate.targets import Target

    run_dir = tmp_path / "RUN"
    target = Target(
        path=run_dir / model if in_run else Path(model), kind=kind,
        run_dir=run_dir if in_run else None, image_size=32, channels=1, num_classes=7,
        predict=lambda images: images,
    )  # fmt: skip
    folder = default_eval_dir(target, "test")
    assert folder == (tmp_path / expected if in_run else Path(expected))


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
