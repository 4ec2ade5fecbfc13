"""Comparison server: plain Python ``websockets`` with rooms and ``websockets.broadcast``.

Text protocol: ``join:<room>`` joins, ``pub:<room>:<payload>`` sends ``<payload>`` to the room.
"""

import asyncio
import contextlib
import sys
from collections import defaultdict

import websockets

rooms: dict[str, set] = defaultdict(set)


async def handler(ws) -> None:
    joined = []
    try:
        async for message in ws:
            kind, _, rest = message.partition(":")
            if kind == "join":
                rooms[rest].add(ws)
                joined.append(rest)
                await ws.send("joined")
            elif kind == "pub":
                room, _, payload = rest.partition(":")
                websockets.broadcast(rooms[room], payload)
    except websockets.ConnectionClosed:
        pass  # the load generator drops sockets without a close frame between runs
    finally:
        for room in joined:
            rooms[room].discard(ws)


async def main(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    async with websockets.serve(handler, "127.0.0.1", port, ping_interval=None,
                                max_queue=None, compression=None):
        await asyncio.Future()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # the benchmark stops it with SIGINT
        asyncio.run(main(int(sys.argv[1])))
