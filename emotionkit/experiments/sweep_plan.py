"""What a sweep runs: grid points from the command line, or the runs of a sweep file.

`emotionkit sweep RECIPE key=a,b key2=x,y` is a grid over the recipe (`grid.expand_grid`).
`emotionkit sweep SWEEP.yaml [key=value ...]` runs the list a sweep file gives: each entry
a recipe and its overrides, in the same syntax (commas sweep there too), with the file's
and the command line's overrides added to every run:

    # emotionkit sweep widths.yaml
    name: widths                  # the sweep folder: sweeps/widths (default: the file's stem)
    overrides: [train.epochs=4]   # added to every run
    runs:
      - recipe: quickstart        # a packaged recipe, or a file relative to this one
        overrides: ["model.width=0.125,0.25"]
      - recipe: my_recipe.yaml

A key given at several levels takes its last value: the file's `overrides`, then the run's,
then the command line's.

Every point is validated (`load_recipe`) before the first run starts, so a key that does
not exist stops the sweep at once, named in the error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from emotionkit.errors import RecipeError
from emotionkit.experiments.grid import expand_grid, sweep_axes
from emotionkit.recipe import Recipe, load_recipe, resolve_recipe
from emotionkit.sections import Section


class SweepEntry(Section):
    """One recipe of a sweep file and its overrides."""

    recipe: str = Field(
        description="A recipe file (relative to the sweep file, or to the working folder) "
        "or a packaged recipe's name."
    )
    overrides: list[str] = Field(
        default_factory=list,
        description="`key=value` overrides; `key=a,b` runs once per value (a grid when "
        "several keys have several values).",
    )


class SweepFile(Section):
    """A sweep file: the runs of a sweep, each a recipe and its overrides."""

    name: str | None = Field(
        None, description="The sweep's folder name under `sweeps/`; default: the file's stem."
    )
    overrides: list[str] = Field(
        default_factory=list, description="Overrides added to every run (before the run's own)."
    )
    runs: list[SweepEntry] = Field(min_length=1, description="The recipes to run.")


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: a recipe file and the overrides that make it this point."""

    recipe: Path
    overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        """A hash of the recipe file's text and the overrides: the point's identity, so a
        sweep run again finds the run directory of each point it already started."""
        text = "\n".join([self.recipe.read_text(), *self.overrides])
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def folder_name(self, swept: list[str]) -> str:
        """`model.width=0.25,train.epochs=2-<key>`: the swept overrides, readable, then the key."""
        shown = [o for o in self.overrides if o.partition("=")[0] in swept] or [self.recipe.stem]
        slug = re.sub(r"[^\w.=,+-]+", "-", ",".join(shown)).strip("-")[:80]
        return f"{slug}-{self.key}"

    def load(self) -> Recipe:
        return load_recipe(self.recipe, list(self.overrides))


@dataclass(frozen=True)
class SweepPlan:
    """The sweep's name, its points in run order, and the keys that vary between them."""

    name: str
    points: list[SweepPoint]
    swept: list[str]


def is_sweep_file(target: str | Path) -> bool:
    """A YAML file with a `runs:` list is a sweep file; anything else names a recipe."""
    path = Path(target)
    if not path.is_file():
        return False
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(raw, dict) and "runs" in raw


def plan_sweep(target: str | Path, overrides: list[str]) -> SweepPlan:
    """The points of `emotionkit sweep TARGET OVERRIDES...`, each validated.

    Raises:
        RecipeError: a bad sweep file, override or recipe; the message names the run's
            overrides and the recipe key.
    """
    if is_sweep_file(target):
        plan = _plan_from_file(Path(target), overrides)
    else:
        recipe = resolve_recipe(target)
        points = [SweepPoint(recipe, tuple(point)) for point in expand_grid(overrides)]
        name = str(_read_mapping(recipe).get("name") or recipe.stem)
        plan = SweepPlan(name, points, _swept(points))
    check_points(plan)
    return plan


def check_points(plan: SweepPlan) -> list[Recipe]:
    """Every point's recipe, validated before any run starts.

    Raises:
        RecipeError: the first point that does not validate, with its overrides.
    """
    recipes = []
    for index, point in enumerate(plan.points, start=1):
        try:
            recipes.append(point.load())
        except RecipeError as error:
            shown = " ".join(point.overrides) or "no overrides"
            raise RecipeError(f"Sweep run {index}/{len(plan.points)} ({shown}): {error}") from None
    return recipes


def _plan_from_file(path: Path, overrides: list[str]) -> SweepPlan:
    try:
        sweep = SweepFile.model_validate(_read_mapping(path))
    except ValidationError as error:
        problems = "; ".join(
            f"`{'.'.join(map(str, item['loc']))}`: {item['msg']}" for item in error.errors()
        )
        raise RecipeError(f"Sweep file {path}: {problems}.") from None
    points = []
    for entry in sweep.runs:
        recipe = path.parent / entry.recipe
        recipe = resolve_recipe(recipe if recipe.is_file() else entry.recipe)
        grid = expand_grid([*sweep.overrides, *entry.overrides, *overrides])
        points += [SweepPoint(recipe, tuple(point)) for point in grid]
    return SweepPlan(sweep.name or path.stem, points, _swept(points))


def _swept(points: list[SweepPoint]) -> list[str]:
    """Override keys whose value is not the same in every point (a key some lack counts)."""
    values: dict[str, set[str | None]] = {}
    for point in points:
        for key, texts in sweep_axes(list(point.overrides)):
            values.setdefault(key, set()).add(texts[0])
    for key in values:
        if any(not any(o.startswith(f"{key}=") for o in p.overrides) for p in points):
            values[key].add(None)
    return [key for key, seen in values.items() if len(seen) > 1]


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"{path} is not readable YAML: {error}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path} must be a YAML mapping, got {raw!r}.")
    return raw
