"""Every run ends with a true status: bad data stops before a run directory exists, a run
that fails says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emotionkit.errors import DataError
from emotionkit.recipe import load_recipe
from tests.conftest import REPO, TINY_OVERRIDES
from tests.test_cli import run_cli

BAD_INPUTS = [
    "data.source={kind: image_folder, path: no_such_folder}",
    "model.weights=no_such_weights.keras",
    "train.distill={teacher: no_such_teacher.onnx}",
]


def test_a_missing_data_folder_exits_2_before_any_run_directory(tmp_path: Path) -> None:
    result = run_cli(
        "train", str(REPO / "recipes" / "quickstart.yaml"),
        "data.source.kind=image_folder", "data.source.path=no_such_folder", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "data.source.path: no_such_folder not found" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_inputs_stop_train_before_the_frameworks_load(tmp_path: Path) -> None:
    """The input checks come first: a typo in a path costs a second, not TensorFlow's import."""
    code = (
        "import sys\n"
        "from emotionkit import load_recipe, train\n"
        "from emotionkit.errors import EmotionkitError\n"
        f"for override in {BAD_INPUTS!r}:\n"
        f"    recipe = load_recipe({str(REPO / 'recipes' / 'quickstart.yaml')!r}, [override])\n"
        "    try:\n"
        "        train(recipe, runs_dir='runs')\n"
        "    except EmotionkitError as error:\n"
        "        print(error)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'jax', 'keras'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = out.stdout.splitlines()
    assert len(lines) == len(BAD_INPUTS) + 1, out.stdout + out.stderr
    assert "data.source.path" in lines[0] and "model.weights" in lines[1]
    assert "train.distill" in lines[2] and lines[-1] == "[]"
    assert not (tmp_path / "runs").exists()


def test_a_run_whose_data_fail_to_load_is_marked_failed_with_the_cause(tmp_path: Path) -> None:
    from emotionkit.workflow import train

    for name in ("happy", "sad"):
        (tmp_path / "faces" / "train" / name).mkdir(parents=True)
    (tmp_path / "faces" / "train" / "happy" / "broken.png").write_bytes(b"not a png")
    overrides = [
        *TINY_OVERRIDES,
        f"data.source={{kind: image_folder, path: {tmp_path / 'faces'}}}",
        "data.on_error=skip",
    ]
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", overrides)
    with pytest.raises(DataError):
        train(recipe, runs_dir=tmp_path / "runs")
    (run_dir,) = (tmp_path / "runs" / recipe.name).iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "holds no images" in manifest["error"] or "no readable train images" in manifest["error"]
    assert isinstance(manifest["wall_seconds"], float)  # a resume adds its time to it
    listed = run_cli("runs", "list", str(tmp_path / "runs"), "--json")
    (run,) = json.loads(listed.stdout)
    assert (run["status"], run["error"]) == ("failed", manifest["error"])
    assert run["resume"] == f"emotionkit train --resume {run_dir}"
