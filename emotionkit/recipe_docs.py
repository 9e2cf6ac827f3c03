"""Render the recipe reference (`docs/recipe-reference.md`) from the pydantic `Recipe` model.

The recipe models are the single source of truth for every key, type, bound, default and
description; writing the reference by hand would let it drift from them. This module walks
`emotionkit.recipe.Recipe` and prints one Markdown table per section, and a test compares the
committed file with a fresh rendering so the docs cannot go stale. It imports only pydantic
(through `emotionkit.recipe`), never Keras, so it runs in a docs-only environment.

Regenerate the committed file with:
    python -m emotionkit.recipe_docs docs/recipe-reference.md
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from emotionkit.recipe import Recipe
from emotionkit.sections import OneKeyEntry, PickedBy

REGENERATE_COMMAND = "python -m emotionkit.recipe_docs docs/recipe-reference.md"
DEFAULT_OUTPUT = Path("docs/recipe-reference.md")
REQUIRED = "*required*"
_UNION_ORIGINS = (typing.Union, types.UnionType)
# Readable names for the plain types that appear in recipes; anything else uses __name__.
_TYPE_NAMES: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    Path: "path",
    type(None): "null",
    Any: "any",
}


@dataclass(frozen=True)
class Row:
    """One leaf key of the recipe, already formatted for a Markdown table."""

    key: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Table:
    """One recipe section: a heading, the section's purpose and its leaf keys."""

    title: str
    intro: str
    rows: list[Row]


def render_recipe_reference() -> str:
    """The full Markdown reference: a generated-file header, then one table per section.

    Output depends only on the model definitions (field order, no sets or timestamps), so
    the committed file can be compared byte for byte with a fresh rendering.
    """
    parts = [_header()]
    for table in recipe_tables():
        parts.append(_render_table(table))
    return "\n".join(parts)


def recipe_tables() -> list[Table]:
    """Every section of `Recipe`, depth first in field order (top level first)."""
    tables: list[Table] = []
    _collect_tables(Recipe, "", "Top level", _class_summary(Recipe), tables, None)
    return tables


def _collect_tables(
    model: type[BaseModel],
    prefix: str,
    title: str,
    intro: str,
    tables: list[Table],
    discriminator: str | None,
) -> None:
    """Append `model`'s table, then recurse into its sub-sections (one table per union kind).

    The parent's table goes first so the reference reads top-down, as a recipe file does.
    Registry-picked sections (`model`, `data.source`) get one table per registered class;
    `{name: {params}}` lists (`data.augment`) one table per registered entry.
    """
    rows: list[Row] = []
    sections: list[tuple[str, FieldInfo, list[type[BaseModel]], str | None]] = []
    entries: list[tuple[str, OneKeyEntry]] = []
    for name, field in model.model_fields.items():
        members, tag = _section_members(field)
        entry = _entry_list_marker(field.annotation)
        if members:
            sections.append((prefix + name, field, members, tag))
            continue
        optional = _optional_section(field.annotation)
        if optional is not None:  # `data.faces`: off (null) by default, a section when set
            sections.append((prefix + name, field, [optional], None))
        if entry is not None:
            entries.append((prefix + name, entry))
        is_tag = name == discriminator and field.is_required()
        rows.append(_leaf_row(prefix + name, field, is_tag=is_tag))
    tables.append(Table(title, intro, rows))
    for key, field, members, tag in sections:
        for member in members:
            kind = _tag_value(member, tag)
            member_title = f"`{key}` ({tag}: {kind})" if kind else f"`{key}`"
            member_intro = _section_intro(key, field, member, tag)
            _collect_tables(member, key + ".", member_title, member_intro, tables, tag)
    for key, entry in entries:
        for entry_name, entry_class in entry.registry.items():
            entry_key = f"{key}[].{entry_name}"
            entry_intro = f"`- {entry_name}: {{params}}` in `{key}`. {_class_summary(entry_class)}"
            _collect_tables(
                entry_class, entry_key + ".", f"`{entry_key}`", entry_intro, tables, None
            )


def _section_members(field: FieldInfo) -> tuple[list[type[BaseModel]], str | None]:
    """The section classes behind a field and the key that picks one (`kind`, `name`).

    One class for a nested section; every registered class for a registry-picked section.
    Returns ([], None) for leaf fields, including unions of plain types (`list[int] | None`).
    """
    for marker in field.metadata:
        if isinstance(marker, PickedBy):
            return [cls for _, cls in marker.registry.items()], marker.key
    if _is_section(field.annotation):
        return [field.annotation], None  # type: ignore[list-item]
    return [], None


def _optional_section(annotation: Any) -> type[BaseModel] | None:
    """The section class of a `Section | None` field, else None."""
    if typing.get_origin(annotation) not in _UNION_ORIGINS:
        return None
    classes = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return classes[0] if len(classes) == 1 and _is_section(classes[0]) else None


def _entry_list_marker(annotation: Any) -> OneKeyEntry | None:
    """The registry of a `list[{name: {params}}]` field such as `data.augment`."""
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    for marker in getattr(item, "__metadata__", ()):
        if isinstance(marker, OneKeyEntry):
            return marker
    return None


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tag_value(member: type[BaseModel], tag: str | None) -> str | None:
    """The literal value of the discriminator field (`kind`) that selects `member`."""
    if tag is None or tag not in member.model_fields:
        return None
    return str(member.model_fields[tag].default)


