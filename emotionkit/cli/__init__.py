"""The `emotionkit` command: a thin Typer layer over the library.

Nothing heavy is imported here: Keras, TensorFlow and JAX are imported inside the command
bodies (through the library), so `emotionkit --help` and `emotionkit recipe ...` are instant.
Bad input (an `EmotionkitError`) prints one paragraph and exits with code 2; `--debug` shows
the traceback instead.

The commands live in one module per group: `run_commands` (train, export, launch),
`experiment_commands` (sweep, tune), `evaluate_commands` (evaluate, report, compare,
explain), `predict_commands` (predict, serve, models list) and `inspect_commands` (recipe,
model, data). They are all registered below, in the order `emotionkit --help` lists them.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from emotionkit.cli import (
    evaluate_commands,
    experiment_commands,
    inspect_commands,
    predict_commands,
    run_commands,
)
from emotionkit.errors import EmotionkitError
from emotionkit.runtime import VERBOSE_ENV

app = typer.Typer(
    help="Train, evaluate and ship facial-expression classifiers (Keras 3, JAX or TensorFlow).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipe_app = typer.Typer(help="List, copy and inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
model_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
data_app = typer.Typer(help="Inspect data sources.", no_args_is_help=True)
app.add_typer(data_app, name="data")
models_app = typer.Typer(help="Models bundled with emotionkit.", no_args_is_help=True)
app.add_typer(models_app, name="models")
runs_app = typer.Typer(help="Run directories: status and how to resume.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

app.command()(run_commands.train)
app.command()(run_commands.export)
app.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})(
    run_commands.launch
)
app.command()(experiment_commands.sweep)
app.command()(experiment_commands.tune)
app.command()(evaluate_commands.evaluate)
app.command()(evaluate_commands.report)
app.command()(evaluate_commands.compare)
app.command()(evaluate_commands.explain)
app.command()(predict_commands.predict)
app.command()(predict_commands.serve)
recipe_app.command("list")(inspect_commands.recipe_list)
recipe_app.command("copy")(inspect_commands.recipe_copy)
recipe_app.command("show")(inspect_commands.recipe_show)
recipe_app.command("schema")(inspect_commands.recipe_schema)
model_app.command("summary")(inspect_commands.model_summary)
data_app.command("inspect")(inspect_commands.data_inspect)
models_app.command("list")(predict_commands.models_list)
runs_app.command("list")(run_commands.runs_list)

_state = {"debug": False}


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for input errors."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the frameworks' native logs and third-party warnings."
    ),
) -> None:
    _state["debug"] = debug
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        return
    # Quiet by default: third-party deprecation notes (tf2onnx's np.object FutureWarning...)
    # are not the user's to act on; child processes (the ONNX export) inherit the setting.
    warnings.filterwarnings("ignore", module=r"^(?!emotionkit)")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


def main() -> None:
    """Console-script entry point: run the app, turning input errors into exit code 2."""
    try:
        app()
    except EmotionkitError as error:
        if _state["debug"]:
            raise
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run said how to resume
        if _state["debug"]:
            raise
        sys.exit(130)
