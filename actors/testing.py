"""A test harness for entity kinds: entities run in-process the way the runtime runs them.

``Sandbox.run`` decodes a message, runs its handler, and applies the events it recorded, as
a host's turn does (without storage, Redis or Ray); the clock moves only when a test moves
it. ``Sandbox.ref`` gives an ``ask``-able handle, so gateway routes can be tested against real
kinds with no Serve either. ``assert_broadcast`` checks what a handler published.
"""

from __future__ import annotations

import contextlib
from typing import Any

from actors.context import Broadcast, Context, EntityKey
from actors.entity import Entity
from actors.kinds import KINDS
from actors.messages import Message
from rthub import config
from rthub.config import Settings
from rthub.errors import HubError


class Sandbox:
    """Entities of every kind by key, a clock in milliseconds, and every context run."""

    def __init__(self, settings: Settings | None = None, now_ms: int = 1_000_000) -> None:
        self.settings = settings or config.load({})
        self.now_ms = now_ms
        self.entities: dict[EntityKey, Entity] = {}
        self.runs: list[Context] = []

    def entity(self, kind: str, ident: str, tenant: str = "t") -> Entity:
        key = (tenant, kind, ident)
        found = self.entities.get(key)
        if found is None:
            found = self.entities[key] = KINDS[kind](key)
        return found

    def run(self, entity: Entity, message: Message | str, **payload: Any) -> Context:
        """One message, as a turn runs it: handle, then apply the events (a handler that
        raises leaves the state as it was)."""
        ctx = Context(entity.key, self.now_ms, self.settings)
        if isinstance(message, Message):
            entity.handle(message.type, message, ctx)
        else:
            entity.handle(message, payload, ctx)
        for event in ctx.events:
            entity.apply(event)
        self.runs.append(ctx)
        return ctx

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    def ref(self, kind: str, ident: str, tenant: str) -> SandboxRef:
        return SandboxRef(self, self.entity(kind, ident, tenant))

    def published(self, topic: str | None = None) -> list[Broadcast]:
        """Everything published so far, oldest first (optionally on one topic)."""
        return [b for ctx in self.runs for b in ctx.broadcasts
                if topic is None or b.topic == topic]


class SandboxRef:
    """What ``actors.client.EntityRef`` offers, run in the sandbox."""

    def __init__(self, sandbox: Sandbox, entity: Entity) -> None:
        self.sandbox = sandbox
        self.entity = entity

    async def ask(self, message: Message | str, content: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        ctx = self.sandbox.run(self.entity, message, **(content or {}))
        return ctx.reply_content or {}

    def tell(self, message: Message | str, content: dict[str, Any] | None = None) -> None:
        with contextlib.suppress(HubError):  # a tell has no one to answer
            self.sandbox.run(self.entity, message, **(content or {}))


def assert_broadcast(ctx: Context, event_type: str, seq: int | None = None,
                     **content: Any) -> Broadcast:
    """The one broadcast of ``event_type`` in ``ctx``, with ``content`` among its fields
    (and ``seq`` when given); fails naming what was published instead."""
    found = [b for b in ctx.broadcasts if b.type == event_type]
    published = [(b.type, b.seq) for b in ctx.broadcasts]
    assert len(found) == 1, f"expected one {event_type!r}, published {published}"
    (broadcast,) = found
    if seq is not None:
        assert broadcast.seq == seq, f"{event_type!r} has seq {broadcast.seq}, not {seq}"
    wrong = {k: broadcast.content.get(k) for k, v in content.items()
             if broadcast.content.get(k) != v}
    assert not wrong, f"{event_type!r} has {wrong}, expected {content}"
    return broadcast
