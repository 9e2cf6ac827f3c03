"""`compare_runs` and its renderers: metrics side by side, and the recipe keys that differ."""

from __future__ import annotations

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.compare import (
    MISSING,
    compare_runs,
    flatten_recipe,
    to_csv,
    to_markdown,
    to_rich_table,
)
from emotionkit.evaluate.run_files import RunDirError

RECIPE: dict[str, Any] = {
    "name": "demo",
    "data": {"image_size": 48, "augment": [{"flip": {"mode": "horizontal"}}]},
    "model": {"name": "resnet", "stage_blocks": [1, 1, 1, 1]},
    "train": {"epochs": 3, "optimizer": {"name": "adamw", "lr": 0.002}},
}


def make_run(
    root: Path,
    name: str,
    recipe: dict[str, Any],
    accuracy: float,
    *,
    evaluated: dict[str, float] | None = None,
) -> Path:
    """A run with training-time metrics and, if `evaluated`, an eval/val/metrics.json."""
    run_dir = root / "demo" / name
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    manifest = {"status": "completed", "parameters": {"total": 1200}, "wall_seconds": 61.5}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    val = {"accuracy": accuracy, "macro_f1": accuracy - 0.1, "per_class": {}}
    (run_dir / "metrics.json").write_text(json.dumps({"best_epoch": 1, "val": val}))
    (run_dir / "history.csv").write_text("epoch,loss\n0,1.5\n1,1.2\n2,1.1\n")
    if evaluated is not None:
        (run_dir / "eval" / "val").mkdir(parents=True)
        (run_dir / "eval" / "val" / "metrics.json").write_text(json.dumps(evaluated))
    return run_dir


def with_lr(lr: float) -> dict[str, Any]:
    recipe = copy.deepcopy(RECIPE)
    recipe["train"]["optimizer"]["lr"] = lr
    return recipe


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    evaluated = {"accuracy": 0.75, "macro_f1": 0.7, "balanced_accuracy": 0.72, "ece": 0.05}
    return [
        make_run(tmp_path, "a", with_lr(0.002), 0.6, evaluated=evaluated),
        make_run(tmp_path, "b", with_lr(0.001), 0.55),
    ]


def test_flatten_keeps_lists_whole() -> None:
    flat = flatten_recipe({"a": {"b": {"c": 1}, "d": [1, {"e": 2}]}, "f": {}, "g": None})
    assert flat == {"a.b.c": 1, "a.d": [1, {"e": 2}], "f": {}, "g": None}


def test_one_differing_key(two_runs: list[Path]) -> None:
    comparison = compare_runs(two_runs)
    assert comparison.runs == ["demo/a", "demo/b"]
    assert comparison.differing_keys == {"train.optimizer.lr": [0.002, 0.001]}


def test_metric_rows(two_runs: list[Path]) -> None:
    metrics = compare_runs(two_runs).metrics
    # Run a was evaluated (eval/val/metrics.json wins); run b only has training-time metrics.
    assert metrics["accuracy"] == [0.75, 0.55]
    assert metrics["macro_f1"] == [0.7, pytest.approx(0.45)]
    assert metrics["balanced_accuracy"] == [0.72, None]
    assert metrics["ece"] == [0.05, None]
    assert metrics["best_epoch"] == [1, 1]
    assert metrics["parameters"] == [1200, 1200]
    assert metrics["epochs_run"] == [3, 3]
    assert metrics["wall_seconds"] == [61.5, 61.5]
    assert "cohen_kappa" not in metrics  # no run has it
    assert list(metrics)[:4] == ["accuracy", "macro_f1", "balanced_accuracy", "ece"]


def test_sources_say_where_metrics_came_from(two_runs: list[Path]) -> None:
    sources = compare_runs(two_runs).sources
    assert sources == ["eval/val/metrics.json", 'metrics.json["val"] (training-time)']


