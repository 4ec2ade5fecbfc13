"""What the analytics tests share: ``GET /v1/admin/analytics``, polled until it shows what
a test did (replicas flush every few tenths of a second in these tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx


async def get_analytics(hub: Any, token: str | None, query: str = "") -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        return await http.get(f"{hub.http}/v1/admin/analytics{query}", headers=headers,
                              timeout=30)


async def analytics_when(hub: Any, token: str, ready: Callable[[dict], bool],
                         within: float = 20) -> dict[str, Any]:
    """The analytics once ``ready`` holds (polled, bounded: a flush has no event to await)."""
    async with asyncio.timeout(within):
        while True:
            answer = await get_analytics(hub, token)
            assert answer.status_code == 200, answer.text
            data = answer.json()
            if ready(data):
                return data
            await asyncio.sleep(0.1)


def total(data: dict[str, Any], pick: Callable[[dict], int]) -> int:
    """``pick`` summed over the minutes of an analytics answer."""
    return sum(pick(minute) for minute in data["series"])
