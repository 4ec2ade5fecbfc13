"""What a gateway handler may use, and how handlers are collected.

Most client messages are routed by the kinds' channel specs (``serve.channel_routes``). The
rest are written by hand against ``Gateway``, the few things of the gateway a handler needs
(entity handles, the Postgres pool, following topics), so a test can stand one up in a few
lines. A handler gets the gateway, the socket and the checked frame; it returns the ``ack``
content, or None when it answered itself (``subscribe`` sends its ack before the replay).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from actors.channels import gateway_payload
from actors.messages import Message
from rthub.config import Settings

if TYPE_CHECKING:
    import asyncpg

    from actors.recommend import Recommendations
    from fanout.streams import Position
    from serve.auth import Identity
    from storage.crypto import Keyring


class Asker(Protocol):
    """An entity's handle (``actors.client.EntityRef``)."""

    async def ask(self, message: Message | str, content: dict[str, Any] | None = None
                  ) -> dict[str, Any]: ...

    def tell(self, message: Message | str, content: dict[str, Any] | None = None) -> None: ...


class Socket(Protocol):
    """One client connection as a handler sees it (``serve.connection.Connection``)."""

    id: str
    ip: str
    identity: Identity
    positions: dict[str, list[Any]]  # topic -> [epoch, last seq sent, last seq confirmed]

    def send(self, envelope: dict[str, Any]) -> None: ...

    def confirm(self) -> None: ...


class Gateway(Protocol):
    """What handlers use of a gateway replica (``serve.gateway.GatewayCore``)."""

    settings: Settings
    keyring: Keyring
    recommendations: Recommendations

    def ref(self, kind: str, ident: str, tenant: str) -> Asker: ...

    async def db(self) -> asyncpg.Pool: ...

    async def follow(self, conn: Any, topic: str, since: tuple[str, int] | None,
                     frame_id: Any, answer: bool = True, record: bool = True) -> Position: ...

    def reauthorize(self, conn: Any, token: str) -> int: ...

    async def unfollow(self, conn: Any, topic: str) -> None: ...

    def replied(self, message_type: str, reply: dict[str, Any]) -> None: ...


Handler = Callable[[Gateway, Socket, dict[str, Any]], Awaitable[dict | None]]


@dataclass
class Routes:
    """Handlers by message type, collected by a module and handed to the router."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    pipelined: set[str] = field(default_factory=set)

    def handles(self, message_type: str, pipelined: bool = False
                ) -> Callable[[Handler], Handler]:
        """Register the handler of ``message_type``.

        ``pipelined``: the handler's whole effect is the one entity message it sends (checks
        before it, only the reply after it), so the socket's next frame for that entity may
        start as soon as the message is queued; the entity still handles them in order.
        """
        def register(fn: Handler) -> Handler:
            self.add(message_type, fn, pipelined)
            return fn

        return register

    def add(self, message_type: str, handler: Handler, pipelined: bool = False) -> None:
        if message_type in self.handlers:
            raise ValueError(f"two handlers for {message_type!r}")
        self.handlers[message_type] = handler
        if pipelined:
            self.pipelined.add(message_type)


def payload(message: type[Message], conn: Socket, content: dict[str, Any],
            drop: str = "") -> Message:
    """``message`` from the client's ``content`` with what only the gateway knows filled in
    (``actors.channels.gateway_payload``)."""
    return gateway_payload(message, content, drop, conn.identity.user, conn.id, conn.ip)


async def follow_topic(gw: Gateway, conn: Socket, topic: str) -> dict[str, Any]:
    """Follow ``topic`` for the socket (a create, join or open does it) and say where its
    stream is, for the reply. A socket that follows it already keeps its place (a join
    again, a client reloading a party): following anew would skip the events in flight."""
    if (followed := conn.positions.get(topic)) is not None:
        return {"topic": topic, "epoch": followed[0], "seq": followed[1]}
    position = await gw.follow(conn, topic, None, None, answer=False)
    return {"topic": topic, "epoch": position.epoch, "seq": position.seq}
