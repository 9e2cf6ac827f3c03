"""`emotionkit predict` over many inputs: bad files skipped and listed, results streamed.

Uses the brightness model of tests/test_predict.py (dark: sad, mid-grey: neutral, bright:
happy), with `--faces none` or small crops, so no face detector is involved.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emotionkit.cli import app
from emotionkit.predict import Predictor
from tests.test_predict import (
    CLASSES,
    FACE_PHOTO,
    build_brightness_model,
    contract_metadata,
    uniform,
)
from tests.test_predict_decode import png_header

GOOD = 1000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_brightness_model(tmp_path_factory.mktemp("model") / "model.onnx")


def broken_video(path: Path) -> Path:
    """A 30-frame MJPG AVI cut off at 60 % of its bytes: its header still declares 30."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for _ in range(30):
        writer.write(uniform(230, (32, 32, 3)))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """1,000 tiny PNGs and BMPs (brightness i % 256) plus bad files; bad name -> reason."""
    folder = tmp_path_factory.mktemp("many")
    for index in range(GOOD):
        suffix = ".png" if index % 2 else ".bmp"
        (folder / f"sub{index % 7}").mkdir(exist_ok=True)
        cv2.imwrite(
            str(folder / f"sub{index % 7}" / f"img{index:04d}{suffix}"),
            uniform(index % 256, (8, 8)),
        )
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("a text file with an image suffix")
    (folder / "truncated.png").write_bytes((folder / "sub1" / "img0001.png").read_bytes()[:40])
    (folder / "bomb.png").write_bytes(png_header(70_000, 70_000))  # 4.9 gigapixels, 33 bytes
    # OpenCV's own 2**30-pixel cap raised an assertion (a traceback, exit 1) on this one.
    dib = struct.pack("<Iii", 40, 50_000, 50_000) + bytes(28)  # BITMAPINFOHEADER
    (folder / "huge.bmp").write_bytes(b"BM" + bytes(12) + dib)
    broken_video(folder / "cut.avi")
    reasons = {
        "empty.png": "empty file (0 bytes)",
        "notes.jpg": "not an image (unknown file signature)",
        "truncated.png": "corrupt PNG",
        "bomb.png": "too large: 70000x70000 pixels",
        "huge.bmp": "too large: 50000x50000 pixels",
        "cut.avi": "the video stopped at frame",
    }
    return folder, reasons


def test_a_folder_of_1000_images_with_bad_files_among_them(
    tmp_path: Path, model_path: Path, big_folder: tuple[Path, dict[str, str]]
) -> None:
    folder, reasons = big_folder
    out = tmp_path / "results.jsonl"
    args = ["predict", str(model_path), str(folder), "--out", str(out), "--every", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    errors = {Path(r["source"]).name: r["error"] for r in records if "error" in r}
    assert set(errors) == set(reasons)
    for name, reason in reasons.items():
        assert errors[name].startswith(reason), (name, errors[name])
        assert f"{folder / name}: {reason}" in result.stderr
    images = {Path(r["source"]).name: r for r in records if "error" not in r and r["frame"] is None}
    assert len(images) == GOOD
    for name, record in images.items():  # every good image has its row, with its label
        value = int(name[3:7]) % 256  # sad below 76.5 (logits cross), happy above 178.5
        assert record["label"] == ("sad" if value < 77 else "neutral" if value < 179 else "happy")
    frames = [r for r in records if "error" not in r and r["frame"] is not None]
    assert frames and all(r["label"] == "happy" for r in frames)  # the video's first frames
    summary = result.stderr.strip().splitlines()[-1]
    assert summary == (
        f"summary: {GOOD:,} images and {len(frames)} video frames read, "
        f"{GOOD + len(frames):,} faces classified, {len(reasons)} skipped"
    )


def test_results_are_written_as_they_come_and_kept_on_ctrl_c(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(40):
        cv2.imwrite(str(folder / f"{index:02d}.png"), uniform(250, (8, 8)))
    real_predict, calls = Predictor.predict, []

    def interrupted(self: Predictor, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # the user presses Ctrl-C during the third batch of 8
            out_so_far = (tmp_path / "r.csv").read_text().splitlines()
            assert len(out_so_far) == 1 + 16  # header + two batches, already on disk
            raise KeyboardInterrupt
        return real_predict(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Predictor, "predict", interrupted)
    result = CliRunner().invoke(
        app, ["predict", str(model_path), str(folder), "--out", str(tmp_path / "r.csv")]
    )
    assert result.exit_code == 130
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].endswith(",".join(CLASSES))
    assert "interrupted: the results so far are kept" in result.stderr


def test_uncertain_below_a_probability(tmp_path: Path, model_path: Path) -> None:
    grey = uniform(100)  # neutral at about 0.86
    assert Predictor(model_path).predict(grey)[0].label == "neutral"
    (prediction,) = Predictor(model_path, uncertain_below=0.9).predict(grey)
    assert prediction.label == "uncertain" and prediction.probability == pytest.approx(
        0.86, abs=0.01
    )
    assert Predictor(model_path, uncertain_below=0.9).predict(uniform(250))[0].label == "happy"
    image = tmp_path / "grey.png"
    cv2.imwrite(str(image), grey)
    out = tmp_path / "u.jsonl"
    args = ["predict", str(model_path), str(image), "--uncertain-below", "0.9", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "uncertain" in result.stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["label"] == "uncertain" and record["probability"] == pytest.approx(0.86, abs=0.01)


def test_multi_label_model_reports_the_classes_above_their_thresholds(tmp_path: Path) -> None:
    metadata = {**contract_metadata(), "targets": "multi_label", "thresholds": "[0.1, 0.5, 0.01]"}
    model = Predictor(build_brightness_model(tmp_path / "multi.onnx", metadata=metadata))
    assert model.info.multi_label and model.info.thresholds == (0.1, 0.5, 0.01)
    (prediction,) = model.predict(uniform(100))  # sad 0.14, neutral 0.86, happy 0.002
    assert prediction.labels == ("sad", "neutral") and prediction.label == "neutral"
    image = tmp_path / "grey.png"
    cv2.imwrite(str(image), uniform(100))
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path / "multi.onnx"), str(image), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].split(",")[8] == "sad;neutral"


def test_a_face_photo_gives_a_row_per_face_and_annotation_for_uncertain(
    tmp_path: Path, model_path: Path
) -> None:
    shutil.copy(FACE_PHOTO, tmp_path / "photo.png")
    args = ["predict", str(model_path), str(tmp_path / "photo.png"), "--detector", "haar"]
    result = CliRunner().invoke(
        app, [*args, "--uncertain-below", "0.99", "--annotate", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "a" / "photo.png")) is not None
    assert np.isfinite(cv2.imread(str(tmp_path / "a" / "photo.png"))).all()
