"""Typed messages and events: frozen dataclasses decoded from untrusted payloads.

Every payload that reaches a handler came from a client. ``Message.decode`` checks field names
and types before dispatch, so a handler only ever sees a well-formed message, and a malformed
one becomes ``bad_request`` naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from rthub.errors import BadRequest

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _check(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits ``hint`` (plain types, unions, list[...], dict[...])."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_check(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_check(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(
            _check(k, key) and _check(v, item) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


@functools.cache
def field_specs(cls: type) -> dict[str, dataclasses.Field]:
    """A dataclass's fields by name, read once per class (``dataclasses.fields`` builds a new
    tuple on every call, which showed in a busy host's profile)."""
    return {f.name: f for f in dataclasses.fields(cls)}


def request_key(*parts: Any) -> str:
    """An idempotency key from its parts (an applier rebuilds it from an event's fields)."""
    return "\x1f".join(map(str, parts))


@functools.cache
def _gateway_fields(cls: type) -> frozenset[str]:
    return frozenset(field_specs(cls)) & {"user", "device", "ip"}


class _Record:
    """Shared decode/encode for messages and events (plain-data dataclasses)."""

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> Self:
        """Build the record from a mapping, rejecting unknown, missing or mistyped fields."""
        if not isinstance(payload, Mapping):
            raise BadRequest(f"{cls.__name__}: content must be an object")
        fields = field_specs(cls)
        unknown = set(payload) - set(fields)
        if unknown:
            first = min(unknown, key=repr)  # msgpack keys may be str or bytes
            raise BadRequest(f"{cls.__name__}: unknown field {cls._named(first)!r}")
        hints = _hints(cls)
        for name, spec in fields.items():
            if name not in payload:
                required = (spec.default is dataclasses.MISSING
                            and spec.default_factory is dataclasses.MISSING)
                if required:
                    raise BadRequest(f"{cls.__name__}: missing field {cls._named(name)!r}")
                continue
            if not _check(payload[name], hints[name]):
                raise BadRequest(f"{cls.__name__}: field {cls._named(name)!r} has the wrong type")
        return cls(**payload)

    @classmethod
    def _named(cls, field: str) -> str:
        """A field as its sender calls it (see ``Message.wire``)."""
        return field

    def encode(self) -> dict[str, Any]:
        """The record as a plain dict (msgpack-ready)."""
        return {name: getattr(self, name) for name in field_specs(type(self))}


class Message(_Record):
    """A client or system request to an entity; ``type`` is its wire name.

    ``wire`` maps a client's field name to the message's where they differ (a client names
    the member to kick ``user``; the message calls it ``target``, ``user`` being the sender).
    ``from_wire`` adapts a client's payload before it is decoded (override when a client's
    ``null`` means something a field cannot say). ``idempotent`` names the fields that make
    one request: a resend of it gets the answer remembered for it (``Entity.remember``) and
    runs nothing.
    """

    type: ClassVar[str]
    wire: ClassVar[dict[str, str]] = {}
    idempotent: ClassVar[tuple[str, ...]] = ()  # fields naming one request: a resend's key

    def request_key(self) -> str:
        """The idempotency key of this request (``idempotent`` names its fields)."""
        return request_key(*(getattr(self, name) for name in self.idempotent))

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    @classmethod
    def _named(cls, field: str) -> str:
        return next((wire for wire, name in cls.wire.items() if name == field), field)

    @classmethod
    def gateway_fields(cls) -> frozenset[str]:
        """Which of ``user``, ``device``, ``ip`` the message takes (the gateway fills them)."""
        return _gateway_fields(cls)


class Event(_Record):
    """A state change. Durable ones are appended to the entity log before anyone hears of them.

    * ``durable = False``: applied to the live state only (typing, presence): never logged,
      never checkpointed, lost on restart on purpose.
    * ``private``: fields kept out of the log (message text). The log is append-only; what a
      delete, a retention purge or a key rotation must be able to rewrite lives only in a
      projection, where storage encrypts it. Such fields need defaults: replay sees them empty.
    * ``projections()``: rows for query tables (chat messages, members, the audit log),
      written by storage in the same transaction as the log row, so readers of those tables
      never see a change the log does not hold.
    """

    durable: ClassVar[bool] = True
    private: ClassVar[tuple[str, ...]] = ()

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        """(projector name, row) pairs for storage; none by default."""
        return []

    def logged(self) -> dict[str, Any]:
        """The log payload: every field but the private ones."""
        payload = self.encode()
        for name in self.private:
            payload.pop(name, None)
        return payload


@dataclasses.dataclass(frozen=True, slots=True)
class ToMember(Message):
    """A request about another member (invite, kick, hand over, share): the sender is
    ``user`` (the token's), and the client names the member it is about ``user`` too, which
    the message calls ``target``."""

    wire: ClassVar[dict[str, str]] = {"user": "target"}
    user: str
    target: str
