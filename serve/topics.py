"""The gateway's own messages: heartbeats, a fresh token, the clock, following topics, who is
present."""

from __future__ import annotations

import time
from typing import Any

from actors.channels import CHANNELS, ENTITY_ID, split_topic
from actors.kinds.presence import ListPresence
from rthub.errors import BadRequest, HubError
from serve.channel_routes import authorize_topic
from serve.handlers import Gateway, Routes, Socket, payload

ROUTES = Routes()


@ROUTES.handles("pong")
async def pong(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> None:
    conn.confirm()  # what preceded the ping has been read: a resume can start after it
    return None


@ROUTES.handles("ping")
async def ping(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict[str, Any]:
    return {"server_time_ms": int(time.time() * 1000)}


@ROUTES.handles("session.refresh")
async def session_refresh(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict[str, Any]:
    """A fresh token before the socket's runs out (the hub closes it 4401 at ``exp``)."""
    token = frame["content"].get("token")
    if not isinstance(token, str) or not token:
        raise BadRequest("session.refresh needs a 'token' (a JWT of the socket's own user)")
    return {"exp": gw.reauthorize(conn, token)}


@ROUTES.handles("time.ping")
async def time_ping(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> None:
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


def _topic(frame: dict[str, Any]) -> str:
    topic = frame["content"].get("topic", frame.get("topic"))
    if not isinstance(topic, str):
        raise BadRequest(f"{frame['type']} needs a 'topic'")
    return topic


@ROUTES.handles("subscribe")
async def subscribe(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> None:
    topic = _topic(frame)
    since = frame["content"].get("since")
    if since is not None:
        if not (isinstance(since, dict) and isinstance(since.get("epoch"), str)
                and isinstance(since.get("seq"), int) and since["seq"] >= 0):
            raise BadRequest("'since' must be {epoch: string, seq: integer >= 0}")
        since = (since["epoch"], since["seq"])
    await authorize_topic(gw, conn, topic)
    await gw.follow(conn, topic, since, frame.get("id"))
    return None


@ROUTES.handles("unsubscribe")
async def unsubscribe(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    topic = _topic(frame)
    await gw.unfollow(conn, topic)
    return {"topic": topic}


@ROUTES.handles("presence.list", pipelined=True)
async def presence_list(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    """Who is on a topic of a kind that tracks presence."""
    topic = frame["content"].get("topic", frame.get("topic"))
    try:
        channel, ident = split_topic(topic)
    except HubError:
        channel, ident = None, ""
    if channel is None or not channel.presence or not ENTITY_ID.match(ident):
        kinds = ", ".join(f"{c.prefix}:<id>" for c in CHANNELS.values() if c.presence)
        raise BadRequest(f"presence.list needs a 'topic' {kinds}")
    return await gw.ref(channel.kind, ident, conn.identity.tenant).ask(
        payload(ListPresence, conn, {}))

