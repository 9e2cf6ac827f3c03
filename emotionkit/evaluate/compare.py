"""Runs side by side: their headline metrics, and the recipe keys that made them differ.

`compare_runs(run_dirs)` reads each run's recipe, manifest and metrics (the evaluation file
when the run was evaluated, else the training-time metrics) into a `Comparison`; the
renderers turn it into Markdown (for a PR or notes), CSV (for a spreadsheet) or a rich
table (for the terminal). Only the recipe keys whose values differ are listed, since those
are what explain a difference in the numbers.

This module only reads files (no Keras, TensorFlow or JAX).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table
from rich.text import Text

from emotionkit.evaluate.run_files import (
    MISSING_TEXT,
    RunDirError,
    epochs_logged,
    format_number,
    load_split_metrics,
    read_run_json,
    run_name,
)


class _Missing:
    """The value of a recipe key that a run does not have (an older schema, say)."""

    def __repr__(self) -> str:
        return MISSING_TEXT


MISSING: Any = _Missing()
"""Stands in `Comparison.differing_keys` for a key one run lacks; renders as "—"."""

_SPLIT_METRICS = (
    "accuracy",
    "macro_f1",
    "balanced_accuracy",
    "weighted_f1",
    "log_loss",
    "ece",
    "cohen_kappa",
)


@dataclass(frozen=True)
class Comparison:
    """Runs side by side.

    Attributes:
        runs: run names, `<recipe name>/<timestamp>` (the run directory's last two parts).
        split: the split the metrics are on.
        sources: per run, the file its metrics came from (evaluation or training-time), so a
            reader can tell when two columns were not measured the same way.
        metrics: metric name -> value per run (None where that run lacks it), in a fixed
            order; a metric no run has is left out.
        differing_keys: dotted recipe key -> value per run (`MISSING` where the run's recipe
            lacks the key), only for keys whose values are not all equal.
    """

    runs: list[str]
    split: str
    sources: list[str]
    metrics: dict[str, list[Any]]
    differing_keys: dict[str, list[Any]]


def read_recipe(run_dir: Path) -> dict[str, Any]:
    """The run's resolved `recipe.yaml` as a dict; a path that is not a run raises."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(
            f"{run_dir} does not exist: pass a run directory such as runs/<name>/<timestamp>"
        )
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} has no recipe.yaml, so it is not a run directory written by "
            "`emotionkit train`: pass runs/<name>/<timestamp>"
        )
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RunDirError(f"{path} could not be read: {error}") from error
    if not isinstance(recipe, dict):
        raise RunDirError(f"{path} is not a YAML mapping of recipe sections")
    return recipe


