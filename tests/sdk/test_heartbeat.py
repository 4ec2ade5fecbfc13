"""Heartbeats, against a tiny WebSocket server of the test's own that can go silent (the hub
never does on purpose): the SDK answers ``ping`` with ``pong`` and takes a socket that sends
nothing for two heartbeats for dead, then resumes on a new one."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import ServerConnection, serve

from client import Hub


def welcome(n: int) -> str:
    return json.dumps({"type": "session.welcome", "content": {
        "session_id": f"s{n}", "user_id": "ana", "tenant": "t", "server_time_ms": 0,
        "heartbeat_s": 0.5, "resume_token": f"resume-{n}", "resumed": n > 1}})


async def test_a_silent_socket_is_dropped_after_two_heartbeats_and_resumed():
    answers: asyncio.Queue = asyncio.Queue()
    second: asyncio.Future = asyncio.get_running_loop().create_future()
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.send(welcome(connections))
        if connections == 1:
            await ws.send(json.dumps({"type": "ping", "content": {"server_time_ms": 0}}))
            await answers.put(json.loads(await ws.recv()))
        else:
            second.set_result(ws.request.path)
        await ws.wait_closed()  # silent from here on: no ping, no event

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sdk = Hub(f"ws://127.0.0.1:{port}/ws", "a-token",
                  reconnect={"initial_s": 0.05, "max_s": 0.2})
        disconnects: list[dict] = []
        sdk.on("disconnect", disconnects.append)
        await sdk.connect()
        assert (await asyncio.wait_for(answers.get(), 10))["type"] == "pong"
        path = await asyncio.wait_for(second, 30)
        assert disconnects[0] == {"code": None, "reason": "heartbeat timeout"}
        assert path == "/ws?resume=resume-1"  # the dead socket's session, resumed
        await sdk.close()
        assert sdk.state == "closed"
