"""`predict`, `serve` and `models list`: inference on an exported ONNX model.

These commands run on onnxruntime and OpenCV (and Starlette for `serve`), never TensorFlow,
Keras or JAX: an import contract in pyproject.toml holds `emotionkit.predict` and
`emotionkit.serve` to that.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from emotionkit.errors import EmotionkitError

if TYPE_CHECKING:
    from emotionkit.predict import Predictor
    from emotionkit.predict.outputs import Annotator
    from emotionkit.predict.predictor import FaceMode, Prediction


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
    from rich.console import Console

    from emotionkit.errors import DataError
    from emotionkit.predict import Predictor
    from emotionkit.predict.outputs import (
        Annotator,
        check_results_path,
        results_table,
        write_results,
    )

    if faces not in ("auto", "none"):
        raise EmotionkitError(f"--faces must be auto or none, got {faces!r}.")
    if out is not None:
        check_results_path(out)
    model, inputs = _model_and_inputs(paths)
    predictor = Predictor(model, cascade=cascade)
    annotator = None if annotate is None else Annotator(annotate)
    predictions = _predict_inputs(predictor, inputs, cast("FaceMode", faces), every, annotator)
    if not predictions:
        raise DataError(f"none of the {len(inputs)} inputs could be read (see above).")
    Console().print(results_table(predictions))
    if out is not None:
        write_results(predictions, out, predictor.class_names)
        typer.echo(str(out))


def _predict_inputs(
    predictor: Predictor,
    inputs: list[Path],
    faces: FaceMode,
    every: int,
    annotator: Annotator | None,
) -> list[Prediction]:
    """Every prediction over the inputs; unreadable ones are reported on stderr and skipped."""
    from emotionkit.predict import predict_inputs

    def report_skipped(message: str) -> None:
        typer.echo(f"skipped: {message}", err=True)

    predictions: list[Prediction] = []
    for result in predict_inputs(predictor, inputs, report_skipped, faces=faces, every=every):
        predictions.extend(result.predictions)
        if annotator is not None:
            annotator.write(result)
    return predictions


def _model_and_inputs(paths: list[Path]) -> tuple[Path, list[Path]]:
    """Split `[MODEL] INPUT...`: the first path is the model when it is an .onnx file or a
    run directory; otherwise every path is an input and the bundled model runs.

    A run directory is never read as a folder of images: one without `export/model.onnx`
    stops with the command that makes it.
    """
    from emotionkit.bundled import bundled_model_path
    from emotionkit.predict.onnx_model import resolve_model_path

    first = paths[0]
    if (first / "recipe.yaml").is_file():
        resolve_model_path(first)  # raises, naming the missing file and `emotionkit export`
    is_model = first.suffix == ".onnx" or (first / "export" / "model.onnx").is_file()
    if is_model and len(paths) > 1:
        return first, paths[1:]
    if is_model:
        raise EmotionkitError(f"{first} is a model: give at least one image, folder or video.")
    return bundled_model_path(), paths


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