def flatten_recipe(recipe: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections to dotted keys (`train.optimizer.lr`); lists stay whole values.

    Lists (augmentations, export formats) are compared as one value: an augmentation
    pipeline is an ordered whole, and element-wise keys like `data.augment.0` would pair
    unrelated operations when one run adds a step.
    """
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_recipe(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def differing_recipe_keys(recipes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dotted keys whose values are not all equal (a key one recipe lacks counts)."""
    flat = [flatten_recipe(recipe) for recipe in recipes]
    # Recipe order, taken first from the largest recipe: runs made before a field existed lack
    # it, so the newest schema usually lists every key in its section.
    keys = dict.fromkeys(key for recipe in sorted(flat, key=len, reverse=True) for key in recipe)
    differing: dict[str, list[Any]] = {}
    for key in keys:
        values = [recipe.get(key, MISSING) for recipe in flat]
        if any(value != values[0] for value in values[1:]):
            differing[key] = values
    return differing


def _run_metrics(run_dir: Path, split: str) -> tuple[dict[str, Any], str]:
    """One run's metric column and the file it came from."""
    scores = load_split_metrics(run_dir, split)
    metrics = scores.content or {}
    manifest = read_run_json(run_dir, "manifest.json").content or {}
    training = read_run_json(run_dir, "metrics.json").content or {}
    parameters = manifest.get("parameters") or {}
    column = {name: metrics.get(name) for name in _SPLIT_METRICS}
    column["best_epoch"] = training.get("best_epoch")
    column["parameters"] = parameters.get("total") if isinstance(parameters, dict) else None
    column["epochs_run"] = epochs_logged(run_dir)
    # The whole run (data loading, training, export): the manifest has no training-only time.
    column["wall_seconds"] = manifest.get("wall_seconds")
    return column, scores.source or f"none ({scores.why})"


def compare_runs(run_dirs: list[Path], split: str = "val") -> Comparison:
    """Compare runs: headline metrics per run and the recipe keys that differ.

    Args:
        run_dirs: run directories written by `emotionkit train` (evaluated or not).
        split: whose metrics to compare; `eval/<split>/metrics.json` when present, else
            the training-time `metrics.json[split]`.

    Returns:
        A `Comparison`; render it with `to_markdown`, `to_csv` or `to_rich_table`.

    Raises:
        RunDirError: a path that does not exist or has no `recipe.yaml`, named in the message.

    Example:
        >>> runs = sorted(Path("runs/fer2013-cpu").iterdir())  # doctest: +SKIP
        >>> print(to_markdown(compare_runs(runs)))  # doctest: +SKIP
    """
    if not run_dirs:
        raise RunDirError("no run directories to compare: pass one or more runs/<name>/<timestamp>")
    paths = [Path(run_dir) for run_dir in run_dirs]
    recipes = [read_recipe(path) for path in paths]
    columns, sources = zip(*(_run_metrics(path, split) for path in paths), strict=True)
    table = {name: [column[name] for column in columns] for name in columns[0]}
    metrics = {name: row for name, row in table.items() if any(v is not None for v in row)}
    return Comparison(
        runs=[run_name(path) for path in paths],
        split=split,
        sources=list(sources),
        metrics=metrics,
        differing_keys=differing_recipe_keys(recipes),
    )


def recipe_value_text(value: Any) -> str:
    """A recipe value as YAML/JSON would spell it (`null`, `true`, `[...]`), "—" if missing."""
    if value is MISSING:
        return MISSING_TEXT
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _markdown_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [row(header), "|---|" + f"{align}|" * (len(header) - 1), *map(row, rows)]


def to_markdown(comparison: Comparison) -> str:
    """Two GitHub-flavoured tables: metrics per run, then the recipe differences."""
    runs = comparison.runs
    metric_rows = [[name, *map(format_number, row)] for name, row in comparison.metrics.items()]
    sources = zip(runs, comparison.sources, strict=True)
    lines = [
        f"Metrics on the `{comparison.split}` split.",
        "",
        *_markdown_table(["metric", *runs], metric_rows, "---:"),
        "",
        "Metrics from: " + "; ".join(f"{run}: {source}" for run, source in sources),
        "",
    ]
    if not comparison.differing_keys:
        return "\n".join([*lines, "Recipe differences: none.", ""])
    recipe_rows = [
        [f"`{key}`", *map(recipe_value_text, values)]
        for key, values in comparison.differing_keys.items()
    ]
    table = _markdown_table(["key", *runs], recipe_rows, "---")
    return "\n".join([*lines, "**Recipe differences**", "", *table, ""])


def to_csv(comparison: Comparison) -> str:
    """One table, `section,name,<run>...`: sections `source`, `metric`, then `recipe`.

    Numbers are written unrounded (empty where a run lacks one), for a spreadsheet to format.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "name", *comparison.runs])
    writer.writerow(["source", "metrics_from", *comparison.sources])
    for name, values in comparison.metrics.items():
        writer.writerow(["metric", name, *("" if value is None else value for value in values)])
    for key, values in comparison.differing_keys.items():
        writer.writerow(["recipe", key, *map(recipe_value_text, values)])
    return buffer.getvalue()


def to_rich_table(comparison: Comparison) -> Table:
    """A terminal table: metrics, then a "recipe differences" section.

    Cells are `Text`, not markup strings, so a recipe value such as `[1, 1, 1, 1]` is
    printed as is rather than read as rich markup.
    """
    table = Table(title=f"runs compared on {comparison.split}")
    table.add_column("")
    for run in comparison.runs:
        table.add_column(run, justify="right")
    for name, values in comparison.metrics.items():
        table.add_row(Text(name), *(Text(format_number(value)) for value in values))
    table.add_section()
    table.add_row(Text("recipe differences", style="bold"), *(Text("") for _ in comparison.runs))
    if not comparison.differing_keys:
        table.add_row(Text("none", style="dim"), *(Text("") for _ in comparison.runs))
    for key, values in comparison.differing_keys.items():
        table.add_row(Text(key), *(Text(recipe_value_text(value)) for value in values))
    table.caption = "metrics from: " + "; ".join(comparison.sources)
    return table
