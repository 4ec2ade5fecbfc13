"""The user's notification inbox over a ``Hub``: the list (``notification.list``), live
``notification`` events on ``user:<id>``, acks, and the unread count the hub keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from client.emitter import Emitter
from client.hub import Hub


class Inbox:
    """``items`` newest first, ``unread``; ``on('notification' | 'change', fn)``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.items: list[dict[str, Any]] = []
        self.unread = 0
        self._events = Emitter()
        self._offs: list[Callable[[], None]] = []

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        return self._events.on(name, fn)

    @property
    def topic(self) -> str:
        return f"user:{self.hub.session['user_id']}"

    async def load(self, limit: int = 100) -> list[dict[str, Any]]:
        """Follow the user's stream, then read the list (so nothing falls between)."""
        if not self._offs:
            self._offs = [self.hub.on("notification", self._notification),
                          self.hub.on("notification.state", self._state)]
            await self.hub.subscribe(self.topic)
        listed = await self.hub.request("notification.list", {"limit": limit})
        known = {item["id"] for item in listed["items"]}
        live = [item for item in self.items if item["id"] not in known]  # came meanwhile
        self.items = live + listed["items"]
        self.unread = max(int(listed["unread"]), self.unread if live else 0)
        self._events.emit("change", self.items)
        return self.items

    async def ack(self, notification_id: str, state: str) -> dict[str, Any]:
        """Mark one ``seen``, ``read`` or ``archived`` (states only move forward)."""
        reply = await self.hub.request("notification.ack", {"id": notification_id,
                                                            "state": state})
        self._set(notification_id, state, reply.get("unread"))
        return reply

    def _notification(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if frame.get("topic") != self.topic or any(i["id"] == content["id"]
                                                   for i in self.items):
            return
        self.items.insert(0, content)
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
        if state == "archived":
            self.items = [i for i in self.items if i["id"] != notification_id]
        if isinstance(unread, int):
            self.unread = unread
        self._events.emit("change", self.items)
