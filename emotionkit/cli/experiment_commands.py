"""`sweep` and `tune`: the commands that run many recipes (docs/experiments.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def sweep(
    target: str = typer.Argument(
        ...,
        help="A recipe (file or packaged name) to sweep over, or a sweep YAML file (a `runs:` "
        "list of recipes and overrides).",
        show_default=False,
    ),
    overrides: list[str] | None = typer.Argument(
        None,
        help="Dotted overrides; comma-separated values sweep: model.width=0.125,0.25 "
        "train.optimizer.lr=1e-3,3e-3 (commas inside [...], {...} or quotes belong to the value).",
        show_default=False,
    ),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Runs at once, each its own process."),
    out: Path | None = typer.Option(
        None, "--out", help="The sweep folder.", show_default="sweeps/<recipe or sweep name>"
    ),
    metric: str = typer.Option("macro_f1", "--metric", help="Validation metric of the plot."),
) -> None:
    """Run a grid (key=a,b key2=x,y) or a sweep file; run again, it finishes the rest."""
    from rich.console import Console

    from emotionkit.evaluate.compare import to_rich_table
    from emotionkit.experiments import plan_sweep, run_sweep

    plan = plan_sweep(target, list(overrides or []))
    result = run_sweep(plan, out, jobs=jobs, metric=metric)
    if result.comparison is not None:
        Console().print(to_rich_table(result.comparison))
    typer.echo(str(result.sweep_dir))


def tune(
    tune_file: Path = typer.Argument(
        ..., help="A tune YAML file: recipe, search space, metric, trials.", show_default=False
    ),
    overrides: list[str] | None = typer.Argument(
        None, help="Dotted overrides for every trial, e.g. train.epochs=4", show_default=False
    ),
    trials: int | None = typer.Option(
        None,
        "--trials",
        min=1,
        help="Finished trials the study should hold.",
        show_default="the tune file's trials",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="The study's folder.", show_default="tunes/<study name>"
    ),
) -> None:
    """Optuna search over a recipe, pruned per epoch, in SQLite; last line: the best recipe."""
    from rich.console import Console
    from rich.table import Table

    from emotionkit.experiments import read_tune_file, run_tune

    spec, recipe = read_tune_file(tune_file)
    spec = spec.model_copy(update={"overrides": [*spec.overrides, *(overrides or [])]})
    result = run_tune(spec, recipe, out, name=tune_file.stem, trials=trials)
    table = Table(title=f"trials ({spec.metric}, {spec.resolved_direction})")
    for column in ("trial", "state", spec.metric, "values", "run"):
        table.add_column(column, overflow="fold")
    for trial in result.trials:
        value = "" if trial["value"] is None else f"{trial['value']:.4f}"
        values = " ".join(f"{k}={v}" for k, v in trial["params"].items())
        table.add_row(str(trial["number"]), trial["state"], value, values, trial["run_dir"] or "")
    Console(soft_wrap=True).print(table)
    if result.best is None:
        typer.echo(f"no trial completed; {result.tune_dir}")
        return
    typer.echo(str(result.tune_dir / "best_recipe.yaml"))
