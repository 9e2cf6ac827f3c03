"""The building blocks of every recipe section, and fields whose choices come from registries.

Stages declare their own sections (`data/spec.py`, `models/spec.py`, `training/spec.py`, ...)
from `Section`; `emotionkit.recipe` only assembles them. Three field types read a registry at
validation and JSON-Schema time rather than a `Literal` fixed when the class was defined:

- `NameIn(registry)`: a string that must be a registered name (`train.loss.name`);
- `PickedBy(registry, key)`: a section whose class the registry picks by its `key` field
  (`model` by `name`, `data.source` by `kind`), so each choice has its own typed fields;
- `OneKeyEntry(registry)`: a `{name: {params}}` mapping validated by the class registered as
  `name` (`data.augment` entries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from emotionkit.registry import Registry

SectionT = TypeVar("SectionT", bound=BaseModel)


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def reject_unused(section: BaseModel, name: str, where: str, used_by: dict[str, set[str]]) -> None:
    """Refuse an option set to a non-default value for a `name` that ignores it.

    A silently ignored `gamma` or `milestones` is a recipe that does not do what it says.
    Fields left out, or set to their default (`label_smoothing: 0.0`), are fine.
    """
    fields = type(section).model_fields
    for field, names in used_by.items():
        if name in names or field not in section.model_fields_set:
            continue
        if getattr(section, field) != fields[field].get_default(call_default_factory=True):
            raise ValueError(
                f"{where}.{field} applies to {where}.name {' or '.join(sorted(names))}, not "
                f"{name}: remove it or change {where}.name"
            )


def register_section(
    registry: Registry[Any], key: str
) -> Callable[[type[SectionT]], type[SectionT]]:
    """Class decorator: register a section under the default of its `key` field.

    The name is written once, as the class's `Literal` key (`name: Literal["resnet"] =
    "resnet"`), the way timm keys a model by its factory's name.
    """

    def add(cls: type[SectionT]) -> type[SectionT]:
        registry.add(str(cls.model_fields[key].default), cls)
        return cls

    return add


def _unknown(registry: Registry[Any], loc: tuple[str | int, ...], name: object) -> Exception:
    """A pydantic error at `loc` (inside the field) whose message lists the registry."""
    message = registry.unknown_name_message(name)
    error = PydanticCustomError("unknown_name", message)
    details: list[InitErrorDetails] = [{"type": error, "loc": loc, "input": name}]
    return PydanticValidationError.from_exception_data("unknown name", details)


def _prefixed(error: PydanticValidationError, prefix: str) -> PydanticValidationError:
    """The same errors with `prefix` in front of their locations."""
    details: list[InitErrorDetails] = []
    for item in error.errors():
        detail: InitErrorDetails = {
            "type": item["type"],
            "loc": (prefix, *item["loc"]),
            "input": item["input"],
        }
        if "ctx" in item:
            detail["ctx"] = item["ctx"]
        if item["type"] == "value_error":  # keep the validator's own message
            detail["type"] = PydanticCustomError("value_error", str(item["msg"]))
            detail.pop("ctx", None)
        details.append(detail)
    return PydanticValidationError.from_exception_data(error.title, details)


def _members_schema(registry: Registry[Any], handler: GetJsonSchemaHandler) -> list[Any]:
    return [handler(cls.__pydantic_core_schema__) for _, cls in registry.items()]


@dataclass(frozen=True)
class NameIn:
    """`Annotated[str, NameIn(LOSSES)]`: one of the names registered when validating."""

    registry: Registry[Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, name: str) -> str:
        if name not in self.registry:
            raise PydanticCustomError("unknown_name", self.registry.unknown_name_message(name))
        return name

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return {**handler(schema), "enum": self.registry.names()}


@dataclass(frozen=True)
class PickedBy:
    """`Annotated[ModelSpec, PickedBy(MODELS, "name")]`: the registered class named by `key`.

    A mapping without `key` takes the base class's default for it (`model: {depth: 34}` is a
    ResNet). Errors inside the chosen class keep their locations (`model.depth`).
    """

    registry: Registry[Any]
    key: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        schema: dict[str, Any] = dict(handler(source))
        # Dump the chosen class's own fields, not only the base class's.
        schema["serialization"] = core_schema.wrap_serializer_function_ser_schema(
            lambda value, serialize: serialize(value), schema=core_schema.any_schema()
        )
        default = source.model_fields[self.key].default if self.key in source.model_fields else None
        return core_schema.no_info_before_validator_function(
            lambda value: self._pick(value, default), schema
        )

    def _pick(self, value: Any, default: Any) -> Any:
        if not isinstance(value, dict):
            return value  # an instance passes; anything else fails the base class's check
        name = value.get(self.key, default)
        if name is None:
            return value  # the base class reports the missing key
        if name not in self.registry:
            raise _unknown(self.registry, (self.key,), name)
        return self.registry.get(name).model_validate(value)

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return {"oneOf": _members_schema(self.registry, handler)}


class RegisteredEntry(Section):
    """Base of `{name: {params}}` entries: dumps back to that form."""

    entry_name: ClassVar[str] = ""

    def as_entry(self) -> dict[str, dict[str, Any]]:
        """`{name: {params}}` as the recipe writes it (JSON-compatible values)."""
        return {self.entry_name: self.model_dump(mode="json")}


def register_entry(
    registry: Registry[Any], name: str
) -> Callable[[type[SectionT]], type[SectionT]]:
    """Class decorator: register a `{name: {params}}` entry class under `name`."""

    def add(cls: type[SectionT]) -> type[SectionT]:
        cls.entry_name = name  # type: ignore[attr-defined]
        registry.add(name, cls)
        return cls

    return add


@dataclass(frozen=True)
class OneKeyEntry:
    """`Annotated[RegisteredEntry, OneKeyEntry(AUGMENTATIONS)]`: `{name: {params}}`.

    The entry validates as the class registered under `name` (an unknown name or parameter
    is an error naming it, with the closest match) and dumps back to `{name: {params}}`.
    """

    registry: Registry[Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(
            self._pick,
            handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda entry: entry.as_entry()
            ),
        )

    def _pick(self, value: Any) -> Any:
        if isinstance(value, RegisteredEntry):
            return value
        if isinstance(value, str):
            value = {value: {}}  # `- flip` as shorthand for `- flip: {}`
        if not isinstance(value, dict) or len(value) != 1:
            raise PydanticCustomError(
                "one_key_entry", "must be one `{name: {params}}` mapping, e.g. {flip: {p: 0.5}}"
            )
        ((name, params),) = value.items()
        if name not in self.registry:
            raise _unknown(self.registry, (), name)
        try:
            return self.registry.get(name).model_validate(params or {})
        except PydanticValidationError as error:
            raise _prefixed(error, name) from None

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        entries = [
            {
                "type": "object",
                "properties": {name: handler(cls.__pydantic_core_schema__)},
                "required": [name],
                "additionalProperties": False,
            }
            for name, cls in self.registry.items()
        ]
        return {"oneOf": entries}
