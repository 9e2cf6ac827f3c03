"""The `emotionkit` command: a thin Typer layer over the library.

Nothing heavy is imported here: Keras, TensorFlow and JAX are imported inside the command
bodies (through the library), so `emotionkit --help` and `emotionkit recipe ...` are instant.
Bad input (an `EmotionkitError`) prints one paragraph and exits with code 2; `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from emotionkit.errors import EmotionkitError
from emotionkit.recipe import load_recipe, recipe_json_schema

app = typer.Typer(
    help="Train, evaluate and ship facial-expression classifiers (Keras 3, JAX or TensorFlow).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipe_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
model_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
data_app = typer.Typer(help="Inspect data sources.", no_args_is_help=True)
app.add_typer(data_app, name="data")
models_app = typer.Typer(help="Models bundled with emotionkit.", no_args_is_help=True)
app.add_typer(models_app, name="models")

_state = {"debug": False}

RECIPE_ARG = typer.Argument(..., help="Recipe YAML file.", show_default=False)
OVERRIDES_ARG = typer.Argument(
    None,
    help="Dotted overrides, e.g. train.epochs=3 model.depth=34 data.augment=[]",
    show_default=False,
)


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for input errors."),
) -> None:
    _state["debug"] = debug


@app.command()
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


@app.command()
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
        help="none, or hflip: the artifacts average each face with its mirror.",
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


def _start_backend() -> None:
    """Pick the Keras backend (KERAS_BACKEND, else auto) before anything imports Keras."""
    from emotionkit.runtime import activate_backend, resolve_backend

    activate_backend(resolve_backend("auto")[0])


@app.command()
def evaluate(
    target: Path = typer.Argument(
        ..., help="A run directory, .keras file, SavedModel directory or .onnx file."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="A recipe YAML or a data path (image folder root, .csv, .npz).",
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
        None, "--out", help="Output folder.", show_default="RUN/eval/<split>"
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


@app.command()
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


@app.command()
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


@app.command()
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


@recipe_app.command("show")
def recipe_show(recipe: Path = RECIPE_ARG, overrides: list[str] | None = OVERRIDES_ARG) -> None:
    """Print the resolved recipe (defaults and overrides applied) as YAML."""
    typer.echo(load_recipe(recipe, overrides).to_yaml(), nl=False)


@recipe_app.command("schema")
def recipe_schema() -> None:
    """Print the recipe's JSON Schema (point your editor's YAML plugin at it)."""
    typer.echo(json.dumps(recipe_json_schema(), indent=2))


@model_app.command("summary")
def model_summary(
    recipe: Path = RECIPE_ARG,
    overrides: list[str] | None = OVERRIDES_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print the model.json data instead."),
) -> None:
    """Parameters (trainable / total), FLOPs per image, feature-map size, a stage table.

    FLOPs are computed from layer shapes, 2 per multiply-add: a Conv2D costs
    2*kh*kw*cin*cout*H_out*W_out, a Dense 2*in*out; BatchNorm, activations, pooling and
    biases are not counted. The same data is saved as `model.json` in every run directory.
    """
    from rich.console import Console

    from emotionkit.models.summary import summary_lines, summary_table
    from emotionkit.workflow import describe_model

    summary = describe_model(load_recipe(recipe, overrides))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    console.print(summary_table(summary))
    for line in summary_lines(summary):
        console.print(line, highlight=False)


@data_app.command("inspect")
def data_inspect(
    recipe: Path = RECIPE_ARG,
    overrides: list[str] | None = OVERRIDES_ARG,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder (created; only the three report files in it are replaced).",
        show_default="runs/inspect/<recipe name>",
    ),
) -> None:
    """Class counts, pixel and contrast statistics, duplicates, blank and unreadable images.

    Reads data.source as stored: no validation split is carved.
    Writes data_report.json, samples.png (train images per class) and
    augment_preview.png (one image through data.augment) to --out.
    The last line printed is the output folder.
    """
    from rich.console import Console

    from emotionkit.data.inspect import inspect_data, report_lines, report_table
    from emotionkit.runtime import configure_frameworks, resolve_runtime

    resolved = load_recipe(recipe, overrides)
    out_dir = out if out is not None else Path("runs") / "inspect" / resolved.name
    configure_frameworks(resolve_runtime(resolved.runtime), resolved.seed)
    report = inspect_data(resolved.data, resolved.seed, out_dir)
    console = Console()
    console.print(report_table(report))
    for line in report_lines(report):
        console.print(line, highlight=False)
    typer.echo(str(out_dir))


@app.command()
def predict(
    paths: list[Path] = typer.Argument(
        ...,
        help="[MODEL] INPUT...: MODEL is an .onnx file or a run directory (export/model.onnx), "
        "default the bundled FER2013 model; INPUTs are image files, folders (searched "
        "recursively) or videos (.mp4 .avi .mov .mkv).",
        show_default=False,
    ),
    faces: str = typer.Option(
        "auto",
        "--faces",
        help="auto | none. auto: classify small near-square images whole and each detected "
        "face of larger ones; none: classify every image whole.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the results to a .jsonl or .csv file.", show_default=False
    ),
    annotate: Path | None = typer.Option(
        None,
        "--annotate",
        help="Folder for copies with boxes and labels drawn.",
        show_default=False,
    ),
    every: int = typer.Option(10, "--every", min=1, help="Classify every Nth frame of a video."),
    cascade: Path | None = typer.Option(
        None,
        "--cascade",
        help="OpenCV cascade XML for finding faces.",
        show_default="OpenCV's haarcascade_frontalface_default.xml",
    ),
) -> None:
    """Classify facial expressions in images, folders and videos with an exported ONNX model.

    Runs on onnxruntime and OpenCV only: no TensorFlow, Keras or JAX.
    Unreadable inputs are reported on stderr and skipped; if none can be read, exit code 2.
    See docs/predict.md.
    """
    from typing import cast

    from rich.console import Console

    from emotionkit.errors import DataError
    from emotionkit.predict import Predictor, predict_inputs
    from emotionkit.predict.outputs import (
        Annotator,
        check_results_path,
        results_table,
        write_results,
    )
    from emotionkit.predict.predictor import FaceMode, Prediction

    if faces not in ("auto", "none"):
        raise EmotionkitError(f"--faces must be auto or none, got {faces!r}.")
    if out is not None:
        check_results_path(out)
    model, inputs = _model_and_inputs(paths)
    predictor = Predictor(model, cascade=cascade)
    annotator = None if annotate is None else Annotator(annotate)
    skipped: list[str] = []

    def report_skipped(message: str) -> None:
        skipped.append(message)
        typer.echo(f"skipped: {message}", err=True)

    predictions: list[Prediction] = []
    mode = cast(FaceMode, faces)
    for result in predict_inputs(predictor, inputs, report_skipped, faces=mode, every=every):
        predictions.extend(result.predictions)
        if annotator is not None:
            annotator.write(result)
    if not predictions:
        raise DataError(f"none of the {len(inputs)} inputs could be read (see above).")
    Console().print(results_table(predictions))
    if out is not None:
        write_results(predictions, out, predictor.class_names)
        typer.echo(str(out))


@app.command()
def serve(
    model: Path | None = typer.Argument(
        None,
        help="An .onnx file or a run directory (export/model.onnx); default the bundled "
        "FER2013 model.",
        show_default=False,
        metavar="MODEL",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. 0.0.0.0 exposes the server (no auth, no TLS) to the network.",
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Serve a model over HTTP: POST /v1/predict, GET /v1/model, /healthz and a demo page at /.

    Runs on onnxruntime, OpenCV, Starlette and uvicorn: no TensorFlow, Keras or JAX.
    Needs the `serve` extra (install command: docs/serve.md).
    """
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "multipart") if not importlib.util.find_spec(m)]
    if missing:
        raise EmotionkitError(
            f"emotionkit serve needs the serve extra ({', '.join(missing)} not installed): "
            "pip install 'emotionkit[serve]'"
        )
    from emotionkit.serve.server import is_loopback, run_server

    if not is_loopback(host):
        typer.echo(
            f"warning: --host {host} makes the server reachable from other machines; it has "
            "no authentication and no TLS. Use it only on a network you trust.",
            err=True,
        )
    run_server(model, host=host, port=port)


