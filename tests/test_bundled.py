"""The bundled models: found without a model argument or by name, gated, with provenance.

The tests of several bundled models add a second one in a scratch assets folder
(`two_bundled`): a copy of `fer2013-cpu` whose metadata gives it its own name, validation
accuracy and upper-case class names, so every answer shows which of the two gave it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from emotionkit import bundled
from emotionkit.bundled import PROVENANCE_KEYS, bundled_model_path, list_bundled
from emotionkit.cli import app
from emotionkit.errors import DataError
from emotionkit.predict import Predictor, read_image
from emotionkit.predict.onnx_model import resolve_model_path
from emotionkit.serve import create_app

PHOTO = Path(__file__).parent / "data" / "face_photo.png"
CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
SECOND = "fer2013-second"
SECOND_CLASSES = [name.upper() for name in CLASSES]
SECOND_VAL_ACCURACY = "0.5125"


def test_bundled_model_carries_contract_and_provenance() -> None:
    rows = list_bundled()
    assert [row["name"] for row in rows if row["default"]] == ["fer2013-cpu"]
    row = next(row for row in rows if row["name"] == "fer2013-cpu")
    assert row["latency_ms"] is None  # timing only when asked
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


@pytest.fixture
def two_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped default model and `SECOND` in a scratch assets folder, the only two
    registered as bundled (the mutated registry is the one every module imported)."""
    assets = tmp_path / "assets"
    assets.mkdir()
    shipped = bundled_model_path()
    shutil.copy(shipped, assets / shipped.name)
    proto = onnx.load(str(shipped))
    changes = {
        "bundled_name": SECOND,
        "val_accuracy": SECOND_VAL_ACCURACY,
        "class_names": json.dumps(SECOND_CLASSES),
    }
    for entry in proto.metadata_props:
        entry.value = changes.get(entry.key, entry.value)
    onnx.save(proto, str(assets / "second.onnx"))
    monkeypatch.setattr(bundled, "assets_dir", lambda: assets)
    for other in set(bundled.BUNDLED_FILES) - {"fer2013-cpu"}:  # the shipped default only
        monkeypatch.delitem(bundled.BUNDLED_FILES, other)
    monkeypatch.setitem(bundled.BUNDLED_FILES, SECOND, "second.onnx")
    return assets


def test_list_bundled_times_every_model(two_bundled: Path) -> None:
    rows = {row["name"]: row for row in list_bundled(latency=True)}
    assert sorted(rows) == ["fer2013-cpu", SECOND]
    assert [rows["fer2013-cpu"]["default"], rows[SECOND]["default"]] == [True, False]
    assert rows[SECOND]["val_accuracy"] == SECOND_VAL_ACCURACY
    assert rows[SECOND]["classes"] == SECOND_CLASSES
    assert rows[SECOND]["path"] == str(two_bundled / "second.onnx")
    for row in rows.values():
        latency = row["latency_ms"]
        assert isinstance(latency, float) and latency > 0


def test_models_list_shows_every_bundled_model(two_bundled: Path) -> None:
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    table = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    assert table["fer2013-cpu"][1:4] == ["yes", "48x48x1", "0.6643"]
    assert table[SECOND][1:3] == ["48x48x1", SECOND_VAL_ACCURACY]  # not the default
    for name in ("fer2013-cpu", SECOND):
        value, unit = table[name][-2:]
        assert unit == "ms" and float(value) > 0, table[name]
    assert f"classes (7): {', '.join(SECOND_CLASSES)}" in result.output
    quick = CliRunner().invoke(app, ["models", "list", "--no-latency"])
    assert quick.exit_code == 0, quick.output
    assert SECOND in quick.output and not re.search(r"\d ms\b", quick.output)


def test_predict_picks_a_bundled_model_by_name(two_bundled: Path, tmp_path: Path) -> None:
    labels = {}
    for name, model_args in [
        ("default", []),
        ("option", ["--model", SECOND]),
        ("positional", [SECOND]),
    ]:
        out = tmp_path / f"{name}.jsonl"
        result = CliRunner().invoke(app, ["predict", *model_args, str(PHOTO), "--out", str(out)])
        assert result.exit_code == 0, result.output
        (row,) = [json.loads(line) for line in out.read_text().splitlines()]
        labels[name] = row["label"]
    assert labels["default"] in CLASSES
    assert labels["option"] == labels["positional"] == labels["default"].upper()


def test_predictor_takes_a_bundled_name(two_bundled: Path) -> None:
    second = Predictor(SECOND, detector="none")
    assert second.class_names == tuple(SECOND_CLASSES)
    assert second.info.path == two_bundled / "second.onnx"
    assert Predictor(model=SECOND, detector="none").info.path == second.info.path
    assert Predictor(detector="none").class_names == tuple(CLASSES)  # the default


def test_serve_picks_a_bundled_model_by_name(
    two_bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(SECOND, detector="haar")) as client:
        model = client.get("/v1/model").json()
        assert (model["name"], model["file"]) == (SECOND, "second.onnx")
        assert model["classes"] == SECOND_CLASSES
        assert client.get("/healthz").json()["model"] == SECOND
    served: list[str] = []
    monkeypatch.setattr(
        "emotionkit.serve.server.create_app",
        lambda model, **options: served.append(model) or create_app(model, detector="none"),
    )
    monkeypatch.setattr("uvicorn.run", lambda app, **options: None)
    result = CliRunner().invoke(app, ["serve", "--model", SECOND])
    assert result.exit_code == 0, result.output
    assert served == [SECOND]


def test_an_existing_path_wins_over_a_bundled_name(
    two_bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / SECOND / "export").mkdir(parents=True)
    shutil.copy(two_bundled / "fer2013_cpu.onnx", tmp_path / SECOND / "export" / "model.onnx")
    assert resolve_model_path(SECOND) == Path(SECOND) / "export" / "model.onnx"
    assert resolve_model_path("fer2013-cpu") == two_bundled / "fer2013_cpu.onnx"


def test_unknown_name_lists_the_bundled_names(two_bundled: Path) -> None:
    with pytest.raises(DataError) as caught:
        resolve_model_path("fer2013-secnd")
    assert str(caught.value) == (
        "fer2013-secnd not found: give an .onnx file, a run directory or a bundled model's "
        f"name (fer2013-cpu, {SECOND}); did you mean {SECOND}?"
    )
    result = CliRunner().invoke(app, ["predict", "--model", "nope", str(PHOTO)])
    assert isinstance(result.exception, DataError) and "(fer2013-cpu, " in str(result.exception)


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--model", "nope", str(PHOTO)],
        ["predict", "nope", str(PHOTO)],  # in MODEL's place: not run with the default model
        ["predict", "nope", "--source", "0"],
        ["serve", "--model", "nope"],
    ],
)
def test_unknown_name_exits_2_in_one_line(args: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "emotionkit", *args], capture_output=True, text=True, timeout=120
    )
    expected = (
        "error: nope not found: give an .onnx file, a run directory or a bundled model's name "
        f"({bundled.bundled_names()})."
    )
    assert (run.returncode, run.stderr.splitlines(), run.stdout) == (2, [expected], "")
