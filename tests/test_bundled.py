"""The bundled FER2013 model: found without a model argument, gated, with its provenance."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from emotionkit.bundled import PROVENANCE_KEYS, bundled_model_path, list_bundled
from emotionkit.cli import app
from emotionkit.predict import Predictor, read_image

PHOTO = Path(__file__).parent / "data" / "face_photo.png"


def test_bundled_model_carries_contract_and_provenance() -> None:
    (row,) = list_bundled()
    assert row["name"] == "fer2013-cpu" and row["default"] is True
    assert row["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert row["input"] == "48x48x1" and float(str(row["size_mb"])) < 8
    for key in PROVENANCE_KEYS:
        assert row[key], key
    assert 0.6 < float(str(row["val_accuracy"])) < 1.0
    assert str(row["training_command"]).startswith("emotionkit train recipes/fer2013_cpu.yaml")


def test_predict_without_a_model_uses_the_bundled_one(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(app, ["predict", str(PHOTO), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["box"] is not None  # the photo's one face was found and classified
    assert row["label"] in row["probabilities"]
    expected = Predictor(bundled_model_path()).predict(read_image(PHOTO))
    assert row["label"] == expected[0].label


def test_models_list_shows_the_bundled_model() -> None:
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "fer2013-cpu" in result.output and "0.6643" in result.output
