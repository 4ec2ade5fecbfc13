"""The chat messages of PROTOCOL.md at the gateway: one handler per type.

The gateway adds what only it knows (the user from the token, the client's address for the
audit log, a stored message's author) and does the reads that need Postgres (history,
search, attachment ownership); every decision about the room is the ChatRoom entity's.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from actors.kinds.chat_types import (
    Authorize,
    Create,
    Delete,
    Edit,
    Invite,
    Join,
    Kick,
    Leave,
    Read,
    Send,
    SetRole,
    Typing,
    Update,
    message_view,
)
from actors.kinds.presence import ListPresence
from rthub.errors import BadRequest, NotFound
from serve.handlers import ENTITY_ID, entity_fields, follow_topic, handles, room_of
from storage import attachments
from storage import chat as chat_store

if TYPE_CHECKING:
    from serve.connection import Connection
    from serve.gateway import GatewayCore

HISTORY_MAX = 100
SEARCH_MAX = 50


def direct_room_id(a: str, b: str) -> str:
    """One room per pair of users, whoever creates it first."""
    pair = "\x1f".join(sorted((a, b)))
    return "dm-" + hashlib.sha256(pair.encode()).hexdigest()[:32]


def _user(content: dict[str, Any], field: str = "user") -> str:
    value = content.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise BadRequest(f"'{field}' must be a user id of 1 to 200 characters")
    return value


async def _joined(core: GatewayCore, conn: Connection, room: str, reply: dict[str, Any]
                  ) -> dict[str, Any]:
    """Follow the room's topic right away (a joiner wants its events) and say where it is."""
    return {**reply, "room_id": room, **await follow_topic(core, conn, f"room:{room}")}


