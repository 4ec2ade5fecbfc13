"""Inbox: one per (tenant, user). The in-app notification channel: what the user was sent,
in what state, and how many are unread.

The inbox numbers the ``user:<id>`` stream: ``notification`` when one arrives (kept in the
stream, so a device that was offline gets it on resume) and ``notification.state`` when a
device marks one ``seen``, ``read`` or ``archived`` (so the user's other devices follow).
``inbox.deliver`` comes from the notification dispatcher and is idempotent by notification id:
a dispatcher that died mid-send and sends again adds nothing. The newest ``KEPT`` stay. The
inbox also keeps the user's preferences (``inbox_prefs``): a muted category is recorded as
``skipped`` and not shown; in quiet hours a notification arrives with ``silent: true``
(CRITICAL ones are never muted or silent).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import actors.kinds.inbox_prefs as prefs_of
from actors.channels import Channel
from actors.context import Context
from actors.entity import Entity, applies, handles
from actors.kinds.times import iso
from actors.messages import Event, Message, request_key
from rthub.errors import BadRequest, NotFound

KEPT = 500
LIST_MAX = 100
PREFERENCES = ("locale", "timezone", "quiet_hours")  # a null clears one
STORED = {"locale": "locale", "timezone": "timezone", "quiet_hours": "quiet"}
STATES = ("new", "seen", "read", "archived")  # only forward


@dataclass(frozen=True, slots=True)
class Deliver(Message):
    """From the dispatcher (never from a client: not in the channel spec)."""

    type: ClassVar[str] = "inbox.deliver"
    idempotent: ClassVar[tuple[str, ...]] = ("id",)
    id: str
    category: str
    priority: int
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)
    at_ms: int = 0
    silent: bool = False  # it waits in a digest: the digest will alert


@dataclass(frozen=True, slots=True)
class Ack(Message):
    type: ClassVar[str] = "notification.ack"
    user: str
    id: str
    state: str


@dataclass(frozen=True, slots=True)
class ListInbox(Message):
    """The newest first: in ``state`` (default: all but archived), older than ``before``."""

    type: ClassVar[str] = "notification.list"
    user: str
    state: str | None = None
    before: str | None = None  # a notification id
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Preferences(Message):
    """Set (the fields sent) and read back the user's preferences (PROTOCOL.md
    ``notification.prefs``): ``category`` + ``channel`` + ``enabled`` turn one category on
    or off on one channel; ``null`` clears the locale, time zone or quiet hours."""

    type: ClassVar[str] = "notification.prefs"
    user: str
    category: str | None = None
    channel: str | None = None
    enabled: bool | None = None
    quiet_hours: dict[str, Any] | None = None
    timezone: str | None = None
    locale: str | None = None
    digest: dict[str, Any] | None = None  # with ``category``; null clears it
    clear: list[str] = field(default_factory=list)

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> dict[str, Any]:
        nulls = [k for k in (*PREFERENCES, "digest") if k in payload and payload[k] is None]
        return {**{k: v for k, v in payload.items() if k not in nulls}, "clear": nulls}


@dataclass(frozen=True, slots=True)
class Profile(Message):
    """What a template is rendered with and what the dispatcher routes by (internal: not in
    the channel spec): the preferences as a client reads them, and ``stored`` as
    ``inbox_prefs`` reads them."""

    type: ClassVar[str] = "inbox.profile"


@dataclass(frozen=True, slots=True)
class PreferencesSet(Event):
    prefs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skipped(Event):
    """A notification the user muted on this channel: recorded, not shown."""

    id: str
    at_ms: int

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("notify.state", {"tenant": key[0], "id": self.id, "channel": "in_app",
                                  "state": "skipped", "error": "muted by the user",
                                  "at_ms": self.at_ms})]


@dataclass(frozen=True, slots=True)
class Delivered(Event):
    id: str
    category: str
    priority: int
    title: str
    body: str
    data: dict[str, Any]
    at_ms: int
    seq: int

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("notify.state", {"tenant": key[0], "id": self.id, "channel": "in_app",
                                  "state": "delivered", "at_ms": self.at_ms})]


@dataclass(frozen=True, slots=True)
class Acked(Event):
    id: str
    state: str
    at_ms: int
    seq: int

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        if self.state == "archived":
            return []
        return [("notify.state", {"tenant": key[0], "id": self.id, "channel": "in_app",
                                  "state": self.state, "at_ms": self.at_ms})]


class Inbox(Entity):
    kind = "inbox"
    streams = True
    channel = Channel("inbox", "user", topic="user", own=True,
                      direct=(Ack, ListInbox, Preferences))
    messages = (Deliver, Ack, ListInbox, Preferences, Profile)
    events = (Delivered, Acked, PreferencesSet, Skipped)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        # id -> [category, priority, title, body, data, at_ms, state], oldest first
        items: dict[str, list[Any]] = field(default_factory=dict)
        unread: int = 0
        seq: int = 0
        replies: dict[str, dict[str, Any]] = field(default_factory=dict)
        prefs: dict[str, Any] = field(default_factory=dict)  # see inbox_prefs

    def _view(self, ident: str, item: list[Any] | None = None) -> dict[str, Any]:
        category, priority, title, body, data, at_ms, state = item or self.state.items[ident]
        return {"id": ident, "category": category, "priority": priority, "title": title,
                "content": body, "data": data, "ts": iso(at_ms), "state": state}

    @handles(Deliver)
    def deliver(self, msg: Deliver, ctx: Context) -> None:
        prefs = self.state.prefs
        if prefs_of.muted(prefs, msg.category, "in_app", msg.priority):
            ctx.emit(Skipped(msg.id, ctx.now_ms))
            ctx.reply({"skipped": "muted"})
            return
        at_ms = msg.at_ms or ctx.now_ms
        item = [msg.category, msg.priority, msg.title, msg.body, msg.data, at_ms, "new"]
        items, unread = self.state.items, self.state.unread + 1
        if len(items) >= KEPT and _unread(items[next(iter(items))][6]):
            unread -= 1  # the oldest unread one makes room
        silent = msg.silent or (msg.priority < prefs_of.CRITICAL
                                and prefs_of.quiet_now(prefs, ctx.now_ms))
        seq = ctx.stream("notification", {**self._view(msg.id, item), "unread": unread,
                                           "silent": silent})
        ctx.emit(Delivered(msg.id, msg.category, msg.priority, msg.title, msg.body, msg.data,
                           at_ms, seq))
        ctx.reply({"seq": seq})

    @handles(Ack)
    def ack(self, msg: Ack, ctx: Context) -> None:
        if msg.state not in STATES[1:]:
            raise BadRequest("state must be one of seen, read, archived")
        item = self.state.items.get(msg.id)
        if item is None:
            raise NotFound(f"no notification {msg.id!r} in your inbox")
        unread = self.state.unread
        if STATES.index(msg.state) > STATES.index(item[6]):  # states only move forward
            if _unread(item[6]) and not _unread(msg.state):
                unread -= 1
            seq = ctx.stream("notification.state", {"id": msg.id, "state": msg.state,
                                                    "unread": unread})
            ctx.emit(Acked(msg.id, msg.state, ctx.now_ms, seq))
        ctx.reply({"id": msg.id, "state": max(msg.state, item[6], key=STATES.index),
                   "unread": unread})

    @handles(ListInbox)
    def listing(self, msg: ListInbox, ctx: Context) -> None:
        if not 1 <= msg.limit <= LIST_MAX:
            raise BadRequest(f"limit must be from 1 to {LIST_MAX}")
        if msg.state is not None and msg.state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        if msg.before is not None and msg.before not in self.state.items:
            raise NotFound(f"no notification {msg.before!r} in your inbox")
        newest_first = reversed(self.state.items.items())
        if msg.before is not None:
            newest_first = itertools.dropwhile(lambda entry: entry[0] != msg.before,
                                               newest_first)
            next(newest_first)  # ``before`` itself
        shown = [i for i, item in newest_first
                 if (item[6] == msg.state if msg.state else item[6] != "archived")]
        ctx.reply({"items": [self._view(i) for i in shown[:msg.limit]],
                   "unread": self.state.unread, "more": len(shown) > msg.limit})

    @handles(Preferences)
    def preferences(self, msg: Preferences, ctx: Context) -> None:
        changes = prefs_of.check({k: getattr(msg, k) for k in PREFERENCES})
        unknown = set(msg.clear) - {*PREFERENCES, "digest"}
        if unknown:
            raise BadRequest(f"{sorted(unknown)[0]!r} cannot be null")
        stored = {**self.state.prefs, **changes}
        for name in set(msg.clear) - {"digest"}:
            stored.pop(STORED[name], None)
        if msg.digest is not None or "digest" in msg.clear:
            stored["digest"] = _digest_set(stored.get("digest", {}), msg.category,
                                           prefs_of.digest_of(msg.digest))
        digest_only = msg.digest is not None or "digest" in msg.clear
        if (msg.channel, msg.enabled) != (None, None) or (msg.category and not digest_only):
            stored["mute"] = prefs_of.toggled(stored.get("mute", {}), msg.category,
                                              msg.channel, msg.enabled)
        if stored != self.state.prefs:
            ctx.emit(PreferencesSet(stored))
        ctx.reply(prefs_of.view(stored))

    @handles(Profile)
    def profile(self, msg: Profile, ctx: Context) -> None:
        ctx.reply({**prefs_of.view(self.state.prefs), "stored": self.state.prefs})

    @applies(PreferencesSet)
    def _preferences_set(self, ev: PreferencesSet) -> None:
        self.state.prefs = ev.prefs

    @applies(Skipped)
    def _skipped(self, ev: Skipped) -> None:
        self.remember(request_key(ev.id), {"skipped": "muted"})

    @applies(Delivered)
    def _delivered(self, ev: Delivered) -> None:
        s = self.state
        s.items[ev.id] = [ev.category, ev.priority, ev.title, ev.body, ev.data, ev.at_ms, "new"]
        s.unread += 1
        s.seq = ev.seq
        while len(s.items) > KEPT:
            if _unread(s.items.pop(next(iter(s.items)))[6]):
                s.unread -= 1
        self.remember(request_key(ev.id), {"seq": ev.seq})

    @applies(Acked)
    def _acked(self, ev: Acked) -> None:
        item = self.state.items.get(ev.id)
        if item is not None:
            if _unread(item[6]) and not _unread(ev.state):
                self.state.unread -= 1
            item[6] = ev.state
        self.state.seq = ev.seq


def _digest_set(digests: dict[str, Any], category: Any, digest: dict[str, Any] | None
                ) -> dict[str, Any]:
    if not isinstance(category, str) or not 1 <= len(category) <= 64:
        raise BadRequest("'digest' goes with 'category' (1 to 64 characters)")
    rest = {k: v for k, v in digests.items() if k != category}
    return rest if digest is None else {**rest, category: digest}


def _unread(state: str) -> bool:
    return state in ("new", "seen")