def _section_intro(key: str, field: FieldInfo, member: type[BaseModel], tag: str | None) -> str:
    """Explain a section: the parent field's description, the class docstring, how to pick it.

    For a union member the reader also needs the key that selects it and whether it is
    what an omitted section means, which neither docstring says on its own.
    """
    sentences = [field.description or "", _class_summary(member)]
    kind = _tag_value(member, tag)
    if kind is not None:
        sentences.append(f"Selected by `{key}.{tag}: {kind}`.")
        if field.default_factory is member:
            sentences.append(f"The default when `{key}` is omitted.")
    return " ".join(sentence for sentence in sentences if sentence)


def _class_summary(model: type[BaseModel]) -> str:
    """First paragraph of the class docstring, on one line."""
    doc = inspect.cleandoc(model.__doc__ or "")
    return " ".join(doc.split("\n\n")[0].split())


def _leaf_row(key: str, field: FieldInfo, *, is_tag: bool) -> Row:
    """Format one leaf field; a discriminator (`kind`) must be written whenever its section is."""
    if is_tag:
        value = _format_value(field.default)
        return Row(key, f"`{value}`", REQUIRED, f"Selects this kind: `{value}`.")
    return Row(key, f"`{_field_type(field)}`", _field_default(field), field.description or "")


def _field_type(field: FieldInfo) -> str:
    """Readable type with bounds, e.g. `auto | jax | tensorflow`, `16 <= int <= 512`, `float`.

    Bounds apply to the non-null part, so `float | None` with `gt=0` reads `float > 0 | null`.
    """
    members = [field.annotation]
    if typing.get_origin(field.annotation) in _UNION_ORIGINS:
        members = list(typing.get_args(field.annotation))
    non_null = [member for member in members if member is not type(None)]
    name = _with_bounds(" | ".join(_type_name(member) for member in non_null), field.metadata)
    return f"{name} | null" if len(non_null) < len(members) else name


def _type_name(annotation: Any) -> str:
    """Name a type the way a recipe author reads it: literals as their values, YAML words."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(_format_value(value) for value in args)
    if origin is typing.Annotated:  # `list[Annotated[str, NameIn(LOGGERS)]]`: a list of str
        return _type_name(args[0])
    if origin in _UNION_ORIGINS:
        return " | ".join(_type_name(arg) for arg in args)
    if origin is list:
        if args and _entry_list_marker(annotation) is not None:
            return "list[{name: {params}}]"
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is tuple:
        return "[" + ", ".join(_type_name(arg) for arg in args) + "]"
    if origin is dict or annotation is dict:
        return "mapping"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    if _is_section(annotation):
        return "section"
    return str(getattr(annotation, "__name__", annotation))


def _with_bounds(name: str, metadata: list[Any]) -> str:
    """Add pydantic's ge/gt/le/lt constraints around a type name (`int >= 1`, `0 < float < 1`)."""
    lower = upper = ""
    for constraint in metadata:
        for attribute, symbol in (("ge", ">="), ("gt", ">")):
            if getattr(constraint, attribute, None) is not None:
                lower = f"{symbol} {_format_bound(getattr(constraint, attribute))}"
        for attribute, symbol in (("le", "<="), ("lt", "<")):
            if getattr(constraint, attribute, None) is not None:
                upper = f"{symbol} {_format_bound(getattr(constraint, attribute))}"
    if lower and upper:
        # Flip `>= 16` into `16 <=` so both bounds read left to right around the type.
        symbol, value = lower.split(" ")
        return f"{value} {symbol.replace('>', '<')} {name} {upper}"
    return " ".join(part for part in (name, lower or upper) if part)


def _format_bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _field_default(field: FieldInfo) -> str:
    """The default as it would be written in YAML, or *required*."""
    if field.is_required():
        return REQUIRED
    return f"`{_format_value(field.get_default(call_default_factory=True))}`"


def _format_value(value: Any) -> str:
    """A Python value in YAML flow style: `null`, `true`, `[saved_model, onnx]`, `0.001`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{key}: {_format_value(item)}" for key, item in value.items())
        return "{" + items + "}"
    if isinstance(value, str) and not value:
        return "''"
    return str(value)


def _header() -> str:
    return (
        "# Recipe reference\n\n"
        "> Generated from the stages' recipe sections (assembled in `emotionkit/recipe.py`) and "
        f"the registries by `{REGENERATE_COMMAND}`."
        "\n> Do not edit this file by hand: change the models and regenerate it "
        "(`tests/test_recipe_docs.py` fails when it is stale).\n\n"
        "Every key below can be set in a recipe YAML file or overridden on the command line "
        "with its dotted path, e.g. `emotionkit train recipes/quickstart.yaml train.epochs=3`. "
        "Unknown keys are rejected with the closest valid name. "
        "`emotionkit recipe show RECIPE` prints a recipe with every default filled in; "
        "`emotionkit recipe schema` prints the same information as JSON Schema.\n"
    )


def _render_table(table: Table) -> str:
    lines = [f"## {table.title}", ""]
    if table.intro:
        lines += [_escape(table.intro, in_table=False), ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for row in table.rows:
        cells = (f"`{row.key}`", row.type, row.default, row.description)
        lines.append("| " + " | ".join(_escape(cell, in_table=True) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str, *, in_table: bool) -> str:
    """One line; `|` escaped in table cells (GitHub Markdown needs it even inside code spans)."""
    text = " ".join(text.split())
    return text.replace("|", "\\|") if in_table else text


def main(argv: list[str] | None = None) -> int:
    """Write the reference to `argv[0]` (default `docs/recipe-reference.md`)."""
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_recipe_reference())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
