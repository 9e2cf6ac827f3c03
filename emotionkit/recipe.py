"""The recipe: the stages' typed sections, assembled, loaded from YAML and overridden.

Each stage owns its section next to its code (`runtime.RuntimeSpec`, `data.spec.DataSpec`,
`models.spec.ModelSpec`, `training.spec.TrainSpec`, `export_spec.ExportSpec`); this module
puts them together and owns reading YAML, `key=value` overrides, the error text
(`recipe_errors`) and the JSON Schema. Every field carries a description: it is the
documentation, the JSON Schema (`emotionkit recipe schema`) and the source of the recipe
reference in `docs/`.

Example:
    >>> recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=3", "model.width=0.25"])
    >>> recipe.train.epochs
    3
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from emotionkit.data.spec import DataSpec
from emotionkit.errors import RecipeError
from emotionkit.export_spec import ExportSpec
from emotionkit.models import MODELS, ModelSpec, ResNetSpec
from emotionkit.recipe_errors import count_problems, describe_problems
from emotionkit.runtime import RuntimeSpec
from emotionkit.sections import PickedBy, Section
from emotionkit.training.spec import TrainSpec


class Recipe(Section):
    """A complete, validated recipe."""

    name: str = Field(description="Run name: runs go to `RUNS_DIR/<name>/<timestamp>`.")
    seed: int = Field(42, description="Fixes splits, shuffles, augmentation and weight init.")
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules imported before the rest of the recipe is validated, to "
        "register components of your own (a model, source, augmentation op, loss, schedule "
        "or optimizer; see docs/architecture.md), e.g. `[my_project.faces]`. The run's "
        "recipe.yaml keeps them, so resume, evaluate and export import them too.",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    model: Annotated[ModelSpec, PickedBy(MODELS, "name")] = Field(default_factory=ResNetSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)

    @model_validator(mode="after")
    def _unfreeze_needs_freeze(self) -> Recipe:
        if self.train.unfreeze_at_epoch is not None and self.model.freeze in ("none", []):
            raise ValueError(
                "train.unfreeze_at_epoch is set but model.freeze is none: nothing to unfreeze "
                "(set model.freeze: backbone, or remove train.unfreeze_at_epoch)"
            )
        return self

    @model_validator(mode="after")
    def _loss_fits_targets(self) -> Recipe:
        loss, targets = self.train.loss.name, self.data.targets
        if targets == "multi_label" and loss != "bce":
            raise ValueError(
                f"data.targets: multi_label needs train.loss.name: bce (one sigmoid per "
                f"class), not {loss}"
            )
        if loss == "bce" and targets != "multi_label":
            raise ValueError(
                "train.loss.name: bce is the multi-label loss: set data.targets: multi_label "
                "(the classes with at least data.multi_label_min_share of the votes), or use "
                "cross_entropy"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved recipe as YAML, loadable again with `load_recipe`."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


PACKAGED_RECIPES = Path(__file__).parent / "recipes"
"""The recipes that ship in the package (`emotionkit recipe list`); the repository's
`recipes/` is a link to this folder."""


def packaged_recipes() -> dict[str, Path]:
    """Name (file stem) -> path of every packaged recipe, sorted by name."""
    return {path.stem: path for path in sorted(PACKAGED_RECIPES.glob("*.yaml"))}


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: the path when it exists, else the packaged recipe of that name.

    Raises:
        RecipeError: neither a file nor a packaged name; lists the packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = packaged_recipes()
    if str(name_or_path) in packaged:
        return packaged[str(name_or_path)]
    raise RecipeError(
        f"Recipe file not found: {name_or_path} (nor a packaged recipe: "
        f"{', '.join(packaged)}; `emotionkit recipe list`)."
    )


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply dotted `key=value` overrides and validate it.

    Args:
        path: the recipe file, or the name of a packaged recipe (`quickstart`).
        overrides: e.g. `["train.epochs=3", "data.augment=[]"]`; values are parsed as YAML.

    Returns:
        The validated recipe.

    Raises:
        RecipeError: a missing/unparsable file, a bad override or a field that does not
            validate; the message names the dotted key.
    """
    path = resolve_recipe(path)
    raw = _read_yaml(path)
    # A section's kind or name switches first, so that `data.source.path=X` given before
    # `data.source.kind=image_folder` is not dropped with the old kind's keys.
    ordered = sorted(overrides or [], key=lambda item: item.partition("=")[0] not in _PICKERS)
    for override in ordered:
        _apply_override(raw, override)
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe dict, turning pydantic's report into one readable paragraph.

    The modules in `plugins` are imported first, so the components they register are
    choices of this validation.
    """
    import_plugins(raw.get("plugins"))
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        problems = describe_problems(error, Recipe, raw)
        count = count_problems(error)
        plural = "s" if count > 1 else ""
        raise RecipeError(f"Recipe {source} has {count} problem{plural}: {problems}") from None


def import_plugins(modules: Any) -> None:
    """Import each module named in `plugins` (its registrations run at import).

    Raises:
        RecipeError: `plugins` is not a list of module names, or one does not import.
    """
    if modules is None:
        return
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise RecipeError(f"`plugins` = {modules!r}: must be a list of module names.")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise RecipeError(
                f"`plugins`: cannot import {module!r} ({error}); is it installed or on PYTHONPATH?"
            ) from None


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema of the recipe, for editor autocompletion and the docs."""
    return Recipe.model_json_schema()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RecipeError(f"Recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecipeError(f"Recipe {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"Recipe {path} must be a YAML mapping of sections, got {raw!r}.")
    return raw


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` inside the nested dict `raw`, creating sections as needed."""
    key, sep, text = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(
            f"Override {override!r} is not of the form dotted.key=value (e.g. train.epochs=3)."
        )
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as error:
        raise RecipeError(f"Override `{key}`: value {text!r} is not valid YAML: {error}") from None
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise RecipeError(f"Override `{key}`: `{where}` is {child!r}, not a section.")
        node = child
    if key in _PICKERS and node.get(leaf, value) != value:
        _switch_choice(node, _PICKERS[key], value)
    node[leaf] = value


def _switch_choice(section: dict[str, Any], registry: Any, name: Any) -> None:
    """Another `kind`/`name`: drop the keys the new choice does not have, as Hydra's config
    groups replace their section (`data.source.kind=image_folder` drops `train_size`)."""
    if name not in registry:
        return  # validation names the unknown choice
    accepted = registry.get(name).model_fields
    for key in [key for key in section if key not in accepted]:
        del section[key]


def _registry_pickers(section: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """`dotted.key` -> registry of every field a registry picks by (`model.name`,
    `data.source.kind`), read from the sections' `PickedBy` markers."""
    pickers: dict[str, Any] = {}
    for name, field in section.model_fields.items():
        for marker in field.metadata:
            if isinstance(marker, PickedBy):
                pickers[f"{prefix}{name}.{marker.key}"] = marker.registry
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            pickers.update(_registry_pickers(field.annotation, f"{prefix}{name}."))
    return pickers


_PICKERS = _registry_pickers(Recipe)
"""Overrides that switch a registry-picked section to another choice."""
