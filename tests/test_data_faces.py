"""`data.faces`: training images cut down to their face exactly as `predict` cuts them.

No Keras here: decoding, the crop, the recipe field, the export metadata and the predictor
reading it back. `tests/data/face_photo.png` holds one face that OpenCV's Haar cascade
finds; MTCNN runs where `emotionkit[faces]` is installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotionkit import load_recipe
from emotionkit.bundled import bundled_model_path
from emotionkit.data.decode import decode_images
from emotionkit.data.faces import FacesSpec
from emotionkit.data.sources import check_source
from emotionkit.data.spec import DataSpec
from emotionkit.errors import DataError, RecipeError
from emotionkit.export_formats import artifact_metadata
from emotionkit.image_decode import read_image_file
from emotionkit.predict import CropPolicy, Predictor
from emotionkit.predict.mtcnn import mtcnn_weights_dir
from emotionkit.predict.predictor import trained_face_crop

PHOTO = Path(__file__).parent / "data" / "face_photo.png"
needs_mtcnn = pytest.mark.skipif(
    mtcnn_weights_dir() is None, reason="mtcnn not installed: pip install 'emotionkit[faces]'"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The photo, a plain picture with no face, and a FER-style 48x48 crop."""
    photo = tmp_path / "photo.png"
    shutil.copy(PHOTO, photo)
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.full((300, 400, 3), 128, np.uint8))
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), np.random.default_rng(0).integers(0, 255, (48, 48), np.uint8))
    return {"photo": photo, "plain": plain, "crop": crop}


@pytest.mark.parametrize(
    "detector", ["haar", pytest.param("mtcnn", marks=needs_mtcnn)], ids=["haar", "mtcnn"]
)
def test_training_crops_are_the_crops_predict_classifies(
    files: dict[str, Path], detector: str
) -> None:
    faces = FacesSpec(detector=detector)
    images, kept, errors = decode_images([files["photo"]], 48, 1, "raise", faces)
    assert kept.tolist() == [0] and errors == []
    predictor = Predictor(bundled_model_path(), detector=detector)  # a 48x48 grey model
    (crop,) = predictor._crops(0, read_image_file(files["photo"]), "auto")
    assert crop.face is not None  # the face was found, not the photo taken whole
    np.testing.assert_array_equal(images[0].astype(np.float32), crop.pixels)


def test_a_photo_without_a_face_is_skipped_and_listed_and_a_crop_stays_whole(
    files: dict[str, Path],
) -> None:
    paths = [files["plain"], files["photo"], files["crop"]]
    images, kept, errors = decode_images(paths, 48, 1, "skip", FacesSpec(detector="haar"))
    assert kept.tolist() == [1, 2]
    assert errors == [
        {"path": str(files["plain"]), "reason": "no face found by data.faces.detector=haar"}
    ]
    np.testing.assert_array_equal(images[1, ..., 0], cv2.imread(str(files["crop"]), 0))
    with pytest.raises(DataError, match=r"plain\.png: no face found"):
        decode_images(paths, 48, 1, "raise", FacesSpec(detector="haar"))


def test_the_recipe_field_and_its_shorthand(files: dict[str, Path]) -> None:
    assert DataSpec(faces="detect").faces == FacesSpec()
    assert DataSpec(faces="none").faces is None
    recipe = load_recipe("quickstart", ["data.faces={detector: haar, margin: 0.1, align: false}"])
    assert recipe.data.faces == FacesSpec(detector="haar", margin=0.1, align=False)
    with pytest.raises(RecipeError, match=r"data\.faces\.detector"):
        load_recipe("quickstart", ["data.faces={detector: yolo}"])


def test_a_missing_detector_stops_before_the_run_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("emotionkit.predict.detectors.mtcnn_weights_dir", lambda: None)
    monkeypatch.setattr("emotionkit.predict.mtcnn.mtcnn_weights_dir", lambda: None)
    with pytest.raises(DataError, match=r"^data\.faces\.detector: .*emotionkit\[faces\]"):
        check_source(DataSpec(faces="detect"))


def test_the_export_carries_the_policy_and_predict_uses_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("data:\n  faces: {detector: haar, margin: 0.2}\n")
    (run / "labels_mapping.json").write_text(json.dumps({"0": "happy", "1": "sad"}))
    (run / "manifest.json").write_text("{}")

    class Normalize:
        scale, offset = np.array([0.5]), np.array([-1.0])

    class Model:  # what artifact_metadata reads of a Keras model
        input_shape = (None, 48, 48, 1)

        def get_layer(self, name: str) -> Normalize:
            return Normalize()

    metadata = artifact_metadata(run, Model())
    info = Predictor(bundled_model_path(), detector="none").info
    info = type(info)(**{**vars(info), "metadata": {**info.metadata, **metadata}})
    detector, policy = trained_face_crop(info)
    assert detector == "haar"
    assert policy == CropPolicy(margin=0.2, square=True, align=True, min_tilt=10.0)
    (run / "recipe.yaml").write_text("data: {}\n")
    assert "face_crop" not in artifact_metadata(run, Model())
