"""Arguments that several commands share: a recipe file and dotted overrides of it."""

from __future__ import annotations

import typer

RECIPE_ARG = typer.Argument(
    ...,
    help="Recipe YAML file, or a packaged recipe's name (`emotionkit recipe list`).",
    show_default=False,
)
OVERRIDES_ARG = typer.Argument(
    None,
    help="Dotted overrides, e.g. train.epochs=3 model.depth=34 data.augment=[]",
    show_default=False,
)
