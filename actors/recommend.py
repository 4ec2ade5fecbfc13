"""Recommendations for the hub's callers (a party whose queue runs low, ``playlist.suggest``,
``POST /v1/recommendations``): the model's answer within a deadline, or the popularity
fallback, marked so.

The models are Ray Serve deployments (``serve.deployments.recommender``, app
``RTHUB_RECOMMEND_APP``). Nothing a user does waits on them longer than
``RTHUB_RECOMMEND_DEADLINE_MS``: past it, with the app not deployed, or with a replica
failing, the answer is the tenant's most played tracks of the last week (from the listening
events in Postgres, cached a minute), with ``fallback: true`` and the reason counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from actors.kinds.tracks import track_id
from rthub.config import Settings
from storage import listening

log = logging.getLogger(__name__)

POPULAR_DAYS = 7
POPULAR_TTL_S = 60.0
RETRY_HANDLE_S = 10.0  # an app not deployed is looked for again after this long
ROUTER = "Router"


class Recommendations:
    """One per process (a host, a gateway replica): the handle, the popularity cache and
    the counts of what answered."""

    def __init__(self, settings: Settings, pool: Callable[[], Awaitable[Any]]) -> None:
        self.settings = settings
        self.pool = pool
        self.deadline_s = settings.recommend_deadline_ms / 1000
        self._handle: Any = None
        self._looked_at = -RETRY_HANDLE_S  # when the app was last looked up
        self._popular: dict[str, tuple[float, list[str]]] = {}
        self.outcomes: Counter[str] = Counter()  # model, deadline, unavailable, error

    async def ask(self, tenant: str, user: str, history: list[str], exclude: list[str],
                  limit: int) -> dict[str, Any]:
        """``{tracks: [{track, score}], model, fallback}``, within the deadline."""
        request = {"tenant": tenant, "user": user, "history": history[-50:],
                   "exclude": exclude, "limit": limit}
        handle = await self._router()
        if handle is None:
            return await self._fallback(tenant, exclude, limit, "unavailable")
        response = handle.remote(request)
        try:
            answer = await asyncio.wait_for(asyncio.shield(_awaited(response)),
                                            self.deadline_s)
        except TimeoutError:
            with contextlib.suppress(Exception):
                response.cancel()
            self._forget()  # the app may be gone: look again (at most every 10 s)
            return await self._fallback(tenant, exclude, limit, "deadline")
        except Exception as exc:  # a replica failing, the app deleted meanwhile
            log.warning("recommendation failed, popularity instead: %s", exc)
            self._forget()
            return await self._fallback(tenant, exclude, limit, "error")
        self.outcomes["model"] += 1
        return answer

    async def _router(self) -> Any:
        """The app's router, looked up at most every ``RETRY_HANDLE_S`` while missing (the
        lookup asks Serve's controller: off the event loop)."""
        if self._handle is None and time.monotonic() - self._looked_at >= RETRY_HANDLE_S:
            from ray import serve

            self._looked_at = time.monotonic()
            try:
                self._handle = await asyncio.to_thread(
                    serve.get_deployment_handle, ROUTER, app_name=self.settings.recommend_app)
            except Exception:  # not deployed (yet), or no Serve here: popularity meanwhile
                self._handle = None
        return self._handle

    def _forget(self) -> None:
        if time.monotonic() - self._looked_at >= RETRY_HANDLE_S:
            self._handle = None

    async def _fallback(self, tenant: str, exclude: list[str], limit: int, why: str
                        ) -> dict[str, Any]:
        self.outcomes[why] += 1
        cached = self._popular.get(tenant)
        if cached is None or cached[0] < time.monotonic():
            found = await listening.popular(await self.pool(), tenant, POPULAR_DAYS, 200)
            cached = self._popular[tenant] = (time.monotonic() + POPULAR_TTL_S, found)
        skip = set(exclude)
        tracks = [t for t in cached[1] if t not in skip][:limit]
        return {"tracks": [{"track": t, "score": 0.0} for t in tracks],
                "model": "popularity", "fallback": True, "reason": why}

    def party_service(self) -> Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]:
        """The host service behind a party's ``ctx.call("recommend", {seed, exclude, count,
        user})``: track ids, with the model that chose them."""
        async def recommend(tenant: str, request: dict[str, Any]) -> dict[str, Any]:
            answer = await self.ask(
                tenant, str(request.get("user", "")),
                [track_id(t) for t in request.get("seed", [])],
                [track_id(t) for t in request.get("exclude", [])],
                max(1, min(50, int(request.get("count", 5)))))
            tracks = [t["track"] for t in answer["tracks"]]
            if not tracks and answer["fallback"]:  # a new hub: nothing played yet
                return {"tracks": _recent(request), "model": "recent", "fallback": True}
            return {"tracks": tracks, "model": answer["model"], "fallback": answer["fallback"]}

        return recommend


def _recent(request: dict[str, Any]) -> list[Any]:
    """The party's seed tracks back, most recent first, without repeats or queued ones."""
    exclude = {track_id(t) for t in request.get("exclude", [])}
    tracks: list[Any] = []
    for track in reversed(request.get("seed", [])):
        if track_id(track) not in exclude and track not in tracks:
            tracks.append(track)
    return tracks[: max(0, int(request.get("count", 5)))]


async def _awaited(response: Any) -> Any:
    return await response
