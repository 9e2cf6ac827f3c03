"""Recipe loading, overrides, validation errors and the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emotionkit.errors import RecipeError
from emotionkit.recipe import Recipe, load_recipe, recipe_json_schema

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name
    assert path.read_text().startswith("#"), "recipe header comment must give the command"


def test_overrides_are_parsed_as_yaml(quickstart: Path) -> None:
    recipe = load_recipe(
        quickstart,
        [
            "train.epochs=3",
            "model.depth=34",
            "data.augment=[{flip: {}}]",
            "train.loss.label_smoothing=0.1",
        ],
    )
    assert recipe.train.epochs == 3
    assert recipe.model.depth == 34
    assert [op.entry_name for op in recipe.data.augment] == ["flip"]
    assert recipe.train.loss.label_smoothing == pytest.approx(0.1)


def test_unknown_key_suggests_closest_name(quickstart: Path) -> None:
    with pytest.raises(RecipeError) as error:
        load_recipe(quickstart, ["train.epochz=3"])
    message = str(error.value)
    assert "`train.epochz`" in message
    assert "Did you mean `train.epochs`?" in message
    assert "\n" not in message


def test_unknown_key_inside_source_union(quickstart: Path) -> None:
    with pytest.raises(RecipeError, match=r"data\.source\.train_siz.*data\.source\.train_size"):
        load_recipe(quickstart, ["data.source.train_siz=10"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.depth=19", r"`model.depth` = 19"),
        ("train.epochs=0", r"`train.epochs` = 0"),
        ("runtime.backend=torch", r"`runtime.backend` = 'torch'"),
        ("data.val_split=1.5", r"`data.val_split` = 1.5"),
        ("train.epochs", r"not of the form dotted.key=value"),
        ("train.epochs.x=3", r"`train.epochs` is .*not a section"),
        ("train.epochs=[", r"not valid YAML"),
        ("data.source={kind: image_folder}", r"`data.source.path` is required"),
        ("train.schedule.warmup_epochs=50", r"warmup_epochs .* must be smaller than train.epochs"),
    ],
)
def test_bad_values_name_the_dotted_key(quickstart: Path, override: str, expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        load_recipe(quickstart, [override])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "broken.yaml")


def test_name_is_required(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("seed: 1\n")
    with pytest.raises(RecipeError, match="`name` is required"):
        load_recipe(tmp_path / "r.yaml")


def test_resolved_yaml_round_trips(quickstart: Path, tmp_path: Path) -> None:
    recipe = load_recipe(quickstart, ["train.epochs=4"])
    (tmp_path / "resolved.yaml").write_text(recipe.to_yaml())
    assert load_recipe(tmp_path / "resolved.yaml") == recipe


def test_json_schema_lists_every_section() -> None:
    schema = recipe_json_schema()
    assert set(schema["properties"]) == set(Recipe.model_fields)
    assert schema["required"] == ["name"]
    assert yaml.safe_dump(schema)  # serialisable, so editors can consume it


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.unfreeze_at_epoch=2"], "train.unfreeze_at_epoch is set but model.freeze is none"),
        (
            ["model.freeze=backbone", "train.epochs=3", "train.unfreeze_at_epoch=3"],
            r"train.unfreeze_at_epoch \(3\) must be smaller than train.epochs \(3\)",
        ),
        (["train.backbone_lr_scale=0.1"], "train.backbone_lr_scale needs train.unfreeze_at_epoch"),
    ],
)
def test_fine_tuning_cross_checks_name_the_keys(
    quickstart: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(quickstart, overrides)


def test_fine_tuning_fields_parse(quickstart: Path) -> None:
    recipe = load_recipe(
        quickstart,
        [
            "model.freeze=[conv1_*, stack0_*]",
            "model.weights=runs/a/best.keras",
            "model.version=v2",
            "train.unfreeze_at_epoch=2",
            "train.backbone_lr_scale=0.1",
        ],
    )
    assert recipe.model.freeze == ["conv1_*", "stack0_*"]
    assert recipe.model.weights == Path("runs/a/best.keras") and recipe.model.version == "v2"
    assert recipe.train.backbone_lr_scale == pytest.approx(0.1)


def test_json_schema_lists_registered_choices_and_their_fields() -> None:
    schema = recipe_json_schema()

    def resolved(node: dict) -> dict:
        ref = node.get("$ref") or (node.get("allOf") or [{}])[0].get("$ref")
        return resolved(schema["$defs"][ref.split("/")[-1]]) if ref else node

    data = resolved(schema["properties"]["data"])
    ops = data["properties"]["augment"]["items"]["oneOf"]
    flip = next(resolved(op["properties"]["flip"]) for op in ops if "flip" in op["properties"])
    assert set(flip["properties"]) == {"mode", "p"} and flip["additionalProperties"] is False
    models = [resolved(m) for m in schema["properties"]["model"]["oneOf"]]
    fields = {m["properties"]["name"]["const"]: set(m["properties"]) for m in models}
    assert "depth" in fields["resnet"] and "depth" not in fields["mobilenet_v3_small"]


def test_switching_a_kind_drops_the_old_kinds_keys(quickstart: Path, tmp_path: Path) -> None:
    """As Hydra's config groups: the override order does not matter; shared keys stay."""
    recipe = load_recipe(
        quickstart, [f"data.source.path={tmp_path}", "data.source.kind=image_folder"]
    )
    assert recipe.data.source.model_dump() == {"kind": "image_folder", "path": tmp_path}
    mobile = load_recipe(quickstart, ["model.name=mobilenet_v3_small"])
    assert mobile.model.name == "mobilenet_v3_small" and mobile.model.width == 0.125


def test_a_cross_field_error_names_the_fields_not_the_whole_section(quickstart: Path) -> None:
    with pytest.raises(RecipeError) as error:
        load_recipe(quickstart, ["train.epochs=1"])
    message = str(error.value)
    assert "warmup_epochs (1.0) must be smaller than train.epochs (1)" in message
    assert "set train.schedule.warmup_epochs=0" in message and "'optimizer'" not in message
