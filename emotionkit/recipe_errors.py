"""Pydantic's validation report as one readable paragraph naming the dotted recipe keys.

Unknown keys get the closest valid name (the way Ultralytics rejects a mistyped `epochz`),
found by walking the recipe's sections along the error's location, following the data to
the registered class that a `model.name`, `data.source.kind` or augmentation name picked.
"""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any, cast

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from emotionkit.sections import OneKeyEntry, PickedBy


def describe_problems(error: PydanticValidationError, root: Any, raw: Any, prefix: str = "") -> str:
    """Every problem of `error`, each a sentence naming its dotted key.

    Args:
        error: what pydantic raised.
        root: the type that was validated (the `Recipe` class, or `list[...]` of ops).
        raw: the data that was validated, to find the class each union picked.
        prefix: the dotted key of `root` within the recipe (`data.augment`), if any.
    """
    problems = [_describe_problem(item, root, raw, prefix) for item in error.errors()]
    return " ".join(problems)


def count_problems(error: PydanticValidationError) -> int:
    return len(error.errors())


def _describe_problem(item: Any, root: Any, raw: Any, prefix: str) -> str:
    parts = list(item["loc"])
    loc = dotted(prefix, parts)
    if item["type"] == "extra_forbidden":
        parent = dotted(prefix, parts[:-1])
        valid = _valid_keys(root, parts[:-1], raw)
        leaf = str(parts[-1])
        close = difflib.get_close_matches(leaf, valid, n=1, cutoff=0.5)
        hint = f" Did you mean `{(parent + '.' if parent else '') + close[0]}`?" if close else ""
        where = f" in `{parent}`" if parent else ""
        return (
            f"unknown key `{loc}` (value {item['input']!r}).{hint} "
            f"Valid keys{where}: {', '.join(valid)}."
        )
    if not loc:  # a cross-section check on the whole recipe: its message names the keys
        return str(item["msg"]).removeprefix("Value error, ") + "."
    if item["type"] == "missing":
        return f"`{loc}` is required but missing."
    message = str(item["msg"]).removeprefix("Value error, ")
    if isinstance(item.get("input"), dict):  # a check across a section's fields: it names them
        return f"`{loc}`: {message}."
    return f"`{loc}` = {item.get('input')!r}: {message}."


def dotted(prefix: str, parts: list[Any]) -> str:
    """`data`, [`augment`, 0, `flip`] -> `data.augment[0].flip`."""
    text = prefix
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _valid_keys(root: Any, parts: list[Any], raw: Any) -> list[str]:
    """Field names of the section at `parts`, following the data through registry picks."""
    annotation, node = root, raw
    for part in parts:
        annotation, node = _step(annotation, part, node)
    section = _section_class(annotation, node)
    return list(section.model_fields) if section is not None else []


def _step(annotation: Any, part: Any, node: Any) -> tuple[Any, Any]:
    """The annotation and data one location part further in."""
    marker = _marker(annotation)
    if isinstance(marker, OneKeyEntry):  # `{name: {params}}`: the part is the entry's name
        entry = marker.registry.get(part) if part in marker.registry else None
        return entry, _child(node, part)
    section = _section_class(annotation, node)
    if section is not None:
        field = section.model_fields.get(str(part))
        if field is None:
            return None, None
        inner = field.annotation
        if field.metadata:
            annotated_args = (inner, *field.metadata)
            inner = cast(Any, Annotated)[annotated_args]
        return inner, _child(node, part)
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], _child(node, part)
    return None, None


def _section_class(annotation: Any, node: Any) -> type[BaseModel] | None:
    marker = _marker(annotation)
    if isinstance(marker, PickedBy):
        base = typing.get_args(annotation)[0]
        name = node.get(marker.key) if isinstance(node, dict) else None
        name = name if name is not None else base.model_fields[marker.key].default
        return marker.registry.get(name) if name in marker.registry else base
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _marker(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        for extra in annotation.__metadata__:
            if isinstance(extra, PickedBy | OneKeyEntry):
                return extra
    return None


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None
