"""`train` (and `train --resume`) and `export`: the commands that write a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emotionkit.cli.arguments import OVERRIDES_ARG
from emotionkit.errors import EmotionkitError
from emotionkit.recipe import load_recipe


def train(
    recipe: Path | None = typer.Argument(
        None, help="Recipe YAML file (not with --resume).", show_default=False
    ),
    overrides: list[str] | None = OVERRIDES_ARG,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Parent of run directories."),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue an interrupted run directory from its newest backup (its own recipe "
        "and split; ends as the uninterrupted run would).",
        show_default=False,
    ),
) -> None:
    """Train, evaluate and export a recipe; the last line printed is the run directory."""
    from emotionkit import workflow

    if resume is not None:
        if recipe is not None or overrides:
            raise EmotionkitError(
                "--resume RUN_DIR continues that run with its own recipe.yaml; drop the recipe "
                "and overrides (or start a new run without --resume)."
            )
        result = workflow.resume(resume)
    elif recipe is None:
        raise EmotionkitError("Give a recipe (emotionkit train RECIPE) or --resume RUN_DIR.")
    else:
        result = workflow.train(load_recipe(recipe, overrides), runs_dir=runs_dir)
    typer.echo(str(result.run_dir))


def launch(
    command: list[str] = typer.Argument(
        ..., help="The emotionkit command every process runs, after `--`.", show_default=False
    ),
    processes: int = typer.Option(2, "--processes", "-N", help="Processes to start."),
    devices_per_process: int = typer.Option(
        1, "--devices-per-process", help="Virtual CPU devices per process (JAX)."
    ),
) -> None:
    """Run a command as one multi-process job on this machine (loopback coordinator).

    Example: emotionkit launch --processes 2 -- train quickstart runtime.distribution=data_parallel
    """
    from emotionkit.launch import launch as launch_job

    code = launch_job(command, processes, devices_per_process)
    if code:
        raise typer.Exit(code)


def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by `train`."),
    formats: str | None = typer.Option(
        None,
        "--format",
        help="Comma-separated: saved_model, onnx, onnx_int8.",
        show_default="the run recipe's export.formats",
    ),
    tta: str | None = typer.Option(
        None,
        "--tta",
        help="none; hflip: the artifacts average each face with its mirror; hflip_crops: "
        "over 10 views (5 crops and their mirrors).",
        show_default="the run recipe's export.tta",
    ),
) -> None:
    """(Re-)export a run's best checkpoint, each artifact through the parity gate."""
    from emotionkit.export import export_run

    if not (run_dir / "checkpoints" / "best.keras").is_file():
        raise EmotionkitError(f"{run_dir} is not a run directory (no checkpoints/best.keras).")
    overrides = [f"export.formats=[{formats}]"] if formats else []
    overrides += [f"export.tta={tta}"] if tta else []
    report = export_run(run_dir, load_recipe(run_dir / "recipe.yaml", overrides).export)
    if not report:
        raise EmotionkitError(f"{run_dir}/recipe.yaml lists no export.formats; nothing to do.")
    typer.echo(json.dumps({name: c["max_abs_diff"] for name, c in report["checks"].items()}))


def runs_list(
    root: Path = typer.Argument(Path("runs"), help="The runs folder (`--runs-dir` of train)."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """Each run's status, best validation score and, if it stopped early, how to resume it."""
    import json

    from rich.console import Console
    from rich.table import Table

    from emotionkit.runs import list_runs

    runs = list_runs(root)
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    table = Table(title=f"runs in {root}")
    for column in ("run", "status", "best", "resume / cause"):
        table.add_column(column, overflow="fold")
    for run in runs:
        best = f"{run['monitor']} {run['value']:.4f}" if run["value"] is not None else ""
        hint = run["resume"] or ""
        if run["error"]:
            hint = f"{run['error']}; {hint}" if hint else run["error"]
        table.add_row(run["path"], run["status"], best, hint)
    Console(soft_wrap=True).print(table)
