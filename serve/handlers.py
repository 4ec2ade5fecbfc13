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

from actors.kinds.chat_room import Authorize, Create, Join, Leave, Send, message_view
from rthub.errors import BadRequest

if TYPE_CHECKING:
    from serve.connection import Connection
    from serve.gateway import GatewayCore

Handler = Callable[["GatewayCore", "Connection", dict[str, Any]], Awaitable[dict | None]]
HANDLERS: dict[str, Handler] = {}

_ROOM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
HISTORY_MAX = 100


def handles(message_type: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[message_type] = fn
        return fn

    return register


def _room(content: dict[str, Any]) -> str:
    room = content.get("room")
    if not isinstance(room, str) or not _ROOM_ID.match(room):
        raise BadRequest("'room' must be 1 to 128 letters, digits or '_.:-'")
    return room


def _entity_fields(content: dict[str, Any], user: str, *drop: str) -> dict[str, Any]:
    """The client's content as an entity message payload: routing keys out, user in."""
    if "user" in content:
        raise BadRequest("'user' comes from your token; do not send it")
    return {**{k: v for k, v in content.items() if k not in drop}, "user": user}


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


# -- chat (the minimal path; the chat issue completes it) -----------------------------------
@handles("room.create")
async def room_create(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = dict(frame["content"])
    room = content.pop("room_id", None) or secrets.token_urlsafe(9)
    if not isinstance(room, str) or not _ROOM_ID.match(room):
        raise BadRequest("'room_id' must be 1 to 128 letters, digits or '_.:-'")
    payload = Create.decode(_entity_fields(content, conn.identity.user))
    reply = await core.room(conn, room).ask(payload)
    position = await core.follow(conn, f"room:{room}", None, None, answer=False)
    return {**reply, "topic": f"room:{room}", "epoch": position.epoch, "seq": position.seq}


@handles("room.join")
async def room_join(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    room = _room(frame["content"])
    await core.room(conn, room).ask(Join(conn.identity.user))
    position = await core.follow(conn, f"room:{room}", None, None, answer=False)
    return {"room_id": room, "topic": f"room:{room}", "epoch": position.epoch,
            "seq": position.seq}


@handles("room.leave")
async def room_leave(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    room = _room(frame["content"])
    await core.room(conn, room).ask(Leave(conn.identity.user))
    await core.unfollow(conn, f"room:{room}")
    return {"room_id": room}


@handles("chat.send")
async def chat_send(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = _room(content)
    payload = Send.decode(_entity_fields(content, conn.identity.user, "room"))
    return await core.room(conn, room).ask(payload)


@handles("chat.history")
async def chat_history(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = _room(content)
    limit = content.get("limit", 50)
    before = content.get("before_seq")
    if not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {HISTORY_MAX}")
    if before is not None and (not isinstance(before, int) or before < 1):
        raise BadRequest("'before_seq' must be a positive integer")
    await core.room(conn, room).ask(Authorize(conn.identity.user))
    rows = await core.history(conn.identity.tenant, room, before, limit + 1)
    messages = [message_view(room, r["message_id"], r["sender"], r["body"], r["seq"],
                             int(r["sent_at"].timestamp() * 1000), r["reply_to"])
                for r in rows[:limit]]
    return {"messages": messages[::-1], "more": len(rows) > limit}


async def dispatch(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict | None:
    handler = HANDLERS.get(frame["type"])
    if handler is None:
        raise BadRequest(f"unknown message type {frame['type']!r}")
    return await handler(core, conn, frame)