@handles("room.create")
async def room_create(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
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
    payload = Create.decode({**entity_fields(content, user), "ip": conn.ip})
    reply = await core.room(conn, room).ask(payload)
    return await _joined(core, conn, room, reply)


@handles("room.join")
async def room_join(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    room = room_of(frame["content"])
    reply = await core.room(conn, room).ask(Join(conn.identity.user, conn.ip))
    return await _joined(core, conn, room, reply)


@handles("room.leave")
async def room_leave(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    room = room_of(frame["content"])
    await core.room(conn, room).ask(Leave(conn.identity.user, conn.ip))
    await core.unfollow(conn, f"room:{room}")
    return {"room_id": room}


@handles("room.invite", pipelined=True)
async def room_invite(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await core.room(conn, room_of(content)).ask(
        Invite(conn.identity.user, _user(content), conn.ip))


@handles("room.kick", pipelined=True)
async def room_kick(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await core.room(conn, room_of(content)).ask(
        Kick(conn.identity.user, _user(content), conn.ip))


@handles("room.role", pipelined=True)
async def room_role(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    role = content.get("role")
    if not isinstance(role, str):
        raise BadRequest("'role' must be moderator or member")
    return await core.room(conn, room_of(content)).ask(
        SetRole(conn.identity.user, _user(content), role, conn.ip))


@handles("room.update", pipelined=True)
async def room_update(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = room_of(content)
    fields = entity_fields(content, conn.identity.user, "room")
    if "retention_s" in fields and fields["retention_s"] is None:  # null: keep forever
        del fields["retention_s"]
        fields["forever"] = True
    return await core.room(conn, room).ask(Update.decode({**fields, "ip": conn.ip}))


# -- messages ------------------------------------------------------------------------------------
@handles("chat.send", pipelined=True)
async def chat_send(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = room_of(content)
    payload = Send.decode(entity_fields(content, conn.identity.user, "room"))
    if payload.attachments:
        if len(payload.attachments) > core.settings.chat_max_attachments:
            raise BadRequest(f"{len(payload.attachments)} attachments; the limit is "
                             f"{core.settings.chat_max_attachments}")
        mine = await attachments.owned(await core.db(), conn.identity.tenant,
                                       conn.identity.user, payload.attachments)
        missing = [a for a in payload.attachments if a not in mine]
        if missing:
            raise NotFound(f"no attachment {missing[0]!r} uploaded by you; upload with "
                           "POST /v1/attachments first")
    if payload.reply_to is not None and await chat_store.message_author(
            await core.db(), conn.identity.tenant, room, payload.reply_to) is None:
        raise NotFound(f"no message {payload.reply_to!r} in room {room!r} to reply to")
    return await core.room(conn, room).ask(payload)


async def _author(core: GatewayCore, conn: Connection, room: str, message_id: Any) -> str:
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 64:
        raise BadRequest("'message_id' must be a message id")
    found = await chat_store.message_author(await core.db(), conn.identity.tenant, room,
                                            message_id)
    if found is None:
        raise NotFound(f"no message {message_id!r} in room {room!r}")
    if found[1]:
        raise NotFound(f"message {message_id!r} was deleted")
    return found[0]


@handles("chat.edit", pipelined=True)
async def chat_edit(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = room_of(content)
    text = content.get("text")
    if not isinstance(text, str):
        raise BadRequest("'text' must be a string")
    author = await _author(core, conn, room, content.get("message_id"))
    return await core.room(conn, room).ask(
        Edit(conn.identity.user, content["message_id"], text, author, conn.ip))


@handles("chat.delete", pipelined=True)
async def chat_delete(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = room_of(content)
    author = await _author(core, conn, room, content.get("message_id"))
    return await core.room(conn, room).ask(
        Delete(conn.identity.user, content["message_id"], author, conn.ip))


async def _as_is(core: GatewayCore, conn: Connection, frame: dict[str, Any],
                 message: type[Typing] | type[Read]) -> dict:
    """A message the room takes as the client sent it, with the user added."""
    content = frame["content"]
    payload = message.decode(entity_fields(content, conn.identity.user, "room"))
    return await core.room(conn, room_of(content)).ask(payload)


@handles("chat.typing", pipelined=True)
async def chat_typing(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    return await _as_is(core, conn, frame, Typing)


@handles("chat.read", pipelined=True)
async def chat_read(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    return await _as_is(core, conn, frame, Read)


@handles("chat.history")
async def chat_history(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    room = room_of(content)
    limit = content.get("limit", 50)
    before = content.get("before_seq")
    if not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {HISTORY_MAX}")
    if before is not None and (not isinstance(before, int) or before < 1):
        raise BadRequest("'before_seq' must be a positive integer")
    await core.room(conn, room).ask(Authorize(conn.identity.user))
    rows = await chat_store.history(await core.db(), core.keyring, conn.identity.tenant, room,
                                    before, limit + 1)
    messages = [message_view(room, r["message_id"], r["sender"], r["text"], r["seq"],
                             r["at_ms"], r["reply_to"], r["attachments"], r["edited_at_ms"],
                             r["deleted"]) for r in rows[:limit]]
    return {"messages": messages[::-1], "more": len(rows) > limit}


async def search(core: GatewayCore, tenant: str, user: str, query: Any, room: Any,
                 limit: Any) -> dict[str, Any]:
    """Shared by ``chat.search`` and ``GET /v1/search``."""
    if not isinstance(query, str) or not query.strip() or len(query) > 500:
        raise BadRequest("'query' must be 1 to 500 characters")
    if room is not None and (not isinstance(room, str) or not ENTITY_ID.match(room)):
        raise BadRequest("'room' must be 1 to 128 letters, digits or '_.:-'")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SEARCH_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {SEARCH_MAX}")
    hits = await chat_store.search(await core.db(), core.keyring, core.settings.search_language,
                                   tenant, user, query, room, limit)
    for hit in hits:
        hit.pop("ts_ms")
    return {"hits": hits}


@handles("chat.search")
async def chat_search(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await search(core, conn.identity.tenant, conn.identity.user, content.get("query"),
                        content.get("room"), content.get("limit", 20))


@handles("presence.list", pipelined=True)
async def presence_list(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    topic = frame["content"].get("topic", frame.get("topic"))
    kind, _, ident = topic.partition(":") if isinstance(topic, str) else ("", "", "")
    if kind not in ("room", "party", "playlist") or not ENTITY_ID.match(ident):
        raise BadRequest("presence.list needs a 'topic' room:<id>, party:<id> or "
                         "playlist:<id>")
    entity = core.system.ref(kind, ident, conn.identity.tenant)
    return await entity.ask(ListPresence(conn.identity.user))
