"""The recipe reference in docs/ is generated from the recipe models and must match them."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest

from emotionkit.recipe import recipe_json_schema
from emotionkit.recipe_docs import REGENERATE_COMMAND, main, render_recipe_reference

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "recipe-reference.md"


def _schema_leaf_keys(node: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys of every leaf in the JSON Schema.

    Walked from the JSON Schema rather than from `recipe_docs`' own walker, so a field that
    the renderer skips (a new union member, a new nesting) is caught.
    """
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    members = [m for m in node.get("oneOf", []) if "$ref" in m or "properties" in m]
    if members:
        return set().union(*(_schema_leaf_keys(member, defs, prefix) for member in members))
    if "properties" not in node:
        return {prefix.rstrip(".")}
    keys: set[str] = set()
    for name, child in node["properties"].items():
        keys |= _schema_leaf_keys(child, defs, f"{prefix}{name}.")
    return keys


def test_committed_reference_matches_the_recipe_models() -> None:
    rendered = render_recipe_reference()
    committed = REFERENCE.read_text() if REFERENCE.is_file() else ""
    if committed != rendered:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    rendered.splitlines(keepends=True),
                    "docs/recipe-reference.md (committed)",
                    "render_recipe_reference()",
                )
            )[:60]
        )
        pytest.fail(
            f"docs/recipe-reference.md is stale; regenerate it with `{REGENERATE_COMMAND}`.\n"
            + diff
        )


def test_every_leaf_field_of_the_recipe_has_a_row() -> None:
    schema = recipe_json_schema()
    keys = _schema_leaf_keys(schema, schema["$defs"])
    rendered = render_recipe_reference()

    assert {"name", "data.source.kind", "data.source.path", "train.optimizer.lr"} <= keys
    missing = sorted(key for key in keys if f"| `{key}` |" not in rendered)
    assert not missing, f"recipe keys without a row in the reference: {missing}"


def test_types_defaults_and_sections_are_readable() -> None:
    rendered = render_recipe_reference()

    assert "| `runtime.backend` | `auto \\| jax \\| tensorflow` | `auto` |" in rendered
    assert "| `train.epochs` | `int >= 1` | `10` |" in rendered
    assert "| `data.image_size` | `16 <= int <= 512` | `48` |" in rendered
    assert "| `train.optimizer.clip_norm` | `float > 0 \\| null` | `null` |" in rendered
    assert (
        "| `export.formats` | `list[saved_model \\| onnx \\| onnx_int8]` | `[saved_model, onnx]` |"
        in rendered
    )
    assert "| `name` | `str` | *required* |" in rendered
    assert "## `data.source` (kind: synthetic)" in rendered
    assert "## `data.source` (kind: image_folder)" in rendered
    assert REGENERATE_COMMAND in rendered.splitlines()[2]


def test_main_writes_the_reference_to_the_given_path(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "reference.md"

    assert main([str(output)]) == 0
    assert output.read_text() == render_recipe_reference()
