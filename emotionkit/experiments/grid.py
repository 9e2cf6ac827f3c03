"""Hydra-style multirun overrides: `key=a,b` sweeps a key over values, a grid over keys.

Only top-level commas separate values: a comma inside brackets, braces, parentheses or quotes
belongs to one YAML value, so `model.stage_blocks=[1,1,1,1],[2,2,2,2]` is two values and
`data.source={kind: synthetic, train_size: 140}` is one. A value is never parsed here: each
grid point is a list of plain `key=value` overrides for `load_recipe`, which parses the
values as YAML and names the key of any that does not validate.

Example:
    >>> expand_grid(["train.epochs=2", "model.width=0.125,0.25", "data.image_size=32,48"])
    ... # doctest: +NORMALIZE_WHITESPACE
    [['train.epochs=2', 'model.width=0.125', 'data.image_size=32'],
     ['train.epochs=2', 'model.width=0.125', 'data.image_size=48'],
     ['train.epochs=2', 'model.width=0.25', 'data.image_size=32'],
     ['train.epochs=2', 'model.width=0.25', 'data.image_size=48']]
"""

from __future__ import annotations

import itertools

from emotionkit.errors import RecipeError

_CLOSING = {"[": "]", "{": "}", "(": ")"}
_BEFORE_QUOTE = set(",[{( :")
"""A quote opens a YAML string only at the start of a value: after these (as YAML reads it)."""


def split_values(text: str) -> list[str]:
    """`a,b` -> `["a", "b"]`, splitting only at commas outside brackets and quotes.

    Raises:
        RecipeError: unbalanced brackets or an unclosed quote, or an empty value (`a,,b`).
    """
    values: list[str] = []
    current: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    previous = ","
    for char in text:
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"" and previous in _BEFORE_QUOTE:  # `it's` is no quote
            quote = char
        elif char in _CLOSING:
            stack.append(_CLOSING[char])
        elif char in _CLOSING.values():
            if not stack or stack.pop() != char:
                raise RecipeError(f"Sweep value {text!r}: unbalanced {char!r}.")
        elif char == "," and not stack:
            values.append("".join(current))
            current, previous = [], char
            continue
        current.append(char)
        previous = char
    if quote is not None or stack:
        raise RecipeError(f"Sweep value {text!r}: unclosed {quote or stack[-1]!r}.")
    values.append("".join(current))
    if len(values) > 1 and any(not value.strip() for value in values):
        raise RecipeError(f"Sweep value {text!r}: an empty value between commas.")
    return values


def sweep_axes(overrides: list[str]) -> list[tuple[str, list[str]]]:
    """Each override's key and its values (one value: a fixed key), in the order the keys
    first appear; a key given twice takes its last values, as in `emotionkit train`.

    Raises:
        RecipeError: an override not of the form `key=value`.
    """
    axes: dict[str, list[str]] = {}
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise RecipeError(
                f"Override {override!r} is not of the form dotted.key=value (e.g. "
                "train.epochs=3, or model.width=0.25,0.5 to sweep)."
            )
        axes[key] = split_values(text)
    return list(axes.items())


def expand_grid(overrides: list[str]) -> list[list[str]]:
    """Every combination of the overrides' values (the last key varies fastest)."""
    axes = sweep_axes(overrides)
    columns = [[f"{key}={value}" for value in values] for key, values in axes]
    return [list(point) for point in itertools.product(*columns)]


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys given more than one value."""
    return [key for key, values in sweep_axes(overrides) if len(values) > 1]
