"""Videos and streams: faces tracked across frames, `--smooth`, and `--source`.

A synthetic video: a bright square (the brightness model's "happy" face) moves across a
dark frame; one frame in the middle shows it dark ("sad"). The detector used here finds
bright squares, so the test is about tracking and smoothing, not face finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emotionkit.cli import app
from emotionkit.errors import DataError
from emotionkit.predict import Detection, FaceTracker, Prediction, Predictor, smooth_results
from emotionkit.predict.inputs import Frame, FrameResult, iter_stream, predict_frames
from tests.test_predict import build_brightness_model

FLIP = 5  # the frame on which the face is dark


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_brightness_model(tmp_path_factory.mktemp("model") / "model.onnx")


def bright_squares(gray: np.ndarray) -> list[Detection]:
    """Each connected patch brighter than the background (> 5) as a face box."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((gray > 5).astype(np.uint8))
    return [Detection(tuple(int(v) for v in stats[i, :4])) for i in range(1, count)]


def moving_face_frames(count: int = 10) -> list[np.ndarray]:
    """A 60 px square moving 8 px right per frame over a black 240 x 320 frame; grey 240
    except on frame FLIP, where it is 20 (a one-frame flip from happy to sad)."""
    frames = []
    for index in range(count):
        frame = np.zeros((240, 320, 3), np.uint8)
        x = 40 + 8 * index
        frame[90:150, x : x + 60] = 20 if index == FLIP else 240
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_a_moving_face_keeps_its_track_and_a_one_frame_flip_is_smoothed_away(
    model_path: Path,
) -> None:
    predictor = Predictor(model_path, detector=bright_squares)
    frames = [
        Frame(pixels, "clip", index, Path("clip"))
        for index, pixels in enumerate(moving_face_frames())
    ]
    raw = list(predict_frames(predictor, frames, print))
    assert [r.predictions[0].label for r in raw] == ["happy"] * FLIP + ["sad"] + ["happy"] * 4
    smoothed = list(smooth_results(raw, predictor.labelled))
    faces = [r.predictions[0] for r in smoothed]
    assert [p.label for p in faces] == ["happy"] * 10
    assert {p.track for p in faces} == {1}  # the moving face is one track throughout
    assert faces[FLIP].probabilities["sad"] < faces[FLIP].probabilities["happy"]
    assert faces[0].probabilities == raw[0].predictions[0].probabilities  # first frame as is


def prediction(box: tuple[int, int, int, int], happy: float = 0.9) -> Prediction:
    rest = (1 - happy) / 2
    return Prediction("happy", {"sad": rest, "neutral": rest, "happy": happy}, box)


def frame_result(index: int, *boxes: tuple[int, int, int, int], source: str = "v") -> FrameResult:
    frame = Frame(np.zeros((200, 400, 3), np.uint8), source, index, Path(source))
    return FrameResult(frame, [prediction(box) for box in boxes])


def test_two_faces_keep_apart_and_new_faces_and_sources_get_new_tracks(model_path: Path) -> None:
    tracker = FaceTracker(Predictor(model_path, detector="none").labelled)
    tracks = [
        [p.track for p in tracker.update(result).predictions]
        for result in (
            frame_result(0, (10, 10, 50, 50), (200, 10, 50, 50)),
            frame_result(1, (18, 12, 50, 50), (192, 10, 50, 50)),  # both moved
            frame_result(2, (200, 10, 50, 50), (330, 100, 50, 50)),  # left face gone, a new one
            frame_result(3, (15, 10, 50, 50)),  # track 1 back after a frame unseen
            frame_result(0, (10, 10, 50, 50), source="other"),  # a new video starts afresh
        )
    ]
    assert tracks == [[1, 2], [1, 2], [2, 3], [1], [1]]
    still = FrameResult(Frame(np.zeros((8, 8, 3), np.uint8), "a.png", None, Path("a.png")), [])
    assert tracker.update(still) is still  # still images are not tracked


def test_cli_smooth_on_a_video_file(tmp_path: Path, model_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", moving_face_frames())
    out = tmp_path / "clip.jsonl"
    args = ["predict", str(model_path), str(video), "--faces", "none", "--every", "1"]
    result = CliRunner().invoke(app, [*args, "--smooth", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(10))
    assert {r["track"] for r in records} == {1}
    # the whole frame is mostly black: "sad" throughout, and the dark frame does not flip it
    assert len({r["label"] for r in records}) == 1


def test_source_reads_a_video_file_live(tmp_path: Path, model_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", moving_face_frames())
    frames = list(iter_stream(str(video)))
    assert [f.frame for f in frames] == list(range(10)) and frames[0].source == str(video)
    out = tmp_path / "live.csv"
    result = CliRunner().invoke(
        app,
        ["predict", str(model_path), "--source", str(video), "--faces", "none", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 10


def test_source_without_a_camera_or_with_a_dead_stream_exits_2(
    tmp_path: Path, model_path: Path
) -> None:
    with pytest.raises(DataError, match="--source 9: no camera 9 could be opened"):
        next(iter_stream("9"))
    result = CliRunner().invoke(
        app, ["predict", str(model_path), "--source", "rtsp://127.0.0.1:9/live"]
    )
    assert isinstance(result.exception, DataError)
    assert "--source rtsp://127.0.0.1:9/live: cannot be opened" in str(result.exception)
    run = subprocess.run(
        [sys.executable, "-m", "emotionkit", "predict", str(model_path), "--source", "7"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: --source 7: no camera 7 could be opened (none attached, or in use)."
    )
