"""Presence on an entity's topic, shared by chat rooms and playlists (a mixin).

Every socket following the topic is a *device* of its user: a user's first device announces
``presence.join``, the last one leaving ``presence.leave`` (several tabs are one presence).
Devices are leases the gateways renew every heartbeat interval (one ``presence.refresh`` per
entity per gateway); a device not renewed for 2.5 intervals is dropped, so a gateway that
dies takes its users' presence with it. Over RTHUB_PRESENCE_LIMIT members the entity sends
``presence.occupancy`` counts, at most one a second, instead of per-member events. All of it
is transient state: never checkpointed, rebuilt by the next renewal after a restart.

A kind using it lists ``PRESENCE_MESSAGES`` / ``PRESENCE_EVENTS`` among its own, has
``present`` and ``occupancy_pending`` transient state fields, and says who may be present
(``_may_be_present``), who may list (``_require_reader``), how many members it has
(``_member_count``), and what names it in events (``_scope``); ``actors.kinds.members``
answers those for a kind with roles. ``Entity`` checks both at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from actors.entity import Context, applies, handles
from actors.kinds.times import iso
from actors.messages import Event, Message

OCCUPANCY_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class ListPresence(Message):
    type: ClassVar[str] = "presence.list"
    user: str



@dataclass(frozen=True, slots=True)
class Attach(Message):
    """A device (connection) of ``user`` follows the topic."""

    type: ClassVar[str] = "presence.attach"
    user: str
    device: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Detach(Message):
    type: ClassVar[str] = "presence.detach"
    user: str
    device: str


@dataclass(frozen=True, slots=True)
class Refresh(Message):
    """A gateway's devices still here ([user, device, name] each): renews their lease."""

    type: ClassVar[str] = "presence.refresh"
    devices: list[list[str]]


@dataclass(frozen=True, slots=True)
class Sweep(Message):
    """Timer: drop devices whose lease ran out (their gateway died without detaching)."""

    type: ClassVar[str] = "presence.sweep"


@dataclass(frozen=True, slots=True)
class FlushOccupancy(Message):
    type: ClassVar[str] = "presence.flush"



@dataclass(frozen=True, slots=True)
class DeviceSeen(Event):
    durable: ClassVar[bool] = False
    user: str
    device: str
    name: str
    expires_ms: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class DeviceGone(Event):
    durable: ClassVar[bool] = False
    user: str
    device: str


@dataclass(frozen=True, slots=True)
class OccupancyPending(Event):
    durable: ClassVar[bool] = False
    pending: bool


PRESENCE_MESSAGES = (ListPresence, Attach, Detach, Refresh, Sweep, FlushOccupancy)
PRESENCE_EVENTS = (DeviceSeen, DeviceGone, OccupancyPending)


class Presence:
    """Handlers and appliers of presence; mixed into an ``Entity`` kind."""

    __slots__ = ()
    state_needs: ClassVar[tuple[str, ...]] = ("present", "occupancy_pending")
    kind_provides: ClassVar[tuple[str, ...]] = (
        "_may_be_present", "_require_reader", "_member_count", "_scope")
    state: Any  # the kind says who may be present, who may list, how many, what names it

    # -- handlers --------------------------------------------------------------------------
    def _lease_ms(self, ctx: Context) -> int:
        return int(ctx.settings.ws_heartbeat_interval * 2500)  # 2.5 refresh intervals

    @handles(Attach)
    def attach(self, msg: Attach, ctx: Context) -> None:
        if not self._may_be_present(msg.user):
            return  # not (or no longer) a member: no presence
        self._device_seen(msg.user, msg.device, msg.name, ctx)
        ctx.schedule(self._lease_ms(ctx) / 1000 + 0.1, Sweep())

    @handles(Refresh)
    def refresh(self, msg: Refresh, ctx: Context) -> None:
        announced: set[str] = set()
        for item in msg.devices:
            if len(item) == 3 and self._may_be_present(item[0]):
                self._device_seen(item[0], item[1], item[2], ctx, announced)
        ctx.schedule(self._lease_ms(ctx) / 1000 + 0.1, Sweep())

    @handles(Detach)
    def detach(self, msg: Detach, ctx: Context) -> None:
        if msg.device in self.state.present.get(msg.user, {}).get("devices", {}):
            self._devices_gone(msg.user, [msg.device], ctx)

    @handles(Sweep)
    def sweep(self, msg: Sweep, ctx: Context) -> None:
        for user, entry in list(self.state.present.items()):
            expired = [d for d, expires in entry["devices"].items() if expires <= ctx.now_ms]
            self._devices_gone(user, expired, ctx)

    @handles(FlushOccupancy)
    def flush_occupancy(self, msg: FlushOccupancy, ctx: Context) -> None:
        ctx.emit(OccupancyPending(False))
        ctx.publish("presence.occupancy", {**self._scope(), "online": len(self.state.present),
                                           "members": self._member_count()})

    @handles(ListPresence)
    def list_presence(self, msg: ListPresence, ctx: Context) -> None:
        self._require_reader(msg.user)
        members = [{"user": user, "name": entry["name"], "since": iso(entry["since"]),
                    "devices": len(entry["devices"])}
                   for user, entry in sorted(self.state.present.items())]
        ctx.reply({"members": members, "online": len(members), "total": self._member_count()})

    # -- helpers ---------------------------------------------------------------------------
    def _device_seen(self, user: str, device: str, name: str, ctx: Context,
                     announced: set[str] | None = None) -> None:
        """Several tabs are one presence: only a user's first device announces them."""
        announced = set() if announced is None else announced
        ctx.emit(DeviceSeen(user, device, name, ctx.now_ms + self._lease_ms(ctx), ctx.now_ms))
        if user not in self.state.present and user not in announced:
            announced.add(user)
            self._presence_changed("presence.join", user, name, ctx)

    def _devices_gone(self, user: str, devices: list[str], ctx: Context) -> None:
        """... and only their last device leaving ends it."""
        entry = self.state.present.get(user)
        if entry is None or not devices:
            return
        for device in devices:
            ctx.emit(DeviceGone(user, device))
        if set(entry["devices"]) <= set(devices):
            self._presence_changed("presence.leave", user, entry["name"], ctx)

    def _presence_changed(self, event_type: str, user: str, name: str, ctx: Context) -> None:
        if self._member_count() <= ctx.settings.presence_limit:
            ctx.publish(event_type, {**self._scope(), "user": user, "name": name})
        elif not self.state.occupancy_pending[0]:
            ctx.emit(OccupancyPending(True))
            ctx.schedule(OCCUPANCY_EVERY_S, FlushOccupancy())

    # -- appliers --------------------------------------------------------------------------
    @applies(DeviceSeen)
    def _device_seen_applied(self, ev: DeviceSeen) -> None:
        entry = self.state.present.setdefault(
            ev.user, {"name": ev.name, "since": ev.at_ms, "devices": {}})
        entry["devices"][ev.device] = ev.expires_ms

    @applies(DeviceGone)
    def _device_gone_applied(self, ev: DeviceGone) -> None:
        entry = self.state.present.get(ev.user)
        if entry is not None:
            entry["devices"].pop(ev.device, None)
            if not entry["devices"]:
                del self.state.present[ev.user]

    @applies(OccupancyPending)
    def _occupancy_pending(self, ev: OccupancyPending) -> None:
        self.state.occupancy_pending[0] = ev.pending
