"""What each client message type does at the gateway: one handler per type.

A handler gets the gateway, the connection and the checked frame; it returns the ``ack``
content, or None when it answered itself (``subscribe`` sends its ack before the replay).
The user on every entity message comes from the token, never from the client's content.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rthub.errors import BadRequest

if TYPE_CHECKING:
    from serve.connection import Connection
    from serve.gateway import GatewayCore

Handler = Callable[["GatewayCore", "Connection", dict[str, Any]], Awaitable[dict | None]]
HANDLERS: dict[str, Handler] = {}
PIPELINED: set[str] = set()  # types whose next frame for the same entity need not wait
IMMEDIATE = frozenset({"ping", "pong", "time.ping"})  # the gateway's own: no order to keep
# Not gated by admission control: they change the socket's own following in several steps
# (a refusal half-way would leave it half-changed), and cost the hosts one tell each.
UNGATED = IMMEDIATE | {"subscribe", "unsubscribe"}
ENTITY_FIELDS = ("room", "party", "playlist")

ENTITY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # a room's, party's or playlist's id


def handles(message_type: str, pipelined: bool = False) -> Callable[[Handler], Handler]:
    """Register the handler of ``message_type``.

    ``pipelined``: the handler's whole effect is the one entity message it sends (checks
    before it, only the reply after it), so the socket's next frame for that entity may start
    as soon as the message is queued; the entity still handles them in the order sent.
    """
    def register(fn: Handler) -> Handler:
        HANDLERS[message_type] = fn
        if pipelined:
            PIPELINED.add(message_type)
        return fn

    return register


def lane(frame: dict[str, Any]) -> str | None:
    """What a frame must stay in order with: its entity's topic (``room:<id>`` ...), or
    ``""`` for the socket's other requests; None for the gateway's own frames (ping, pong)."""
    message_type = frame["type"]
    if message_type in IMMEDIATE:
        return None
    content = frame["content"]
    for field in ENTITY_FIELDS:
        if isinstance(ident := content.get(field), str):
            return f"{field}:{ident}"
    topic = content.get("topic", frame.get("topic"))
    if isinstance(topic, str):
        return topic
    if message_type == "room.create" and isinstance(ident := content.get("room_id"), str):
        return f"room:{ident}"
    return ""


def entity_id(content: dict[str, Any], field: str, new: bool = False) -> str:
    """The entity id in ``content[field]``, checked; with ``new`` (a create) a random one
    when the client gave none."""
    ident = content.get(field)
    if new and not ident:
        return secrets.token_urlsafe(9)
    if not isinstance(ident, str) or not ENTITY_ID.match(ident):
        raise BadRequest(f"'{field}' must be 1 to 128 letters, digits or '_.:-'")
    return ident


def room_of(content: dict[str, Any]) -> str:
    return entity_id(content, "room")


def entity_fields(content: dict[str, Any], user: str, *drop: str) -> dict[str, Any]:
    """The client's content as an entity message payload: routing keys out, user in."""
    if "user" in content:
        raise BadRequest("'user' comes from your token; do not send it")
    return {**{k: v for k, v in content.items() if k not in drop}, "user": user}


async def follow_topic(core: GatewayCore, conn: Connection, topic: str) -> dict[str, Any]:
    """Follow ``topic`` for the socket (a create, join or open does it) and say where its
    stream is, for the reply."""
    position = await core.follow(conn, topic, None, None, answer=False)
    return {"topic": topic, "epoch": position.epoch, "seq": position.seq}


# -- connection-level -----------------------------------------------------------------------
@handles("pong")
async def pong(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> None:
    conn.confirm()  # what preceded the ping has been read: a resume can start after it
    return None


@handles("ping")
async def ping(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict[str, Any]:
    return {"server_time_ms": int(time.time() * 1000)}


@handles("time.ping")
async def time_ping(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> None:
    received = int(time.time() * 1000)
    t0 = frame["content"].get("t0")
    if not isinstance(t0, int | float) or isinstance(t0, bool):
        raise BadRequest("time.ping needs a numeric 't0' (client ms)")
    pong_frame = {"type": "time.pong", "content": {"t0": t0, "t1": received,
                                                    "t2": int(time.time() * 1000)}}
    if frame.get("id") is not None:
        pong_frame["ref"] = frame["id"]
    conn.send(pong_frame)
    return None


# -- topics ---------------------------------------------------------------------------------
@handles("subscribe")
async def subscribe(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> None:
    content = frame["content"]
    topic = content.get("topic", frame.get("topic"))
    if not isinstance(topic, str):
        raise BadRequest("subscribe needs a 'topic'")
    since = content.get("since")
    if since is not None:
        if not (isinstance(since, dict) and isinstance(since.get("epoch"), str)
                and isinstance(since.get("seq"), int) and since["seq"] >= 0):
            raise BadRequest("'since' must be {epoch: string, seq: integer >= 0}")
        since = (since["epoch"], since["seq"])
    await core.authorize_topic(conn, topic)
    await core.follow(conn, topic, since, frame.get("id"))
    return None


@handles("unsubscribe")
async def unsubscribe(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    topic = frame["content"].get("topic", frame.get("topic"))
    if not isinstance(topic, str):
        raise BadRequest("unsubscribe needs a 'topic'")
    await core.unfollow(conn, topic)
    return {"topic": topic}


async def dispatch(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict | None:
    """Run the handler of ``frame['type']`` (``serve.chat`` registers the chat ones)."""
    handler = HANDLERS.get(frame["type"])
    if handler is None:
        raise BadRequest(f"unknown message type {frame['type']!r}")
    return await handler(core, conn, frame)

