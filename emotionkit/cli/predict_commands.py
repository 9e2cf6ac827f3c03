"""`predict`, `serve` and `models list`: inference on an exported ONNX model.

These commands run on onnxruntime and OpenCV (and Starlette for `serve`), never TensorFlow,
Keras or JAX: an import contract in pyproject.toml holds `emotionkit.predict` and
`emotionkit.serve` to that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from emotionkit.errors import EmotionkitError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emotionkit.predict import Predictor
    from emotionkit.predict.display import LiveWindow
    from emotionkit.predict.inputs import FrameResult, Skipped
    from emotionkit.predict.outputs import Annotator, ResultWriter
    from emotionkit.predict.predictor import FaceMode, Prediction

# `image_decode.MAX_IMAGE_PIXELS`, repeated so that `--help` imports no OpenCV.
DEFAULT_MAX_PIXELS = 40_000_000


def predict(
    paths: list[Path] | None = typer.Argument(
        None,
        help="[MODEL] INPUT...: MODEL is an .onnx file, a run directory (export/model.onnx) "
        "or a bundled model's name (emotionkit models list), default the bundled fer2013-cpu; "
        "INPUTs are image files, folders (searched recursively) or videos (.mp4 .avi .mov .mkv).",
        show_default=False,
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="The model, instead of MODEL (then every path is an INPUT): a bundled model's name "
        "(emotionkit models list), an .onnx file or a run directory.",
        show_default="the bundled fer2013-cpu",
    ),
    faces: str = typer.Option(
        "auto",
        "--faces",
        help="auto | none. auto: classify small near-square images whole and each detected "
        "face of larger ones; none: classify every image whole.",
    ),
    detector: str = typer.Option(
        "auto",
        "--detector",
        help="auto | mtcnn | haar | none. auto: mtcnn when the faces extra is installed, "
        "else OpenCV's Haar cascade; none: every image whole.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write the results, as they come, to a .jsonl or .csv file.",
        show_default=False,
    ),
    annotate: Path | None = typer.Option(
        None,
        "--annotate",
        help="Folder for copies with boxes and labels drawn.",
        show_default=False,
    ),
    every: int | None = typer.Option(
        None,
        "--every",
        min=1,
        help="Classify every Nth frame of a video.",
        show_default="10 for video files, 1 for --source",
    ),
    cascade: Path | None = typer.Option(
        None,
        "--cascade",
        help="OpenCV cascade XML for the haar detector.",
        show_default="OpenCV's haarcascade_frontalface_default.xml",
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="Live input instead of INPUTs: a camera index (0), a stream URL (rtsp://...) or a "
        "video file; an annotated window is shown when a display exists (q or Esc stops).",
        show_default=False,
    ),
    smooth: bool = typer.Option(
        False,
        "--smooth",
        help="Videos and --source: follow each face across frames and average its "
        "probabilities over time, so labels do not flicker.",
    ),
    smooth_weight: float = typer.Option(
        0.4, "--smooth-weight", min=0.01, max=1.0, help="The new frame's share of the average."
    ),
    uncertain_below: float | None = typer.Option(
        None,
        "--uncertain-below",
        min=0.0,
        max=1.0,
        help="Label a face 'uncertain' when no class is at least this probable.",
        show_default="off",
    ),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS,
        "--max-pixels",
        min=1,
        help="Skip images whose header declares more pixels (read before decoding).",
    ),
) -> None:
    """Classify facial expressions in images, folders, videos and cameras with an ONNX model.

    Runs on onnxruntime and OpenCV only: no TensorFlow, Keras or JAX.
    Inputs that fail are reported on stderr and in --out, and skipped.
    If none can be read, exit code 2. See docs/predict.md.
    """
    from emotionkit.predict import Predictor
    from emotionkit.predict.outputs import check_results_path

    if faces not in ("auto", "none"):
        raise EmotionkitError(f"--faces must be auto or none, got {faces!r}.")
    if out is not None:
        check_results_path(out)
    model_path, inputs = _model_and_inputs(paths or [], live=source is not None, model=model)
    predictor = Predictor(
        model_path,
        detector="none" if faces == "none" else detector,
        cascade=cascade,
        uncertain_below=uncertain_below,
    )
    options = _Options(out, annotate, source, every, smooth, smooth_weight, max_pixels)
    _run_predictions(predictor, inputs, cast("FaceMode", faces), options)


@dataclass(frozen=True)
class _Options:
    out: Path | None
    annotate: Path | None
    source: str | None
    every: int | None
    smooth: bool
    smooth_weight: float
    max_pixels: int


def _run_predictions(
    predictor: Predictor, inputs: list[Path], faces: FaceMode, options: _Options
) -> None:
    """Classify, writing each result as it comes; the table and a summary at the end."""
    from contextlib import nullcontext

    from rich.console import Console

    from emotionkit.errors import DataError
    from emotionkit.predict.display import LiveWindow
    from emotionkit.predict.outputs import Annotator, ResultWriter, results_table

    annotator = None if options.annotate is None else Annotator(options.annotate)
    window = LiveWindow() if options.source is not None else None
    summary = _Summary()
    writer_context = (
        nullcontext(None)
        if options.out is None
        else ResultWriter(options.out, predictor.class_names)
    )
    with writer_context as writer:

        def report_skipped(skipped: Skipped) -> None:
            typer.echo(f"skipped: {skipped}", err=True)
            summary.skipped += 1
            if writer is not None:
                writer.skipped(skipped)

        results = _results(predictor, inputs, faces, options, report_skipped)
        try:
            _consume(results, summary, writer, annotator, window)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if window is not None:
                window.close()
    if not summary.predictions:
        if summary.interrupted:
            raise typer.Exit(130)
        raise DataError(f"none of the {len(inputs) or 1} inputs could be read (see above).")
    Console().print(results_table(summary.predictions))
    typer.echo(summary.line(), err=True)
    if options.out is not None:
        typer.echo(str(options.out))
    if summary.interrupted:
        raise typer.Exit(130)


def _results(
    predictor: Predictor,
    inputs: list[Path],
    faces: FaceMode,
    options: _Options,
    on_error: Callable[[Skipped], None],
) -> Iterator[FrameResult]:
    """The results of the inputs (or of `--source`), tracked and smoothed with `--smooth`."""
    from emotionkit.predict.inputs import iter_frames, iter_source, predict_frames
    from emotionkit.predict.tracking import smooth_results

    if options.source is not None:
        frames = iter_source(options.source, options.every or 1, on_error)
        results = predict_frames(predictor, frames, on_error, faces, frames_per_call=1)
    else:
        frames = iter_frames(inputs, options.every or 10, on_error, options.max_pixels)
        results = predict_frames(predictor, frames, on_error, faces)
    if options.smooth:
        return smooth_results(results, predictor.labelled, options.smooth_weight)
    return results


def _consume(
    results: Iterator[FrameResult],
    summary: _Summary,
    writer: ResultWriter | None,
    annotator: Annotator | None,
    window: LiveWindow | None,
) -> None:
    for result in results:
        summary.add(result.predictions, video=result.frame.frame is not None)
        if writer is not None:
            writer.write(result.predictions)
        if annotator is not None:
            annotator.write(result)
        if window is not None and not window.show(result):
            break


@dataclass
class _Summary:
    """What the run did, for the last line on stderr."""

    predictions: list[Prediction] = field(default_factory=list)
    images: int = 0
    frames: int = 0
    faces: int = 0
    skipped: int = 0
    interrupted: bool = False

    def add(self, predictions: list[Prediction], video: bool) -> None:
        self.predictions.extend(predictions)
        self.frames += video
        self.images += not video
        self.faces += sum(p.label is not None for p in predictions)

    def line(self) -> str:
        read = _count(self.images, "image")
        if self.frames:
            read += " and " + _count(self.frames, "video frame")
        text = f"summary: {read} read, {_count(self.faces, 'face')} classified, "
        text += f"{self.skipped:,} skipped"
        return text + (" (interrupted: the results so far are kept)" if self.interrupted else "")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _model_and_inputs(
    paths: list[Path], live: bool = False, model: str | None = None
) -> tuple[Path, list[Path]]:
    """Split `[MODEL] INPUT...` (or `--model` and `INPUT...`) into the model's .onnx file and
    the inputs. Without `--model`, the first path is the model when `_names_a_model` says so;
    otherwise every path is an input and the default bundled model runs. With `live`
    (`--source`), MODEL alone or nothing.

    A run directory is never read as a folder of images: one without `export/model.onnx`
    stops with the command that makes it.
    """
    from emotionkit.bundled import DEFAULT_MODEL
    from emotionkit.predict.onnx_model import resolve_model_path

    if model is not None and paths and _names_a_model(paths[0], in_model_slot=False):
        raise EmotionkitError(f"give the model as MODEL or --model, not both ({paths[0]}).")
    if not paths and not live:
        raise EmotionkitError("give at least one image, folder or video (or --source).")
    if model is not None or not paths:
        if live and paths:
            raise EmotionkitError("--source reads one live input: give MODEL at most, no INPUTs.")
        return resolve_model_path(model or DEFAULT_MODEL), paths
    first = paths[0]
    if (first / "recipe.yaml").is_file():
        resolve_model_path(first)  # raises, naming the missing file and `emotionkit export`
    is_model = _names_a_model(first, in_model_slot=live or len(paths) > 1)
    if live and (len(paths) > 1 or not is_model):
        raise EmotionkitError("--source reads one live input: give MODEL at most, no INPUTs.")
    if is_model and len(paths) == 1 and not live:
        raise EmotionkitError(f"{first} is a model: give at least one image, folder or video.")
    if is_model:
        return resolve_model_path(first), paths[1:]
    return resolve_model_path(DEFAULT_MODEL), paths


def _names_a_model(path: Path, in_model_slot: bool) -> bool:
    """Whether the first path is MODEL: an .onnx file, an exported run directory, or a
    bundled model's name that is not also a path here. `in_model_slot` (more paths follow,
    or `--source`): also any bare name that is not a path, so that a misspelt bundled name
    stops with the list of names instead of running the default model."""
    from emotionkit.bundled import BUNDLED_FILES

    if path.suffix == ".onnx" or (path / "export" / "model.onnx").is_file():
        return True
    if path.exists():
        return False
    bare_name = not path.suffix and len(path.parts) == 1
    return str(path) in BUNDLED_FILES or (in_model_slot and bare_name)


def serve(
    model: Path | None = typer.Argument(
        None,
        help="An .onnx file, a run directory (export/model.onnx) or a bundled model's name "
        "(emotionkit models list); default the bundled fer2013-cpu.",
        show_default=False,
        metavar="MODEL",
    ),
    model_option: str | None = typer.Option(
        None,
        "--model",
        help="The same as MODEL, as an option (as for `emotionkit predict --model`).",
        show_default=False,
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. 0.0.0.0 exposes the server (no auth, no TLS) to the network.",
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    detector: str = typer.Option(
        "auto",
        "--detector",
        help="auto | mtcnn | haar | none: the face detector, as for `emotionkit predict`.",
    ),
) -> None:
    """Serve a model over HTTP: POST /v1/predict, GET /v1/model, /healthz and a demo page at /.

    Runs on onnxruntime, OpenCV, Starlette and uvicorn: no TensorFlow, Keras or JAX.
    Needs the `serve` extra (install command: docs/serve.md).
    """
    import importlib.util

    if model is not None and model_option is not None:
        raise EmotionkitError(f"give the model as MODEL or --model, not both ({model}).")
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
    run_server(model if model_option is None else model_option, host=host, port=port,
               detector=detector)  # fmt: skip


def models_list(
    latency: bool = typer.Option(
        True,
        "--latency/--no-latency",
        help="Time each model on this CPU: the median of single-image runs after a few warm-up "
        "runs (well under a second a model). --no-latency reads the metadata only.",
    ),
) -> None:
    """The models bundled with emotionkit; any of their names works as `predict --model NAME`,
    `serve --model NAME` and `Predictor("NAME")`. The default runs when no model is given."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from emotionkit.bundled import LATENCY_TIMED_RUNS, list_bundled

    caption = f"latency: batch 1, median of {LATENCY_TIMED_RUNS} runs on this CPU (onnxruntime)"
    # No vertical rules, and the classes on the lines below: the table fits 80 columns.
    table = Table(title="Bundled models", caption=caption if latency else None, box=box.SIMPLE_HEAD)
    for column in ("name", "default", "input", "val acc", "val F1", "size", "latency"):
        table.add_column(column, no_wrap=True)
    rows = list_bundled(latency=latency)
    for row in rows:
        table.add_row(
            str(row["name"]), "yes" if row["default"] else "", str(row["input"]),
            _text(row["val_accuracy"]), _text(row["val_macro_f1"]), f"{row['size_mb']} MB",
            _milliseconds(row["latency_ms"]),
        )  # fmt: skip
    console = Console()
    console.print(table)
    for row in rows:
        classes = row["classes"]
        assert isinstance(classes, list)
        lines = (
            f"{row['name']}: {row['path']}",
            f"  classes ({len(classes)}): {', '.join(classes)}",
            f"  trained by: {_text(row['training_command'])}",
        )
        console.print("\n".join(lines), highlight=False, soft_wrap=True)


def _text(value: object) -> str:
    """A metadata value, or a dash where the model's metadata has none."""
    return "-" if value in (None, "") else str(value)


def _milliseconds(value: object) -> str:
    return "-" if not isinstance(value, float) else f"{value:.2f} ms"
