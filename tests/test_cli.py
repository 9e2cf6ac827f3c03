"""The real `emotionkit` console script: help, recipe commands and input errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EMOTIONKIT = shutil.which("emotionkit") or "emotionkit"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMOTIONKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def run_cli_concurrently(*commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """`run_cli` for each argument list, all at the same time (much of a run is start-up)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: run_cli(*args), commands))


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "export", "recipe"):
        assert command in result.stdout


def test_cli_import_does_not_load_tensorflow_or_jax() -> None:
    code = (
        "import sys, emotionkit.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'jax', 'keras', 'keras_cv')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recipe_show_applies_overrides(quickstart: Path) -> None:
    result = run_cli("recipe", "show", str(quickstart), "train.epochs=3", "model.depth=34")
    assert result.returncode == 0, result.stderr
    assert "epochs: 3" in result.stdout and "depth: 34" in result.stdout


def test_recipe_schema_is_json() -> None:
    result = run_cli("recipe", "schema")
    assert json.loads(result.stdout)["title"] == "Recipe"


def test_typo_exits_2_without_traceback(quickstart: Path) -> None:
    result = run_cli("train", str(quickstart), "train.epochz=3")
    assert result.returncode == 2
    assert "train.epochz" in result.stderr and "train.epochs" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.augment=[{flipp: {}}]"], "Did you mean 'flip'?"),
        (["data.augment=[{flip: {pp: 0.5}}]"], "Did you mean `data.augment[0].flip.p`?"),
        (["model.name=mobilenet_v3_small", "model.depth=50"], "unknown key `model.depth`"),
    ],
)
def test_recipe_show_refuses_unknown_ops_params_and_model_fields(
    quickstart: Path, tmp_path: Path, overrides: list[str], expected: str
) -> None:
    """Checked by the schema at `recipe show`, before any run directory could exist."""
    result = run_cli("recipe", "show", str(quickstart), *overrides, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_debug_flag_shows_the_traceback(quickstart: Path) -> None:
    result = run_cli("--debug", "recipe", "show", str(quickstart), "train.epochz=3")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("args", [("train", "missing.yaml"), ("export", "no-such-run")])
def test_missing_inputs_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert args[1] in result.stderr


def test_usage_errors_exit_2() -> None:
    result = run_cli("train")
    assert result.returncode == 2 and "--resume RUN_DIR" in result.stderr


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emotionkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "train" in result.stdout


def test_packaged_recipes_list_resolve_by_name_and_copy(tmp_path: Path) -> None:
    listing = run_cli("recipe", "list")
    assert listing.returncode == 0 and listing.stdout.split()[0] == "fer2013_cpu"
    assert "quickstart" in listing.stdout
    shown = run_cli("recipe", "show", "quickstart", "train.epochs=2", cwd=tmp_path)
    assert shown.returncode == 0 and "name: quickstart" in shown.stdout
    copied = run_cli("recipe", "copy", "quickstart", cwd=tmp_path)
    assert copied.returncode == 0
    assert (tmp_path / "quickstart.yaml").read_text() == (
        Path(__file__).parents[1] / "emotionkit" / "recipes" / "quickstart.yaml"
    ).read_text()
    again = run_cli("recipe", "copy", "quickstart", cwd=tmp_path)
    assert again.returncode == 2 and "nothing was overwritten" in again.stderr
    missing = run_cli("recipe", "show", "quickstrat", cwd=tmp_path)
    assert missing.returncode == 2 and "quickstart" in missing.stderr
