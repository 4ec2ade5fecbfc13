"""Helpers for the Python SDK's tests: SDK hubs on the suite's real hub, events awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from client import Hub


@asynccontextmanager
async def sdk_hubs(hub: Any) -> AsyncIterator[Callable[..., Any]]:
    """``connect(user, **options)`` -> a connected SDK ``Hub``; all closed on exit."""
    made: list[Hub] = []

    async def connect(user: str, token: Any = None, **options: Any) -> Hub:
        sdk = Hub(hub.url, token if token is not None else hub.token(user),
                  request_timeout_s=30, **options)
        made.append(sdk)
        await sdk.connect()
        return sdk

    try:
        yield connect
    finally:
        for sdk in made:
            await sdk.close()


async def next_event(source: Any, names: str, within: float = 30,
                     where: Callable[..., bool] = lambda *_: True) -> tuple[Any, ...]:
    """The arguments of ``source``'s next event among ``names`` (space separated) that
    satisfies ``where``."""
    fired: asyncio.Future = asyncio.get_running_loop().create_future()

    def heard(*args: Any) -> None:
        if not fired.done() and where(*args):
            fired.set_result(args)

    offs = [source.on(name, heard) for name in names.split()]
    try:
        return await asyncio.wait_for(fired, within)
    finally:
        for off in offs:
            off()


async def until(condition: Callable[[], bool], source: Any, names: str,
                within: float = 30) -> None:
    """Wait for ``condition`` to hold, checked after each of ``source``'s ``names``
    events."""
    if condition():
        return
    await next_event(source, names, within, lambda *_: condition())


def drop(sdk: Hub) -> None:
    """Kill the SDK's socket without a close frame (a lost network, a sleeping laptop)."""
    sdk._ws.transport.abort()
