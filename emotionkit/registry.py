"""Registries: the one list of names for each kind of component (models, sources, ...).

A registry maps a recipe name to what builds it. The recipe's schema reads its choices from
the registries when it validates or writes the JSON Schema, so registering a component in one
file (a model, a loss, a source, an augmentation op) is all it takes to use it in a recipe:
no `Literal` of names, no second list to keep in step.

Example:
    >>> LOSSES = Registry("loss", "train.loss.name")
    >>> @LOSSES.register("zero")
    ... def zero_loss(spec, alpha): ...
    >>> LOSSES.names()
    ['zero']
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from emotionkit.errors import RecipeError

EntryT = TypeVar("EntryT")


class Registry(Generic[EntryT]):
    """Names -> entries of one kind, listed in name order (never in import order).

    Args:
        kind: what an entry is, for messages (`model`, `loss`, `augmentation`).
        recipe_key: the recipe field that names an entry (`model.name`), for messages.
    """

    def __init__(self, kind: str, recipe_key: str) -> None:
        self.kind = kind
        self.recipe_key = recipe_key
        self._entries: dict[str, EntryT] = {}

    def add(self, name: str, entry: EntryT) -> EntryT:
        """Register `entry` under `name`; a name already taken by another entry is an error."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[EntryT], EntryT]:
        """Decorator form of `add`: `@LOSSES.register("focal")` on the factory."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> None:
        """Forget `name` (tests that register a toy component clean up with it)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> EntryT:
        """The entry registered as `name`.

        Raises:
            RecipeError: an unknown name, with the closest registered one and all of them.
        """
        if name not in self._entries:
            raise RecipeError(f"{self.recipe_key}: {self.unknown_name_message(name)}")
        return self._entries[name]

    def unknown_name_message(self, name: object) -> str:
        """`unknown model 'resnt'. Did you mean 'resnet'? Registered: resnet, ...`."""
        close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, EntryT]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
