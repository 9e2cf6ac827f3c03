"""`emotionkit predict` and `Predictor`: onnxruntime + OpenCV only, on a hand-built ONNX model.

The model follows the export contract (input `image` NHWC 0-255, outputs `logits` and
`probabilities`, metadata) and scores mean brightness: logits = m * WEIGHTS + BIAS with m
the mean pixel / 255, so dark images are "sad", mid-grey "neutral", bright "happy", and
every probability is known in advance.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from emotionkit.cli import app
from emotionkit.errors import DataError, EmotionkitError
from emotionkit.image_decode import to_model_pixels
from emotionkit.predict import (
    CropPolicy,
    Detection,
    HaarFaceDetector,
    Predictor,
    face_crop,
    is_face_crop,
    read_image,
)

CLASSES = ["sad", "neutral", "happy"]
WEIGHTS = np.array([[-20.0, 0.0, 20.0]], np.float32)
BIAS = np.array([8.0, 2.0, -12.0], np.float32)
SIZE = 48
# tests/data/face_photo.png: FER2013 train/happy/Training_10046809.png upscaled to 160 px,
# pasted at (260, 100) on a 480x360 colour gradient; Haar finds it at about this box.
FACE_PHOTO = Path(__file__).parent / "data" / "face_photo.png"
FACE_BOX = (260, 101, 161, 161)
HEAVY = ("tensorflow", "keras", "jax")


def expected_probabilities(mean_pixel: float) -> np.ndarray:
    logits = (mean_pixel / 255.0) * WEIGHTS[0] + BIAS
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def contract_metadata(channels: int = 1) -> dict[str, str]:
    return {
        "class_names": json.dumps(CLASSES),
        "image_size": str(SIZE),
        "channels": str(channels),
        "input_range": "0-255",
        "pixel_mean": "127.5",
        "pixel_std": "127.5",
        "emotionkit_version": "0.1.0",
        "recipe_sha256": "0" * 64,
    }


def build_brightness_model(
    path: Path, channels: int = 1, metadata: dict[str, str] | None = None
) -> Path:
    """A contract-following ONNX file: Reshape -> ReduceMean -> /255 -> MatMul+Add -> Softmax."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", SIZE, SIZE, channels])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(CLASSES)])
    constants = [
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(255.0, np.float32), "scale"),
        numpy_helper.from_array(WEIGHTS, "weights"),
        numpy_helper.from_array(BIAS, "bias"),
    ]
    nodes = [
        helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Div", ["mean", "scale"], ["unit"]),
        helper.make_node("MatMul", ["unit", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [logits, probs], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = contract_metadata(channels) if metadata is None else metadata
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_brightness_model(tmp_path_factory.mktemp("model") / "model.onnx")


@pytest.fixture(scope="module")
def predictor(model_path: Path) -> Predictor:
    return Predictor(model_path, detector="haar")  # MTCNN: tests/test_faces_detectors.py


def uniform(value: float, shape: tuple[int, ...] = (SIZE, SIZE), dtype: type = np.uint8):
    return np.full(shape, value, dtype)


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


# --- Predictor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "image"),
    [
        (1, uniform(204)),  # (H, W) uint8
        (1, uniform(204.0, (SIZE, SIZE, 3), np.float32)),  # RGB float 0-255
        (3, uniform(204, (SIZE, SIZE, 1))),  # gray -> the model's RGB
        (3, uniform(204, (70, 70, 4))),  # RGBA, resized, still a crop
    ],
)
def test_known_image_gives_the_expected_probabilities(
    tmp_path: Path, channels: int, image: np.ndarray
) -> None:
    model = Predictor(build_brightness_model(tmp_path / "m.onnx", channels=channels))
    (prediction,) = model.predict(image)
    assert prediction.label == "happy" and prediction.box is None
    assert list(prediction.probabilities) == CLASSES
    probabilities = np.array(list(prediction.probabilities.values()))
    np.testing.assert_allclose(probabilities, expected_probabilities(204), atol=1e-5)
    assert prediction.top(2)[0] == ("happy", prediction.probabilities["happy"])


def test_batches_of_one_and_five(predictor: Predictor) -> None:
    assert [p.label for p in predictor.predict([uniform(10)])] == ["sad"]
    values = [10, 250, 128, 20, 240]
    batch = np.stack([uniform(v) for v in values])  # (5, 48, 48): a grayscale batch
    predictions = predictor.predict(batch, sources=[f"img{v}" for v in values])
    assert [p.label for p in predictions] == ["sad", "happy", "neutral", "sad", "happy"]
    assert [p.image_index for p in predictions] == [0, 1, 2, 3, 4]
    assert predictions[1].source == "img250"
    for value, prediction in zip(values, predictions, strict=True):
        got = np.array(list(prediction.probabilities.values()))
        np.testing.assert_allclose(got, expected_probabilities(value), atol=1e-5)


def test_face_crop_rule() -> None:
    assert is_face_crop((48, 48), 48) and is_face_crop((96, 80, 3), 48)
    assert not is_face_crop((97, 97), 48)  # longer side > 2 x model size
    assert not is_face_crop((96, 48), 48)  # a strip, not a face crop
    assert not is_face_crop((360, 480, 3), 48)


def test_detected_face_in_a_photo(predictor: Predictor) -> None:
    photo = read_image(FACE_PHOTO)
    assert photo.shape == (360, 480, 3)
    (prediction,) = predictor.predict(photo)
    assert prediction.box is not None
    assert np.allclose(prediction.box, FACE_BOX, atol=8)
    margin = HaarFaceDetector.crop_margin  # the crop predict cuts for a Haar box
    crop = to_model_pixels(
        face_crop(photo, Detection(prediction.box), CropPolicy(), margin), 1, SIZE
    )
    got = np.array(list(prediction.probabilities.values()))
    np.testing.assert_allclose(got, expected_probabilities(float(crop.mean())), atol=1e-5)


def test_big_image_without_a_face_is_reported_not_an_error(predictor: Predictor) -> None:
    blank, face = uniform(120, (300, 400, 3)), uniform(250)
    no_face, crop = predictor.predict([blank, face])
    assert no_face.label is None and no_face.probabilities == {} and no_face.box is None
    assert crop.label == "happy" and crop.image_index == 1
    (whole,) = predictor.predict(blank, faces="none")
    assert whole.label == "neutral" and whole.box is None


def test_injected_detector_gets_grayscale_and_its_boxes_are_used(model_path: Path) -> None:
    seen: list[np.ndarray] = []

    def detector(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        seen.append(gray)
        return [(10, 10, 60, 60), (200, 50, 80, 80)]

    photo = uniform(5, (200, 300, 3))
    photo[40:140, 190:290] = 250  # the second "face" is bright, margin included
    predictions = Predictor(model_path, detector=detector).predict(photo)
    assert Predictor(model_path, detector=detector).detector_name == "custom"
    assert seen[0].shape == (200, 300) and seen[0].dtype == np.uint8
    assert [p.box for p in predictions] == [(10, 10, 60, 60), (200, 50, 80, 80)]
    assert [p.label for p in predictions] == ["sad", "happy"]


def test_run_directory_uses_its_exported_onnx(tmp_path: Path, model_path: Path) -> None:
    (tmp_path / "export").mkdir()
    shutil.copy(model_path, tmp_path / "export" / "model.onnx")
    assert Predictor(tmp_path).class_names == tuple(CLASSES)
    with pytest.raises(DataError, match=r"export.model\.onnx not found"):
        Predictor(tmp_path / "export")


def test_cli_run_directory_without_export_is_not_read_as_images(tmp_path: Path) -> None:
    """A run holds PNGs (its plots): without export/model.onnx it must not become the input."""
    run_dir = tmp_path / "runs" / "quickstart" / "2026-01-01T00-00-00"
    (run_dir / "eval" / "val" / "plots").mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text("name: quickstart\n")
    write_png(run_dir / "eval" / "val" / "plots" / "confusion_counts.png", uniform(200))
    expected = (
        f"error: {run_dir / 'export' / 'model.onnx'} not found: {run_dir} is a run directory "
        f"without an ONNX export; make it with `emotionkit export {run_dir} --format onnx`."
    )
    run = subprocess.run(
        [sys.executable, "-m", "emotionkit", "predict", str(run_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (run.returncode, run.stderr.splitlines(), run.stdout) == (2, [expected], "")
    face = write_png(tmp_path / "face.png", uniform(200))
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(face)])
    assert isinstance(result.exception, DataError) and f"error: {result.exception}" == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class_names": None}, "lacks class_names"),
        ({"image_size": None, "channels": None}, "lacks image_size, channels"),
        ({"class_names": json.dumps(["a", "b"])}, "3 outputs but metadata class_names lists 2"),
        ({"class_names": "sad,happy"}, "must be a JSON list"),
        ({"image_size": "64"}, "metadata says"),
        ({"input_range": "0-1"}, "input_range"),
    ],
)
def test_metadata_errors_name_the_file(
    tmp_path: Path, change: dict[str, str | None], message: str
) -> None:
    metadata = {**contract_metadata(), **change}
    kept = {key: value for key, value in metadata.items() if value is not None}
    path = build_brightness_model(tmp_path / "bad.onnx", metadata=kept)
    with pytest.raises(DataError, match=message) as caught:
        Predictor(path)
    assert str(path) in str(caught.value)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a loadable ONNX model"):
        Predictor(path)


# --- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    (folder / "crops").mkdir(parents=True)
    write_png(folder / "crops" / "dark.png", uniform(15))
    write_png(folder / "crops" / "bright.png", uniform(245))
    shutil.copy(FACE_PHOTO, folder / "photo.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    (folder / "notes.txt").write_text("not an image, not searched")
    return folder


def test_cli_on_a_mixed_folder(tmp_path: Path, model_path: Path, mixed_folder: Path) -> None:
    jsonl, table = tmp_path / "out" / "results.jsonl", tmp_path / "results.csv"
    annotated = tmp_path / "annotated"
    runner = CliRunner()
    args = ["predict", str(model_path), str(mixed_folder), "--out", str(jsonl)]
    result = runner.invoke(app, [*args, "--annotate", str(annotated), "--detector", "haar"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        f"skipped: {mixed_folder / 'corrupt.jpg'}: not an image (unknown file signature).",
        "summary: 3 images read, 3 faces classified, 1 skipped",
    ]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    errors = {Path(r["source"]).name: r["error"] for r in records if "error" in r}
    assert errors == {"corrupt.jpg": "not an image (unknown file signature)"}
    records = [r for r in records if "error" not in r]
    assert {Path(r["source"]).name: r["label"] for r in records} == {
        "bright.png": "happy",
        "dark.png": "sad",
        "photo.png": records[-1]["label"],
    }
    assert records[-1]["box"] is not None and np.allclose(records[-1]["box"], FACE_BOX, atol=8)
    assert records[0]["box"] is None and records[0]["probability"] == max(
        records[0]["probabilities"].values()
    )
    assert sorted(p.relative_to(annotated).as_posix() for p in annotated.rglob("*.png")) == [
        "crops/bright.png",
        "crops/dark.png",
        "photo.png",
    ]
    assert cv2.imread(str(annotated / "photo.png")).shape == (360, 480, 3)

    result = runner.invoke(app, [*args[:3], "--out", str(table), "--faces", "none"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [row["error"] != "" for row in rows] == [True, False, False, False]
    rows = rows[1:]
    assert [row["box_x"] for row in rows] == ["", "", ""]
    assert list(rows[0])[-3:] == CLASSES and float(rows[0]["happy"]) > 0.9


def test_cli_video_every_nth_frame(tmp_path: Path, model_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for index in range(25):  # brightness 0, 10, ..., 240: frame 0 sad, 10 neutral, 20 happy
        writer.write(uniform(index * 10, (64, 64, 3)))
    writer.release()
    out = tmp_path / "video.jsonl"
    result = CliRunner().invoke(
        app, ["predict", str(model_path), str(video), "--every", "10", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["frame"], r["label"]) for r in records] == [
        (0, "sad"),
        (10, "neutral"),
        (20, "happy"),
    ]


def test_cli_model_option_takes_a_path_and_leaves_every_path_an_input(
    tmp_path: Path, model_path: Path
) -> None:
    bright, dark = write_png(tmp_path / "bright.png", uniform(200)), tmp_path / "dark.png"
    write_png(dark, uniform(20))
    out = tmp_path / "results.jsonl"
    runner = CliRunner()
    args = ["predict", "--model", str(model_path), str(bright), str(dark), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    labels = [json.loads(line)["label"] for line in out.read_text().splitlines()]
    assert labels == ["happy", "sad"]  # the brightness model, on both inputs
    result = runner.invoke(
        app, ["predict", "--model", str(model_path), str(model_path), str(bright)]
    )
    assert isinstance(result.exception, EmotionkitError)
    assert str(result.exception) == f"give the model as MODEL or --model, not both ({model_path})."
    result = runner.invoke(app, ["predict", "--model", str(model_path)])
    assert isinstance(result.exception, EmotionkitError)
    assert "give at least one image" in str(result.exception)


def test_cli_input_errors(tmp_path: Path, model_path: Path) -> None:
    corrupt, video = tmp_path / "corrupt.png", tmp_path / "bad.mp4"
    corrupt.write_bytes(b"garbage")
    video.write_bytes(b"not a video")
    runner = CliRunner()
    inputs = [str(corrupt), str(video), "missing.png"]
    result = runner.invoke(app, ["predict", str(model_path), *inputs])
    assert isinstance(result.exception, DataError)
    assert "none of the 3 inputs" in str(result.exception)
    assert result.stderr.splitlines() == [
        f"skipped: {corrupt}: not an image (unknown file signature).",
        f"skipped: {video}: cannot be opened as a video.",
        "skipped: missing.png: not found.",
    ]
    result = runner.invoke(app, ["predict", str(model_path), str(corrupt), "--cascade", "no.xml"])
    assert isinstance(result.exception, DataError) and "no.xml not found" in str(result.exception)
    result = runner.invoke(app, ["predict", str(model_path), str(corrupt), "--out", "r.txt"])
    assert isinstance(result.exception, DataError) and ".jsonl or .csv" in str(result.exception)


def imported_heavy_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run Python with -X importtime; the top-level packages of `HEAVY` it imported."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120
    )
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    return run, sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_predict_path_imports_no_training_stack(tmp_path: Path, model_path: Path) -> None:
    run, heavy = imported_heavy_modules("-c", "import emotionkit.predict")
    assert run.returncode == 0 and heavy == [], heavy
    crop = write_png(tmp_path / "crop.png", uniform(200))
    run, heavy = imported_heavy_modules("-m", "emotionkit", "predict", str(model_path), str(crop))
    assert run.returncode == 0 and "happy" in run.stdout, run.stderr[-2000:]
    assert heavy == [], heavy


def test_every_input_failing_exits_2_in_one_line(tmp_path: Path, model_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "emotionkit", "predict", str(model_path), "missing.png"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        "skipped: missing.png: not found.",
        "error: none of the 1 inputs could be read (see above).",
    ]
