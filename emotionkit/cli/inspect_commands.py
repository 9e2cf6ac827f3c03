"""`recipe show|schema`, `model summary`, `data inspect`: look before training, train nothing."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emotionkit.cli.arguments import OVERRIDES_ARG, RECIPE_ARG
from emotionkit.errors import RecipeError
from emotionkit.recipe import load_recipe, packaged_recipes, recipe_json_schema


def recipe_show(recipe: Path = RECIPE_ARG, overrides: list[str] | None = OVERRIDES_ARG) -> None:
    """Print the resolved recipe (defaults and overrides applied) as YAML."""
    typer.echo(load_recipe(recipe, overrides).to_yaml(), nl=False)


def recipe_list() -> None:
    """The packaged recipes: name and what each is for (its first comment line)."""
    for name, path in packaged_recipes().items():
        first = path.read_text().splitlines()[0].lstrip("# ").strip()
        typer.echo(f"{name:<20} {first}")


def recipe_copy(
    name: str = typer.Argument(..., help="A packaged recipe (`emotionkit recipe list`)."),
    dest: Path | None = typer.Argument(None, help="Where to write it (default: NAME.yaml)."),
) -> None:
    """Copy a packaged recipe to start your own (an existing file is never overwritten)."""
    packaged = packaged_recipes()
    if name not in packaged:
        raise RecipeError(f"No packaged recipe {name!r}: {', '.join(packaged)}.")
    target = dest or Path(f"{name}.yaml")
    if target.is_dir():
        target = target / f"{name}.yaml"
    if target.exists():
        raise RecipeError(f"{target} exists: choose another DEST (nothing was overwritten).")
    target.write_text(packaged[name].read_text())
    typer.echo(str(target))


def recipe_schema() -> None:
    """Print the recipe's JSON Schema (point your editor's YAML plugin at it)."""
    typer.echo(json.dumps(recipe_json_schema(), indent=2))


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
