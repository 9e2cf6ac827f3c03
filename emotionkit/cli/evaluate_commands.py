"""`evaluate`, `report`, `compare` and `explain`: the commands that score trained models."""

from __future__ import annotations

from pathlib import Path

import typer

from emotionkit.errors import EmotionkitError


def _start_backend() -> None:
    """Pick the Keras backend (KERAS_BACKEND, else auto) before anything imports Keras."""
    from emotionkit.runtime import activate_backend, resolve_backend

    activate_backend(resolve_backend("auto")[0])


def evaluate(
    target: Path = typer.Argument(
        ..., help="A run directory, .keras file, SavedModel directory or .onnx file."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="A recipe YAML or a data path: an image folder root (only ROOT/<split>/<class>/* "
        "is read), a .csv or an .npz.",
        show_default="the target's run, with its saved split",
    ),
    split: str = typer.Option("val", "--split", help="train, val or test."),
    tta: str | None = typer.Option(
        None,
        "--tta",
        help="Test-time augmentation: none, hflip, hflip_crops.",
        show_default="a run directory: its recipe's export.tta; a model file: none",
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the PNGs under plots/."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder (never one holding another model's evaluation).",
        show_default="RUN/eval/<split> for the run's best checkpoint, RUN/eval/<split>-onnx, "
        "-saved_model... for its exports",
    ),
) -> None:
    """Score a model on a split: metrics.json, predictions.npz, plots; last line: the folder."""
    from rich.console import Console

    _start_backend()
    from emotionkit.evaluate.evaluation import evaluate as run_evaluation
    from emotionkit.evaluate.evaluation import metrics_table, summary_lines, write_plots

    evaluation = run_evaluation(target, data=data, split=split, tta=tta, out=out)
    if plots:
        write_plots(evaluation)
    console = Console()
    console.print(metrics_table(evaluation.metrics))
    for line in summary_lines(evaluation.metrics):
        console.print(line, highlight=False)
    typer.echo(str(evaluation.eval_dir))


def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `train`."),
    split: str = typer.Option("val", "--split", help="train, val or test."),
    tta: str | None = typer.Option(
        None,
        "--tta",
        help="Test-time augmentation: none, hflip, hflip_crops.",
        show_default="the run's export.tta",
    ),
) -> None:
    """Evaluate a run and write one self-contained report.html; last line: its path."""
    _start_backend()
    from emotionkit.evaluate.evaluation import report_run

    if not (run_dir / "recipe.yaml").is_file():
        raise EmotionkitError(f"{run_dir} is not a run directory (no recipe.yaml).")
    typer.echo(str(report_run(run_dir, split=split, tta=tta)))


def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    split: str = typer.Option("val", "--split", help="Whose metrics to compare."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write a Markdown table."),
    csv: Path | None = typer.Option(None, "--csv", help="Also write a CSV table."),
) -> None:
    """Key metrics of runs side by side, and the recipe keys that differ between them."""
    from rich.console import Console

    from emotionkit.evaluate.compare import compare_runs, to_csv, to_markdown, to_rich_table

    comparison = compare_runs(run_dirs, split=split)
    Console().print(to_rich_table(comparison))
    if markdown is not None:
        markdown.write_text(to_markdown(comparison))
    if csv is not None:
        csv.write_text(to_csv(comparison))


def explain(
    model: Path = typer.Argument(..., help="A run directory or .keras file."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    out: Path = typer.Option(Path("explain"), "--out", help="Folder for the overlays."),
) -> None:
    """Grad-CAM: where the model looked for its prediction, one overlay PNG per image."""
    _start_backend()
    from emotionkit.evaluate.gradcam import explain_files

    for row in explain_files(model, images, out):
        typer.echo(
            f"{row['image']}: {row['predicted']} ({row['probability']:.2f}) -> {row['output']}"
        )
