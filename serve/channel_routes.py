"""Gateway routes made from the kinds' channel specs (``actors.channels``): create, join,
open, leave and the messages that pass straight to an entity, for every kind at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actors.channels import Channel, split_topic
from actors.messages import Message
from rthub.errors import Forbidden
from serve.handlers import Gateway, Handler, Routes, Socket, follow_topic, payload


def channel_routes(channels: Iterable[Channel]) -> Routes:
    """The routes every declared channel implies."""
    routes = Routes()
    for channel in channels:
        if channel.create is not None:
            routes.add(channel.create.type, _follows(channel, channel.create, new=True))
        if channel.join is not None:
            routes.add(channel.join.type, _follows(channel, channel.join, new=False))
        if channel.open is not None:
            routes.add(channel.open.type, _open(channel, channel.open))
        if channel.leave is not None:
            routes.add(channel.leave.type, _leave(channel, channel.leave))
        for message in channel.direct:
            routes.add(message.type, _direct(channel, message), pipelined=True)
    return routes


async def authorize_topic(gw: Gateway, conn: Socket, topic: str) -> None:
    """May this socket follow ``topic``? Its entity says (``Channel.authorize``), or, for a
    user's own topic, the token."""
    channel, ident = split_topic(topic)
    if channel.own:
        if ident != conn.identity.user:
            raise Forbidden(f"you may only follow your own {channel.prefix} topic")
    elif channel.authorize is not None:
        await gw.ref(channel.kind, ident, conn.identity.tenant).ask(
            payload(channel.authorize, conn, {}))
    else:
        raise Forbidden(f"{channel.prefix} topics cannot be followed")


def _follows(channel: Channel, message: type[Message], new: bool) -> Handler:
    """A create (``new``: the id from ``<id_field>_id``, or a random one) or a join: asked
    first (it decides membership), then the socket follows the topic."""
    drop = f"{channel.id_field}_id" if new else channel.id_field

    async def follows(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
        content = frame["content"]
        ident = channel.entity_id(content, new)
        reply = await gw.ref(channel.kind, ident, conn.identity.tenant).ask(
            payload(message, conn, content, drop))
        return {**reply, **await follow_topic(gw, conn, f"{channel.prefix}:{ident}")}

    return follows


def _open(channel: Channel, message: type[Message]) -> Handler:
    """Authorized, followed, then read: every change after the answer arrives live (changes
    at or before it may arrive too; clients drop what they have)."""
    async def open_(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
        content = frame["content"]
        ident = channel.entity_id(content)
        ref = gw.ref(channel.kind, ident, conn.identity.tenant)
        if channel.authorize is not None:
            await ref.ask(payload(channel.authorize, conn, {}))
        where = await follow_topic(gw, conn, f"{channel.prefix}:{ident}")
        return {**await ref.ask(payload(message, conn, content, channel.id_field)), **where}

    return open_


def _leave(channel: Channel, message: type[Message]) -> Handler:
    async def leave(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
        content = frame["content"]
        ident = channel.entity_id(content)
        reply = await gw.ref(channel.kind, ident, conn.identity.tenant).ask(
            payload(message, conn, content, channel.id_field))
        await gw.unfollow(conn, f"{channel.prefix}:{ident}")
        return reply

    return leave


def _direct(channel: Channel, message: type[Message]) -> Handler:
    async def direct(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
        content = frame["content"]
        if channel.own:  # the user's own entity (their inbox): named by the token
            ident, drop = conn.identity.user, ""
        else:
            ident, drop = channel.entity_id(content), channel.id_field
        reply = await gw.ref(channel.kind, ident, conn.identity.tenant).ask(
            payload(message, conn, content, drop))
        gw.replied(message.type, reply)
        return reply

    return direct
