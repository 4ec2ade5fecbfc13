"""One load-generator process of S3 (``benchmarks.fanout``): holds idle sockets to a server.

The open-files limit is per process (20,000 here, and it cannot be raised), so S3 spreads
its sockets over several of these. Protocol on stdin/stdout, one line each:
``connected N SECONDS`` once all are open (or ``failed REASON``); then each ``check`` line
is answered ``held N`` (sockets still open); ``quit`` closes them and exits.

    python -m benchmarks.idle_clients TARGET PORT SECRET COUNT FIRST_INDEX
"""

from __future__ import annotations

import asyncio
import sys
import time

import uvloop

WAVE = 250


async def hold(target_key: str, port: int, secret: str, count: int, first: int) -> None:
    from benchmarks.fanout import target_for

    target = target_for(target_key, port, secret)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    start = time.monotonic()
    sockets = []
    try:
        for wave in range(first, first + count, WAVE):
            end = min(wave + WAVE, first + count)
            sockets += await asyncio.gather(*(target.idle(f"idle{i}") for i in range(wave, end)))
    except Exception as exc:
        print(f"failed {type(exc).__name__}: {exc}"[:300], flush=True)  # noqa: T201 (the protocol)
        return
    print(f"connected {len(sockets)} {time.monotonic() - start:.3f}", flush=True)  # noqa: T201
    while line := (await reader.readline()).decode().strip():
        if line == "check":
            held = sum(not sock.closed.is_set() for sock in sockets)
            print(f"held {held}", flush=True)  # noqa: T201
        elif line == "quit":
            break
    for sock in sockets:
        sock.close()


def main() -> None:
    key, port, secret, count, first = sys.argv[1:6]
    uvloop.run(hold(key, int(port), secret, int(count), int(first)))


if __name__ == "__main__":
    main()
