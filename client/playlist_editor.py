"""A collaborative playlist over a ``Hub``: ``PlaylistDoc`` (sans I/O) driven by real frames.

Local edits show at once and go out one at a time; other people's ops, the acks of ours and
the ops read back from ``playlist.history`` (after a gap, or a topic lost in a reconnect)
all pass through the same ``PlaylistDoc``, so every editor converges to the server's list.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from client.emitter import Emitter
from client.hub import Hub
from client.playlist import PlaylistDoc
from client.requests import HubError

log = logging.getLogger(__name__)


class PlaylistEditor:
    """One user's editable copy of one playlist; ``on('change', fn)`` after each change."""

    def __init__(self, hub: Hub, playlist_id: str, client_id: str | None = None) -> None:
        self.hub = hub
        self.playlist_id = playlist_id
        self.topic = f"playlist:{playlist_id}"
        self.doc = PlaylistDoc(playlist_id, client_id or uuid.uuid4().hex)
        self._events = Emitter()
        self._offs: list[Callable[[], None]] = []
        self._sending = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def items(self) -> list[dict[str, Any]]:
        return [{"item_id": item_id, "track": track} for item_id, track in self.doc.items]

    @property
    def version(self) -> int:
        return self.doc.version

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        return self._events.on(name, fn)

    async def open(self) -> None:
        """Open the playlist (which follows its topic) and listen to its ops."""
        if not self._offs:
            self._offs = [self.hub.on("playlist.op", self._op),
                          self.hub.on("subscribed", self._subscribed)]
        self.doc.opened(await self.hub.request("playlist.open", {"playlist": self.playlist_id}))
        self._events.emit("change", self.items)

    def close(self) -> None:
        """Stop listening and sending (edits not yet acknowledged are dropped)."""
        for off in self._offs:
            off()
        self._offs = []
        for task in self._tasks:
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def insert(self, index: int, track: Any) -> str:
        """Insert ``track`` at ``index``; returns the new item's id."""
        item_id = uuid.uuid4().hex[:16]
        self._edit({"insert": {"index": index, "track": track, "item_id": item_id}})
        return item_id

    def remove(self, item_id: str) -> None:
        self._edit({"remove": {"item_id": item_id}})

    def move(self, item_id: str, to_index: int) -> None:
        self._edit({"move": {"item_id": item_id, "to_index": to_index}})

    async def settled(self) -> None:
        """Wait until every local edit is acknowledged (for tests and clean exits)."""
        while not self.doc.idle or self._sending:
            await self._next_change()

    # -- frames ---------------------------------------------------------------------------
    def _edit(self, op: dict[str, Any]) -> None:
        self.doc.local(op)
        self._events.emit("change", self.items)
        self._flush()

    def _flush(self) -> None:
        if self._sending or (self.doc.inflight is None and self.doc.next_frame() is None):
            return
        self._sending = True
        self._spawn(self._send())

    async def _send(self) -> None:
        """Send the in-flight op until it is acknowledged, then the next one. A resend
        after a drop is safe: the playlist answers a repeated (client_id, client_seq) with
        its first result."""
        try:
            while self.doc.inflight is not None:
                seq = self.doc.inflight[0]
                try:
                    ack = await self.hub.request("playlist.op", self.doc.resend())
                except HubError as err:
                    if err.code not in ("disconnected", "timeout", "unavailable"):
                        log.warning("playlist op refused: %s", err)
                        self._events.emit("error", err)
                        return
                    if self.hub.state == "closed":
                        return
                    await self._reconnected()
                    continue
                self.doc.acked(ack)
                if self.doc.inflight is not None and self.doc.inflight[0] == seq:
                    await self._catch_up()  # versions before ours never came: read them
                self._changed()
                self.doc.next_frame()
        finally:
            self._sending = False
            self._events.emit("idle", None)

    def _op(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if frame.get("topic") != self.topic:
            return
        self.doc.broadcast(content)
        self._changed()
        if self.doc.gap:
            self._spawn(self._catch_up())
        self._flush()

    def _subscribed(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if content.get("topic") == self.topic and content.get("recovered") is False:
            self._spawn(self._catch_up())  # the stream lost ops: read them back

    async def _catch_up(self) -> None:
        ack = await self.hub.request("playlist.history", {"playlist": self.playlist_id,
                                                          "from_version": self.doc.version})
        for entry in ack["ops"]:
            self.doc.history_op(entry)
        self._changed()

    def _changed(self) -> None:
        self._events.emit("change", self.items)

    async def _reconnected(self) -> None:
        if self.hub.state != "open":
            await self._next_event(("welcome", "resumed"), self.hub)

    async def _next_change(self) -> None:
        await self._next_event(("change", "idle"), self)

    @staticmethod
    async def _next_event(names: tuple[str, ...], source: Any) -> None:
        fired = asyncio.get_running_loop().create_future()
        offs = [source.on(name, lambda *_: fired.done() or fired.set_result(None))
                for name in names]
        try:
            await fired
        finally:
            for off in offs:
                off()
