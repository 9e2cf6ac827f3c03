"""Registries: components of one's own, registered from one file, used by name in a recipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotionkit import workflow
from emotionkit.data.registry import AUGMENTATIONS, SOURCES
from emotionkit.errors import RecipeError
from emotionkit.models.spec import MODELS
from emotionkit.recipe import load_recipe, recipe_json_schema
from emotionkit.registry import Registry
from emotionkit.training.registries import LOSSES

PLUGINS = Path(__file__).parent / "plugins"
TOY_NAMES = [
    (MODELS, "toy_conv"),
    (SOURCES, "toy_stripes"),
    (AUGMENTATIONS, "toy_invert"),
    (LOSSES, "toy_focal_ce"),
]
TOY_RECIPE = [
    "plugins=[toy_components]",
    "data.source={kind: toy_stripes, size: 96}",
    "data.image_size=16",
    "data.batch_size=16",
    "data.val_split=0.25",
    "data.augment=[{flip: {}}, {toy_invert: {p: 0.5}}]",
    "model={name: toy_conv, filters: 4}",
    "train.loss.name=toy_focal_ce",
    "train.epochs=10",
    "train.optimizer.lr=0.03",
    "train.schedule.warmup_epochs=0",
    "export.formats=[]",
]


@pytest.fixture
def toy_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The toy module importable here and in child processes; unregistered afterwards."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    )
    yield
    for registry, name in TOY_NAMES:
        registry.remove(name)
    sys.modules.pop("toy_components", None)


def test_unknown_names_are_refused_with_the_closest_one() -> None:
    registry: Registry[int] = Registry("widget", "train.widget")
    registry.add("cosine", 1)
    with pytest.raises(
        RecipeError, match=r"^train\.widget: unknown widget 'cosin'\. Did you mean 'cosine'\?"
    ):
        registry.get("cosin")
    with pytest.raises(ValueError, match="already registered"):
        registry.add("cosine", 2)


def test_a_plugin_recipe_needs_its_plugin(quickstart: Path) -> None:
    with pytest.raises(RecipeError, match="unknown model 'toy_conv'"):
        load_recipe(quickstart, ["model.name=toy_conv"])
    with pytest.raises(RecipeError, match=r"`plugins`: cannot import 'no_such_module'"):
        load_recipe(quickstart, ["plugins=[no_such_module]"])


def test_registered_components_join_the_schema(quickstart: Path, toy_plugins: None) -> None:
    recipe = load_recipe(quickstart, TOY_RECIPE)
    assert type(recipe.model).__name__ == "ToyConvSpec"
    assert recipe.data.augment[1].entry_name == "toy_invert"
    schema = str(recipe_json_schema())
    for _, name in TOY_NAMES:
        assert name in schema
    with pytest.raises(
        RecipeError, match=r"unknown key `model\.depth`.*Valid keys in `model`: .*filters"
    ):
        load_recipe(quickstart, [*TOY_RECIPE, "model.depth=50"])


@pytest.mark.slow
def test_quickstart_trains_with_a_toy_model_source_op_and_loss(
    quickstart: Path, tmp_path: Path, toy_plugins: None
) -> None:
    """One file registers all four; the real training and evaluation use them."""
    recipe = load_recipe(
        quickstart, [*TOY_RECIPE, f"runtime.backend={os.environ['KERAS_BACKEND']}"]
    )
    result = workflow.train(recipe, runs_dir=tmp_path)
    saved = load_recipe(result.run_dir / "recipe.yaml")  # resumable: the plugin is recorded
    assert saved.plugins == ["toy_components"] and saved.model.name == "toy_conv"
    # Stripes are easy: a net that learned anything beats chance on validation.
    assert result.metrics["val"]["accuracy"] > 0.5
    assert "horizontal" in (result.run_dir / "manifest.json").read_text()
