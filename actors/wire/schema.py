"""Checking received maps against the type annotations that define them (dataclasses, TypedDicts)."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from actors.wire.codec import WireError

__all__ = ["Field", "accepted", "check_fields", "field", "typed_dict_fields"]

Field = tuple[str, tuple[type, ...], bool, frozenset[Any] | None]
"""(name, the runtime types accepted, required, the values allowed: a Literal's, or None for any)."""


def field(name: str, hint: Any, required: bool) -> Field:
    return name, accepted(hint), required, _literal_values(hint)


def _literal_values(hint: Any) -> frozenset[Any] | None:
    """The values a Literal annotation (or a union of Literals and None) allows; None: any."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return frozenset(typing.get_args(hint))
    if origin in (Union, types.UnionType):
        parts = [_literal_values(arg) if arg is not type(None) else frozenset({None}) for arg in typing.get_args(hint)]
        if all(part is not None for part in parts):
            return frozenset().union(*(part for part in parts if part is not None))
    return None


def accepted(hint: Any) -> tuple[type, ...]:
    """The runtime types an annotation accepts (`object`: anything msgpack carries); shallow:
    `dict[str, int]` accepts any dict."""
    if hint is Any:
        return (object,)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return tuple({type(value) for value in typing.get_args(hint)})
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
    """A (total) TypedDict's fields; a `NotRequired[...]` one is optional. (Read from the
    annotations: with postponed annotations `__required_keys__` lists every key.)"""
    fields = []
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        optional = typing.get_origin(hint) is typing.NotRequired
        fields.append(field(name, typing.get_args(hint)[0] if optional else hint, not optional))
    return fields


def check_fields(what: str, fields: list[Field], data: dict[Any, Any], skip: str | None = None,
                 allow_unknown: bool = False) -> dict[str, Any]:
    """The members of `data`, checked against `fields` (none missing, none unknown unless
    `allow_unknown`, each of an accepted type); `skip`: a member that is not a field (a
    message's `type`)."""
    values = {}
    for name, kinds, required, allowed in fields:
        if name not in data:
            if required:
                raise WireError(f"{what}: missing member {name!r}")
            continue
        value = data[name]
        if (isinstance(value, bool) and bool not in kinds and object not in kinds) or not isinstance(value, kinds):
            raise WireError(f"{what}: member {name!r} has the wrong type")
        if allowed is not None and value not in allowed:
            raise WireError(f"{what}: member {name!r} may not be {value!r}")
        values[name] = value
    if not allow_unknown and len(values) + (skip in data) != len(data):
        unknown = sorted(str(key) for key in data if key != skip and key not in values)
        raise WireError(f"{what}: unknown member(s) {', '.join(unknown)}")
    return values