def test_markdown(two_runs: list[Path]) -> None:
    comparison = compare_runs(two_runs)
    lines = to_markdown(comparison).splitlines()
    header = lines.index("| metric | demo/a | demo/b |")
    assert lines[header + 1] == "|---|---:|---:|"
    rows = lines[header + 2 : header + 2 + len(comparison.metrics)]
    assert [row.split(" | ")[0] for row in rows] == [f"| {name}" for name in comparison.metrics]
    assert lines[header + 2 + len(comparison.metrics)] == ""
    assert "| accuracy | 0.7500 | 0.5500 |" in rows
    assert "| balanced_accuracy | 0.7200 | — |" in rows
    assert "| `train.optimizer.lr` | 0.002 | 0.001 |" in lines


def test_csv_parses(two_runs: list[Path]) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(compare_runs(two_runs)))))
    assert rows[0] == ["section", "name", "demo/a", "demo/b"]
    by_name = {(row[0], row[1]): row[2:] for row in rows[1:]}
    assert [float(value) for value in by_name["metric", "accuracy"]] == [0.75, 0.55]
    assert by_name["metric", "ece"] == ["0.05", ""]
    assert by_name["recipe", "train.optimizer.lr"] == ["0.002", "0.001"]
    assert {row[0] for row in rows[1:]} == {"source", "metric", "recipe"}


def test_three_runs_one_lacking_a_key(tmp_path: Path) -> None:
    old = copy.deepcopy(RECIPE)
    del old["model"]["stage_blocks"]  # a run from before the field existed
    longer = copy.deepcopy(RECIPE)
    longer["data"]["augment"].append({"affine": {"degrees": 10}})
    runs = [
        make_run(tmp_path, "a", RECIPE, 0.6),
        make_run(tmp_path, "b", old, 0.6),
        make_run(tmp_path, "c", longer, 0.6),
    ]
    comparison = compare_runs(runs)
    assert comparison.differing_keys == {
        "data.augment": [
            RECIPE["data"]["augment"],
            RECIPE["data"]["augment"],
            longer["data"]["augment"],
        ],
        "model.stage_blocks": [[1, 1, 1, 1], MISSING, [1, 1, 1, 1]],
    }
    markdown = to_markdown(comparison)
    assert "| `model.stage_blocks` | [1, 1, 1, 1] | — | [1, 1, 1, 1] |" in markdown
    assert 'recipe,model.stage_blocks,"[1, 1, 1, 1]",—,"[1, 1, 1, 1]"' in to_csv(comparison)


def test_identical_recipes_have_no_differences(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "a", RECIPE, 0.6), make_run(tmp_path, "b", RECIPE, 0.7)]
    comparison = compare_runs(runs)
    assert comparison.differing_keys == {}
    assert "Recipe differences: none." in to_markdown(comparison)


def test_rich_table_prints_values_verbatim(tmp_path: Path) -> None:
    old = copy.deepcopy(RECIPE)
    old["model"]["stage_blocks"] = [2, 2, 2, 2]
    runs = [make_run(tmp_path, "a", RECIPE, 0.6), make_run(tmp_path, "b", old, 0.7)]
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(to_rich_table(compare_runs(runs)))
    text = console.export_text()
    assert "recipe differences" in text
    assert "[1, 1, 1, 1]" in text and "[2, 2, 2, 2]" in text  # not swallowed as markup
    assert "0.6000" in text and "0.7000" in text


def test_missing_run_dir_names_the_path(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a", RECIPE, 0.6)
    missing = tmp_path / "runs" / "no-such-run"
    with pytest.raises(RunDirError, match="no-such-run"):
        compare_runs([run, missing])
    not_a_run = tmp_path / "just-a-folder"
    not_a_run.mkdir()
    with pytest.raises(EmotionkitError, match=r"just-a-folder.*recipe\.yaml"):
        compare_runs([run, not_a_run])


def test_report_and_compare_load_no_framework() -> None:
    # They only read files: `emotionkit compare` must not pay for a TensorFlow import.
    code = (
        "import sys, emotionkit.evaluate.report, emotionkit.evaluate.compare; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'jax', 'keras', 'keras_cv')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
