"""Checking received maps against the type annotations that define them (dataclasses, TypedDicts)."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from actors.wire.codec import WireError

__all__ = ["Field", "accepted", "check_fields", "typed_dict_fields"]

Field = tuple[str, tuple[type, ...], bool]
"""(name, the runtime types accepted, required)."""


def accepted(hint: Any) -> tuple[type, ...]:
    """The runtime types an annotation accepts (`object`: anything msgpack carries); shallow:
    `dict[str, int]` accepts any dict."""
    if hint is Any:
        return (object,)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return tuple(kind for arg in typing.get_args(hint) for kind in accepted(arg))
    if hint is float:
        return (float, int)
    if hint is None or hint is type(None):
        return (type(None),)
    if origin is tuple:
        return (list, tuple)  # msgpack has arrays only
    return (origin or hint,)


def typed_dict_fields(cls: type) -> list[Field]:
    hints = typing.get_type_hints(cls)
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    return [(name, accepted(hint), name in required) for name, hint in hints.items()]


def check_fields(what: str, fields: list[Field], data: dict[Any, Any], skip: str | None = None) -> dict[str, Any]:
    """The members of `data`, checked against `fields` (none missing, none unknown, each of an
    accepted type); `skip`: a member that is not a field (a message's `type`)."""
    values = {}
    for name, kinds, required in fields:
        if name not in data:
            if required:
                raise WireError(f"{what}: missing member {name!r}")
            continue
        value = data[name]
        if (isinstance(value, bool) and bool not in kinds and object not in kinds) or not isinstance(value, kinds):
            raise WireError(f"{what}: member {name!r} has the wrong type")
        values[name] = value
    if len(values) + (skip in data) != len(data):
        unknown = sorted(str(key) for key in data if key != skip and key not in values)
        raise WireError(f"{what}: unknown member(s) {', '.join(unknown)}")
    return values