def _model_and_inputs(paths: list[Path]) -> tuple[Path, list[Path]]:
    """Split `[MODEL] INPUT...`: the first path is the model when it is an .onnx file or an
    exported run directory; otherwise every path is an input and the bundled model runs."""
    from emotionkit.bundled import bundled_model_path

    first = paths[0]
    is_model = first.suffix == ".onnx" or (first / "export" / "model.onnx").is_file()
    if is_model and len(paths) > 1:
        return first, paths[1:]
    if is_model:
        raise EmotionkitError(f"{first} is a model: give at least one image, folder or video.")
    return bundled_model_path(), paths


@models_app.command("list")
def models_list() -> None:
    """The models bundled with emotionkit (used when `predict` gets no model)."""
    from rich.console import Console
    from rich.table import Table

    from emotionkit.bundled import list_bundled

    table = Table(title="Bundled models")
    for column in ("name", "input", "classes", "val accuracy", "val macro-F1", "size"):
        table.add_column(column)
    rows = list_bundled()
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else str(row["name"])
        classes = row["classes"]
        assert isinstance(classes, list)
        table.add_row(
            name, str(row["input"]), str(len(classes)), str(row["val_accuracy"]),
            str(row["val_macro_f1"]), f"{row['size_mb']} MB",
        )  # fmt: skip
    console = Console()
    console.print(table)
    for row in rows:
        console.print(f"{row['name']}: {row['path']}\n  trained by: {row['training_command']}",
                      highlight=False, soft_wrap=True)  # fmt: skip


def main() -> None:
    """Console-script entry point: run the app, turning input errors into exit code 2."""
    try:
        app()
    except EmotionkitError as error:
        if _state["debug"]:
            raise
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
