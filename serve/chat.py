"""The chat messages of PROTOCOL.md at the gateway: one handler per type.

The gateway adds what only it knows (the user from the token, the client's address for the
audit log, a stored message's author) and does the reads that need Postgres (history,
search, attachment ownership); every decision about the room is the ChatRoom entity's.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from actors.channels import ENTITY_ID, check_id
from actors.kinds.chat_events import message_view
from actors.kinds.chat_types import Authorize, Create, Delete, Edit, Send
from rthub.errors import BadRequest, NotFound
from serve.handlers import Gateway, Routes, Socket, follow_topic, payload
from storage import attachments
from storage import chat as chat_store

ROUTES = Routes()

HISTORY_MAX = 100
SEARCH_MAX = 50


def direct_room_id(a: str, b: str) -> str:
    """One room per pair of users, whoever creates it first."""
    pair = "\x1f".join(sorted((a, b)))
    return "dm-" + hashlib.sha256(pair.encode()).hexdigest()[:32]


@ROUTES.handles("room.create")
async def room_create(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = dict(frame["content"])
    user = conn.identity.user
    if content.get("visibility") == "direct":
        members = content.get("members")
        if not (isinstance(members, list) and len(members) == 1 and isinstance(members[0], str)
                and members[0] != user):
            raise BadRequest("a direct room needs 'members': [the other user]")
        room = direct_room_id(user, members[0])
        content.setdefault("name", "direct")
        content.pop("room_id", None)
    else:
        room = content.pop("room_id", None) or secrets.token_urlsafe(9)
        if not isinstance(room, str) or not ENTITY_ID.match(room) or room.startswith("dm-"):
            raise BadRequest("'room_id' must be 1 to 128 letters, digits or '_.:-' and must "
                             "not start with 'dm-'")
    reply = await gw.ref("room", room, conn.identity.tenant).ask(payload(Create, conn, content))
    return {**reply, "room_id": room, **await follow_topic(gw, conn, f"room:{room}")}


# -- messages ------------------------------------------------------------------------------------
@ROUTES.handles("chat.send", pipelined=True)
async def chat_send(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = check_id(content.get("room"), "room")
    message = payload(Send, conn, content, "room")
    if message.attachments:
        if len(message.attachments) > gw.settings.chat_max_attachments:
            raise BadRequest(f"{len(message.attachments)} attachments; the limit is "
                             f"{gw.settings.chat_max_attachments}")
        mine = await attachments.owned(await gw.db(), conn.identity.tenant,
                                       conn.identity.user, message.attachments)
        missing = [a for a in message.attachments if a not in mine]
        if missing:
            raise NotFound(f"no attachment {missing[0]!r} uploaded by you; upload with "
                           "POST /v1/attachments first")
    if message.reply_to is not None and await chat_store.message_author(
            await gw.db(), conn.identity.tenant, room, message.reply_to) is None:
        raise NotFound(f"no message {message.reply_to!r} in room {room!r} to reply to")
    return await gw.ref("room", room, conn.identity.tenant).ask(message)


async def _author(gw: Gateway, conn: Socket, room: str, message_id: Any) -> str:
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 64:
        raise BadRequest("'message_id' must be a message id")
    found = await chat_store.message_author(await gw.db(), conn.identity.tenant, room,
                                            message_id)
    if found is None:
        raise NotFound(f"no message {message_id!r} in room {room!r}")
    if found[1]:
        raise NotFound(f"message {message_id!r} was deleted")
    return found[0]


@ROUTES.handles("chat.edit", pipelined=True)
async def chat_edit(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = check_id(content.get("room"), "room")
    text = content.get("text")
    if not isinstance(text, str):
        raise BadRequest("'text' must be a string")
    author = await _author(gw, conn, room, content.get("message_id"))
    return await gw.ref("room", room, conn.identity.tenant).ask(
        Edit(conn.identity.user, content["message_id"], text, author, conn.ip))


@ROUTES.handles("chat.delete", pipelined=True)
async def chat_delete(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = check_id(content.get("room"), "room")
    author = await _author(gw, conn, room, content.get("message_id"))
    return await gw.ref("room", room, conn.identity.tenant).ask(
        Delete(conn.identity.user, content["message_id"], author, conn.ip))


@ROUTES.handles("chat.history")
async def chat_history(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = check_id(content.get("room"), "room")
    limit = content.get("limit", 50)
    before = content.get("before_seq")
    if not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {HISTORY_MAX}")
    if before is not None and (not isinstance(before, int) or before < 1):
        raise BadRequest("'before_seq' must be a positive integer")
    await gw.ref("room", room, conn.identity.tenant).ask(Authorize(conn.identity.user))
    rows = await chat_store.history(await gw.db(), gw.keyring, conn.identity.tenant, room,
                                    before, limit + 1)
    messages = [message_view(room, r["message_id"], r["sender"], r["text"], r["seq"],
                             r["at_ms"], r["reply_to"], r["attachments"], r["edited_at_ms"],
                             r["deleted"]) for r in rows[:limit]]
    return {"messages": messages[::-1], "more": len(rows) > limit}


async def search(gw: Gateway, tenant: str, user: str, query: Any, room: Any,
                 limit: Any) -> dict[str, Any]:
    """Shared by ``chat.search`` and ``GET /v1/search``."""
    if not isinstance(query, str) or not query.strip() or len(query) > 500:
        raise BadRequest("'query' must be 1 to 500 characters")
    if room is not None and (not isinstance(room, str) or not ENTITY_ID.match(room)):
        raise BadRequest("'room' must be 1 to 128 letters, digits or '_.:-'")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SEARCH_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {SEARCH_MAX}")
    hits = await chat_store.search(await gw.db(), gw.keyring, gw.settings.search_language,
                                   tenant, user, query, room, limit)
    for hit in hits:
        hit.pop("ts_ms")
    return {"hits": hits}


@ROUTES.handles("chat.search")
async def chat_search(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await search(gw, conn.identity.tenant, conn.identity.user, content.get("query"),
                        content.get("room"), content.get("limit", 20))
