"""A finished sweep's comparison: `emotionkit compare`'s tables over its completed runs, and
a plot of the validation metric against each swept key.

Read-only over run directories (no Keras): the tables are `evaluate.compare`'s, with each
run named by its swept overrides rather than its timestamp.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotionkit.evaluate.compare import Comparison, compare_runs, to_csv, to_markdown
from emotionkit.figures import new_figure, save_figure

if TYPE_CHECKING:
    from emotionkit.experiments.sweep import PointRun


def write_sweep_report(
    sweep_dir: Path, runs: list[PointRun], swept: list[str], metric: str
) -> tuple[Comparison | None, dict[str, str]]:
    """`compare.md`, `compare.csv` and `compare.png` in `sweep_dir` for the completed runs.

    Returns:
        The comparison (None when no run completed) and the files written, by kind.
    """
    done = [run for run in runs if run.status == "completed" and run.run_dir is not None]
    if not done:
        return None, {}
    comparison = compare_runs([run.run_dir for run in done if run.run_dir is not None])
    comparison = dataclasses.replace(comparison, runs=[run_label(run, swept) for run in done])
    (sweep_dir / "compare.md").write_text(to_markdown(comparison))
    (sweep_dir / "compare.csv").write_text(to_csv(comparison))
    plot_sweep(done, swept, metric, sweep_dir / "compare.png")
    return comparison, {"markdown": "compare.md", "csv": "compare.csv", "plot": "compare.png"}


def run_label(run: PointRun, swept: list[str]) -> str:
    """The point's swept overrides (`model.width=0.25 train.epochs=2`), else its folder."""
    shown = [o for o in run.point.overrides if o.partition("=")[0] in swept]
    return " ".join(shown) or run.folder.name


def run_metric(run_dir: Path | None, metric: str) -> float | None:
    """A completed run's validation `metric` (`macro_f1`, `accuracy`) from metrics.json."""
    if run_dir is None:
        return None
    try:
        value = json.loads((run_dir / "metrics.json").read_text())["val"][metric]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def plot_sweep(runs: list[PointRun], swept: list[str], metric: str, path: Path) -> Path:
    """One panel per swept key: each run's `val_<metric>` at its value of the key, and the
    mean per value (the other keys averaged out). No swept key: one bar per run."""
    scores = [run_metric(run.run_dir, metric) for run in runs]
    keys = swept or [""]
    figure = new_figure(max(4.5, 3.6 * len(keys)), 3.2)
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        values = [_value_of(run, key) if key else run.folder.name for run in runs]
        order = list(dict.fromkeys(values))
        points = [(order.index(v), s) for v, s in zip(values, scores, strict=True) if s is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), color="tab:blue", alpha=0.7, zorder=3)
        means = [_mean([s for i, s in points if i == position]) for position in range(len(order))]
        # Bars, not a line: the values of a key are categories, not always ordered.
        ax.plot(range(len(order)), means, color="tab:orange", marker="_", markersize=24, ls="")
        ax.set_xticks(range(len(order)), order, rotation=20 if len(order) > 3 else 0)
        ax.set_xlabel(key or "run")
        ax.set_ylabel(f"val {metric}")
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"val {metric} (dots: runs; bars: mean per value)", fontsize=10)
    return save_figure(figure, path)


def _value_of(run: PointRun, key: str) -> str:
    for override in run.point.overrides:
        name, _, value = override.partition("=")
        if name == key:
            return value
    return "(recipe)"


def _mean(values: list[float]) -> Any:
    return sum(values) / len(values) if values else float("nan")
