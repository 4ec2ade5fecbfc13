"""The user's notification inbox over a ``Hub``: the list (``notification.list``), live
``notification`` events on ``user:<id>``, acks, older pages, and the unread count the hub
keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from client.emitter import Emitter
from client.hub import Hub
from client.messages import ACKS, NotificationList, parse

log = logging.getLogger(__name__)


class Inbox:
    """``items`` newest first, ``unread``, ``more``; ``on('notification' | 'change', fn)``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.items: list[dict[str, Any]] = []
        self.unread = 0
        self.more = False  # older notifications than the last page are left
        self._filter: dict[str, Any] = {"limit": 100, "state": None}
        self._events = Emitter()
        self._offs: list[Callable[[], None]] = []
        self._reloading: asyncio.Future[Any] | None = None
        self._arrived: list[dict[str, Any]] | None = None  # live while a load reads the list

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        return self._events.on(name, fn)

    @property
    def topic(self) -> str:
        return f"user:{self.hub.session['user_id']}"

    async def load(self, limit: int = 100, state: str | None = None) -> list[dict[str, Any]]:
        """Follow the user's stream, then read the newest ``limit`` (in ``state``, by default
        all but archived); following first means nothing falls between the two."""
        if not self._offs:
            self._offs = [self.hub.on("notification", self._notification),
                          self.hub.on("notification.state", self._state)]
            await self.hub.subscribe(self.topic, on_reload=self._reload)
        self._filter = {"limit": limit, "state": state}
        self._arrived = arrived = []
        try:
            listed = await self._list(limit, state)
        finally:
            self._arrived = None
        known = {item["id"] for item in listed["items"]}
        live = [item for item in arrived  # came while the list was read
                if item["id"] not in known and state in (None, item.get("state"))]
        self.items = live + listed["items"]
        self.unread = max(int(listed["unread"]), self.unread if live else 0)
        self._events.emit("change", self.items)
        return self.items

    async def load_more(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The next older page after the last item held (the last ``load``'s ``state`` and
        ``limit``); returns the items it added. ``more`` says whether older ones are left."""
        if not self.items:
            return await self.load(limit or self._filter["limit"], self._filter["state"])
        listed = await self._list(limit or self._filter["limit"], self._filter["state"],
                                  before=self.items[-1]["id"])
        held = {item["id"] for item in self.items}
        added = [item for item in listed["items"] if item["id"] not in held]
        self.items += added
        self.unread = int(listed["unread"])
        self._events.emit("change", self.items)
        return added

    async def close(self) -> None:
        """Stop following the user's stream (the items stay as they were)."""
        for off in self._offs:
            off()
        if self._offs:
            self._offs = []
            await self.hub.unsubscribe(self.topic)

    async def _list(self, limit: int, state: str | None,
                    before: str | None = None) -> NotificationList:
        content: dict[str, Any] = {"limit": limit}
        if state is not None:
            content["state"] = state
        if before is not None:
            content["before"] = before
        listed = parse("notification.list", await self.hub.request("notification.list",
                                                                   content), ACKS)
        self.more = bool(listed.get("more", False))
        return listed

    async def ack(self, notification_id: str, state: str) -> dict[str, Any]:
        """Mark one ``seen``, ``read`` or ``archived`` (states only move forward)."""
        reply = await self.hub.request("notification.ack", {"id": notification_id,
                                                            "state": state})
        self._set(notification_id, state, reply.get("unread"))
        return reply

    def _reload(self, _info: dict[str, Any]) -> None:
        """The hub could not replay what this inbox missed: read the list again."""
        self._reloading = asyncio.ensure_future(self.load(self._filter["limit"],
                                                          self._filter["state"]))
        self._reloading.add_done_callback(_log_failure)

    def _notification(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if frame.get("topic") != self.topic or any(i["id"] == content["id"]
                                                   for i in self.items):
            return
        self.items.insert(0, content)
        if self._arrived is not None:
            self._arrived.append(content)
        self.unread = int(content["unread"]) if "unread" in content else self.unread + 1
        self._events.emit("notification", content)
        self._events.emit("change", self.items)

    def _state(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if frame.get("topic") == self.topic:
            self._set(content["id"], content["state"], content.get("unread"))

    def _set(self, notification_id: str, state: str, unread: Any) -> None:
        for item in self.items:
            if item["id"] == notification_id:
                item["state"] = state
        if state == "archived" and self._filter["state"] != "archived":
            self.items = [i for i in self.items if i["id"] != notification_id]
        if isinstance(unread, int):
            self.unread = unread
        self._events.emit("change", self.items)


def _log_failure(task: asyncio.Future[Any]) -> None:
    """A reload that failed is logged (the inbox keeps what it had; the next load retries)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("the inbox could not reload: %r", task.exception())
