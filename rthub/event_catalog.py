"""The events other services consume: four families, a typed and versioned schema per type.

The hub exports, per tenant and family, a Redis stream (``fanout.exports`` writes it, the SDK's
``client.events`` reads it). Every entry has the same fields:

* ``type`` ``<family>.<name>`` (``music.skip``), ``v`` its schema version;
* ``id`` unique per event and stable across a republish (``<topic>#<seq>`` for an event of a
  topic's stream): a consumer that must never act twice keys on it;
* ``tenant``, ``topic`` (``""`` when none), ``seq`` (``""`` for ephemeral events), ``ts`` (ms);
* ``data`` a JSON object with the fields of the type's schema.

Upgrade rule: consumers ignore fields they do not know, so adding a field keeps the version.
Removing, renaming or retyping one makes a new version, and the catalog gets an upcaster from
the old version (``UPCASTERS``): ``parse`` hands a consumer every event at the newest version,
including entries written before the upgrade that are still in the stream. A version is never
reused.

This module is shared by the hub and the SDK: it imports nothing of either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FAMILIES = ("music", "chat", "collaboration", "system")

_PYTHON = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
           "object": (dict,), "array": (list,), "any": (object,)}


@dataclass(frozen=True, slots=True)
class Schema:
    """One event type: its version and required fields (``"string?"``: may be null)."""

    type: str
    version: int
    fields: Mapping[str, str]
    doc: str

    @property
    def family(self) -> str:
        return self.type.partition(".")[0]


_PLAYBACK = {"party": "string", "by": "string", "track": "any", "item_id": "string?",
             "position_ms": "integer", "playing": "boolean", "volume": "integer",
             "at_server_ms": "integer"}
_EDIT = {"playlist": "string", "version": "integer", "author": "string"}


def _schemas(*schemas: Schema) -> dict[str, Schema]:
    return {schema.type: schema for schema in schemas}


SCHEMAS: dict[str, Schema] = _schemas(
    Schema("music.play", 1, _PLAYBACK, "a party starts or resumes playing"),
    Schema("music.pause", 1, _PLAYBACK, "a party pauses"),
    Schema("music.skip", 1, {**_PLAYBACK, "skipped": "any", "skipped_at_ms": "integer"},
           "a party skips to the next track; ``skipped`` and how far it had played"),
    Schema("music.seek", 1, _PLAYBACK, "a party seeks within the track"),
    Schema("music.volume_change", 1, _PLAYBACK, "a party's volume changes"),
    Schema("chat.message", 1, {"room": "string", "message_id": "string", "sender": "string",
                               "text": "string", "attachments": "array"},
           "a message posted in a room (after moderation)"),
    Schema("chat.typing", 1, {"room": "string", "user": "string", "typing": "boolean"},
           "a user starts or stops typing (ephemeral)"),
    Schema("chat.read_receipt", 1, {"room": "string", "user": "string", "seq": "integer"},
           "a user has read a room up to a message's seq"),
    Schema("chat.presence", 1, {"user": "string", "name": "string", "status": "string"},
           "a user comes online in a room or party (``join``) or leaves it (ephemeral)"),
    Schema("collaboration.add", 1, {**_EDIT, "item_id": "string", "index": "integer",
                                    "track": "any"}, "a track added to a playlist"),
    Schema("collaboration.remove", 1, {**_EDIT, "item_id": "string"},
           "a track removed from a playlist"),
    Schema("collaboration.reorder", 1, {**_EDIT, "item_id": "string", "to_index": "integer"},
           "a track moved within a playlist"),
    Schema("collaboration.edit", 1, {**_EDIT, "items": "array"},
           "a playlist's whole list replaced (a revert)"),
    Schema("collaboration.share", 1, {"playlist": "string", "user": "string",
                                      "role": "string"},
           "a playlist shared with a user, or the user's role changed"),
    Schema("system.connect", 1, {"user": "string", "session_id": "string",
                                 "gateway": "string", "resumed": "boolean"},
           "a socket opened (or resumed)"),
    Schema("system.disconnect", 1, {"user": "string", "session_id": "string",
                                    "gateway": "string", "code": "integer",
                                    "duration_ms": "integer"},
           "a socket closed, with its close code and how long it was open"),
    Schema("system.error", 1, {"user": "string", "code": "string", "message": "string",
                               "request": "string"},
           "a request answered with an error (``internal``, ``unavailable``: the hub's)"),
    Schema("system.maintenance", 1, {"message": "string", "at": "string",
                                     "duration_s": "integer?"},
           "ops announced maintenance to every connected client of the tenant"),
)

# (type, from version) -> the data at version + 1. Empty while every type is at version 1.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class SchemaError(ValueError):
    """An entry that does not match its type's schema (or names no known type)."""


def check(event_type: str, data: Mapping[str, Any]) -> None:
    """``SchemaError`` naming every field of ``data`` missing or of the wrong type."""
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise SchemaError(f"unknown event type {event_type!r}")
    wrong = []
    for name, kind in schema.fields.items():
        nullable = kind.endswith("?")
        value = data.get(name)
        if value is None:
            if not (nullable and name in data) and kind != "any":
                wrong.append(f"{name}: missing")
            continue
        expected = _PYTHON[kind.rstrip("?")]
        if not isinstance(value, expected) or (isinstance(value, bool)
                                                 and bool not in expected):
            wrong.append(f"{name}: expected {kind}, got {type(value).__name__}")
    if wrong:
        raise SchemaError(f"{event_type} v{schema.version}: " + "; ".join(wrong))


@dataclass(frozen=True, slots=True)
class Exported:
    """One entry of a family's stream, at its type's newest version."""

    entry_id: str  # the stream's id (what XACK takes)
    type: str
    version: int
    id: str
    tenant: str
    topic: str
    seq: int | None
    ts_ms: int
    data: dict[str, Any]

    @property
    def family(self) -> str:
        return self.type.partition(".")[0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(entry_id: Any, raw: Mapping[Any, Any]) -> Exported:
    """A stream entry as an ``Exported`` event: upcast to its newest version and checked."""
    entry = {_text(k): _text(v) for k, v in raw.items()}
    try:
        event_type, version = entry["type"], int(entry["v"])
        data = json.loads(entry["data"])
    except (KeyError, ValueError) as err:
        raise SchemaError(f"entry {_text(entry_id)} is not an exported event: {err!r}") from err
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise SchemaError(f"unknown event type {event_type!r}")
    while version < schema.version:
        upcast = UPCASTERS.get((event_type, version))
        if upcast is None:
            raise SchemaError(f"{event_type} v{version} has no upcaster to v{version + 1}")
        data, version = upcast(data), version + 1
    if version > schema.version:
        raise SchemaError(f"{event_type} v{version} is newer than this catalog "
                          f"(v{schema.version}): upgrade the SDK")
    check(event_type, data)
    seq = entry.get("seq", "")
    return Exported(_text(entry_id), event_type, version, entry.get("id", ""),
                    entry.get("tenant", ""), entry.get("topic", ""),
                    int(seq) if seq else None, int(entry.get("ts", "0")), data)
