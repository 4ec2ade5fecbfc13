"""Which handler a client message goes to, and what it must stay in order with."""

from __future__ import annotations

from typing import Any

from actors.channels import CHANNELS
from rthub.errors import BadRequest
from serve.handlers import Gateway, Routes, Socket

# the gateway's own: no order to keep, never shed (a refresh refused would close the socket)
IMMEDIATE = frozenset({"ping", "pong", "time.ping", "session.refresh"})
# Not gated by admission control: they change the socket's own following in several steps
# (a refusal half-way would leave it half-changed), and cost the hosts one tell each.
UNGATED = IMMEDIATE | {"subscribe", "unsubscribe"}


class Router:
    """Every route of a gateway, from the modules that declare them (no import side effects:
    the gateway names them)."""

    def __init__(self, *tables: Routes) -> None:
        self.handlers: dict[str, Any] = {}
        pipelined: set[str] = set()
        for table in tables:
            for message_type, handler in table.handlers.items():
                if message_type in self.handlers:
                    raise ValueError(f"two handlers for {message_type!r}")
                self.handlers[message_type] = handler
            pipelined |= table.pipelined
        self.pipelined = frozenset(pipelined)
        # (content field, topic prefix): ``room`` names room:<id>, ``room_id`` a new one
        self._fields = [(c.id_field, c.prefix) for c in CHANNELS.values() if not c.own]
        self._fields += [(f"{field}_id", prefix) for field, prefix in list(self._fields)]

    def lane(self, frame: dict[str, Any]) -> str | None:
        """What a frame must stay in order with: its entity's topic (``room:<id>`` ...), or
        ``""`` for the socket's other requests; None for the gateway's own frames."""
        if frame["type"] in IMMEDIATE:
            return None
        content = frame["content"]
        for field, prefix in self._fields:
            if isinstance(ident := content.get(field), str):
                return f"{prefix}:{ident}"
        topic = content.get("topic", frame.get("topic"))
        return topic if isinstance(topic, str) else ""

    async def dispatch(self, gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict | None:
        handler = self.handlers.get(frame["type"])
        if handler is None:
            raise BadRequest(f"unknown message type {frame['type']!r}")
        return await handler(gw, conn, frame)
