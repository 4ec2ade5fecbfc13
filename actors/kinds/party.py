"""ListeningParty: one per party. The authoritative playback state, the shared queue, the
host and the mode, and each device's quality tier.

Playback is a statement about time: ``party.state {track, position_ms, playing, volume,
at_server_ms, queue_version}`` means "at server time ``at_server_ms`` the track is at
``position_ms``". Each control sets ``at_server_ms`` RTHUB_PARTY_LEAD_MS in the future, so
every device, converting with its own clock offset (``client.clock``), starts together.
Controls are applied in the party's order; the later one wins and everyone sees the same
final state. The queue (``party_queue``) uses the playlist's rules (stable item ids; an op on a
missing item is a no-op) and its version is in every state; what each device reports (its
position, its bandwidth) is ``party_devices``'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.channels import Channel
from actors.entity import Context, Entity, applies, handles, transient
from actors.kinds.party_devices import Devices
from actors.kinds.party_queue import SharedQueue
from actors.kinds.party_types import (
    ACTIONS,
    MODES,
    Authorize,
    Control,
    Create,
    Created,
    End,
    Ended,
    HandOver,
    HostChanged,
    IdleCheck,
    Join,
    Joined,
    Leave,
    Left,
    Listened,
    Played,
    Quality,
    Queued,
    QueueOp,
    RecommendationsAsked,
    RecommendationsShown,
    Recommended,
    Remove,
    Report,
    TierSet,
    WentEmpty,
)
from actors.kinds.presence import (
    OCCUPANCY_EVERY_S,
    PRESENCE_EVENTS,
    PRESENCE_MESSAGES,
    FlushOccupancy,
    OccupancyPending,
    Presence,
)
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound


class ListeningParty(SharedQueue, Devices, Presence, Entity):
    kind = "party"
    streams = True
    channel = Channel("party", "party", authorize=Authorize, create=Create, join=Join,
                      leave=Leave, direct=(Control, QueueOp, Quality, Report, HandOver, Remove,
                                           End), presence=True)
    messages = (Create, Join, Leave, Authorize, Control, QueueOp, Quality, Report, HandOver,
                Remove, End, IdleCheck, Recommended, *PRESENCE_MESSAGES)
    events = (Created, Joined, Left, Played, Listened, Queued, HostChanged, Ended,
              RecommendationsShown, TierSet, WentEmpty, RecommendationsAsked, *PRESENCE_EVENTS)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        name: str = ""
        mode: str = ""
        host: str = ""
        vote_order: bool = False
        ended: bool = False
        members: dict[str, None] = field(default_factory=dict)
        track: Any = None
        item_id: str | None = None
        position_ms: int = 0
        playing: bool = False
        volume: int = 80
        at_server_ms: int = 0
        queue: list[list[Any]] = field(default_factory=list)  # [item_id, track, by, voters]
        queue_version: int = 0
        seq: int = 0
        played: list[Any] = field(default_factory=list)  # recent tracks, for recommendations
        present: dict[str, dict[str, Any]] = transient(dict)
        occupancy_pending: list[bool] = transient(lambda: [False])
        tiers: dict[str, int] = transient(dict)  # device -> bitrate tier
        empty_since_ms: int = transient(int)  # when the last present user left
        asked_version: int = transient(int)  # queue_version of the latest recommendations ask

    # -- permissions ---------------------------------------------------------------------------
    def _member(self, user: str) -> None:
        if not self.state.host:
            raise NotFound(f"party {self.key[2]!r} does not exist")
        if self.state.ended:
            raise Conflict(f"party {self.key[2]!r} has ended")
        if user not in self.state.members:
            raise Forbidden(f"{user} is not in party {self.key[2]!r}; join it first")

    def _host(self, user: str, what: str) -> None:
        self._member(user)
        if user != self.state.host:
            raise Forbidden(f"only the host may {what}")

    def _may_control(self, user: str) -> None:
        self._member(user)
        if self.state.mode == "host_only" and user != self.state.host:
            raise Forbidden("in a host_only party only the host controls playback")

    # -- presence (mixin) ----------------------------------------------------------------------
    def _may_be_present(self, user: str) -> bool:
        return user in self.state.members and not self.state.ended

    def _require_reader(self, user: str) -> None:
        self._member(user)

    def _member_count(self) -> int:
        return len(self.state.members)

    def _scope(self) -> dict[str, str]:
        return {"party": self.key[2]}

    def _presence_changed(self, event_type: str, user: str, name: str, ctx: Context) -> None:
        super()._presence_changed(event_type, user, name, ctx)
        if event_type == "presence.leave" and set(self.state.present) <= {user}:
            ctx.emit(WentEmpty(ctx.now_ms))  # a later leave restarts the idle clock
            ctx.schedule(ctx.settings.party_idle_s, IdleCheck(ctx.now_ms))

    def _occupancy_soon(self, ctx: Context) -> None:
        """A membership change not announced one by one: the next occupancy count covers it."""
        if not self.state.occupancy_pending[0]:
            ctx.emit(OccupancyPending(True))
            ctx.schedule(OCCUPANCY_EVERY_S, FlushOccupancy())

    # -- views ---------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        s = self.state
        return {"party": self.key[2], "track": s.track, "item_id": s.item_id,
                "position_ms": s.position_ms, "playing": s.playing, "volume": s.volume,
                "at_server_ms": s.at_server_ms, "queue_version": s.queue_version,
                "host": s.host, "mode": s.mode}

    def position_at(self, server_ms: float) -> float:
        """Where the track is at ``server_ms`` by the current state."""
        s = self.state
        if s.playing and server_ms > s.at_server_ms:
            return s.position_ms + (server_ms - s.at_server_ms)
        return s.position_ms

    # -- lifecycle -----------------------------------------------------------------------------
    @handles(Create)
    def create(self, msg: Create, ctx: Context) -> None:
        if self.state.host:
            raise Conflict(f"party {self.key[2]!r} already exists")
        if msg.mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}")
        if not msg.name.strip() or len(msg.name) > 200:
            raise BadRequest("name must be 1 to 200 characters")
        ctx.emit(Created(msg.name, msg.mode, msg.user, msg.vote_order, ctx.now_ms))
        ctx.emit(Joined(msg.user, 0))
        ctx.reply({"party_id": self.key[2]})

    @handles(Join)
    def join(self, msg: Join, ctx: Context) -> None:
        if not self.state.host:
            raise NotFound(f"party {self.key[2]!r} does not exist")
        if self.state.ended:
            raise Conflict(f"party {self.key[2]!r} has ended")
        if msg.user not in self.state.members:
            if len(self.state.members) < ctx.settings.presence_limit:
                seq = ctx.stream("party.joined", {"party": self.key[2], "user": msg.user})
                ctx.emit(Joined(msg.user, seq))
            else:  # a concert: a join per listener to every listener would be quadratic;
                ctx.emit(Joined(msg.user, 0))  # the occupancy counts say how many are here
                self._occupancy_soon(ctx)
        ctx.reply({"state": self.view(), "queue": self._queue_view()})

    @handles(Authorize)
    def authorize(self, msg: Authorize, ctx: Context) -> None:
        self._member(msg.user)
        ctx.reply({"state": self.view()})

    @handles(Leave)
    def leave(self, msg: Leave, ctx: Context) -> None:
        self._member(msg.user)
        self._remove(msg.user, msg.user, ctx, msg.device)
        ctx.reply({"party": self.key[2]})

    @handles(Remove)
    def remove(self, msg: Remove, ctx: Context) -> None:
        self._host(msg.user, "remove guests")
        if msg.target == self.state.host or msg.target not in self.state.members:
            raise BadRequest(f"{msg.target} is not a guest of this party")
        self._remove(msg.target, msg.user, ctx)
        ctx.reply({"party": self.key[2], "removed": msg.target})

    def _remove(self, user: str, by: str, ctx: Context, device: str = "") -> None:
        """``party.left`` is announced like ``party.joined``: one by one up to
        RTHUB_PRESENCE_LIMIT members, above it only when some socket must lose the topic
        through it (a kicked guest's, or another socket of the user leaving); the occupancy
        counts say how many are left."""
        devices = list(self.state.present.get(user, {}).get("devices", {}))
        if (len(self.state.members) <= ctx.settings.presence_limit or by != user
                or set(devices) - {device}):
            seq = ctx.stream("party.left", {"party": self.key[2], "user": user, "by": by},
                             removes=user)
            ctx.emit(Left(user, by, seq))
        else:
            ctx.emit(Left(user, by, 0))
            if not devices:  # no presence.leave follows to trigger the count
                self._occupancy_soon(ctx)
        self._devices_gone(user, devices, ctx)

    @handles(HandOver)
    def hand_over(self, msg: HandOver, ctx: Context) -> None:
        self._host(msg.user, "hand the party over")
        if msg.target not in self.state.members:
            raise BadRequest(f"{msg.target} is not in this party")
        seq = ctx.stream("party.host", {"party": self.key[2], "host": msg.target})
        ctx.emit(HostChanged(msg.target, seq))
        ctx.reply({"party": self.key[2], "host": msg.target})

    @handles(End)
    def end(self, msg: End, ctx: Context) -> None:
        self._host(msg.user, "end the party")
        self._end(msg.user, ctx)
        ctx.reply({"party": self.key[2], "ended": True})

    @handles(IdleCheck)
    def idle_check(self, msg: IdleCheck, ctx: Context) -> None:
        s = self.state
        if (not s.ended and s.host and not s.present
                and msg.since_ms == s.empty_since_ms):  # empty ever since this timer's leave
            self._end("", ctx)

    def _end(self, by: str, ctx: Context) -> None:
        seq = ctx.stream("party.ended", {"party": self.key[2], "by": by or "idle"})
        ctx.emit(Ended(by, seq))

    # -- playback ------------------------------------------------------------------------------
    @handles(Control)
    def control(self, msg: Control, ctx: Context) -> None:
        self._may_control(msg.user)
        if msg.action not in ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
        s = self.state
        at = ctx.now_ms + ctx.settings.party_lead_ms
        track, item_id, playing, volume = s.track, s.item_id, s.playing, s.volume
        position = int(self.position_at(at))
        queue_after = None
        if msg.action == "play":
            if track is None:
                if not s.queue:
                    raise Conflict("nothing to play: add a track to the queue")
                item_id, track = s.queue[0][0], s.queue[0][1]
                queue_after, position = s.queue[1:], 0
            playing = True
        elif msg.action == "pause":
            playing = False
        elif msg.action == "seek":
            if msg.position_ms is None or msg.position_ms < 0:
                raise BadRequest("seek needs 'position_ms' >= 0")
            position = msg.position_ms
        elif msg.action == "volume_change":
            if msg.volume is None or not 0 <= msg.volume <= 100:
                raise BadRequest("volume_change needs 'volume' from 0 to 100")
            volume = msg.volume
        else:  # skip
            if s.queue:
                item_id, track = s.queue[0][0], s.queue[0][1]
                queue_after, playing = s.queue[1:], True
            else:
                item_id, track, playing = None, None, False
            position = 0
        if queue_after is not None:
            self._queue_changed(queue_after, msg.user, "next", ctx)
        state = {**self.view(), "track": track, "item_id": item_id, "position_ms": position,
                 "playing": playing, "volume": volume, "at_server_ms": at,
                 "queue_version": s.queue_version + (1 if queue_after is not None else 0),
                 "by": msg.user, "action": msg.action}
        if msg.action == "skip":  # what was skipped, and how far it had played
            state["skipped"], state["skipped_at_ms"] = s.track, int(self.position_at(at))
        seq = ctx.stream("party.state", state)
        ctx.emit(Played(track, item_id, position, playing, volume, at, msg.user, msg.action,
                        seq))
        self._listened(msg.action, track, position, msg.user, ctx)
        ctx.reply({"state": state})

    def _listened(self, action: str, track: Any, position: int, user: str, ctx: Context
                  ) -> None:
        """The listening events a control makes: the track skipped and how far it had
        played, a track starting, a seek's target."""
        s = self.state
        if action == "skip" and s.track is not None:
            ctx.emit(Listened("skip", s.track, int(self.position_at(ctx.now_ms)), user,
                              ctx.now_ms))
        if track is not None and (action == "skip" or (action == "play" and s.track is None)):
            ctx.emit(Listened("play", track, position, user, ctx.now_ms))
        elif action == "seek" and track is not None:
            ctx.emit(Listened("seek", track, position, user, ctx.now_ms))

    # -- appliers ------------------------------------------------------------------------------
    @applies(Created)
    def _created(self, ev: Created) -> None:
        s = self.state
        s.name, s.mode, s.host, s.vote_order = ev.name, ev.mode, ev.host, ev.vote_order

    @applies(Joined)
    def _joined(self, ev: Joined) -> None:
        self.state.members[ev.user] = None
        self.state.seq = max(self.state.seq, ev.seq)

    @applies(Left)
    def _left(self, ev: Left) -> None:
        self.state.members.pop(ev.user, None)
        self.state.seq = max(self.state.seq, ev.seq)

    @applies(Played)
    def _played(self, ev: Played) -> None:
        s = self.state
        if ev.track is not None and ev.track != s.track:
            s.played = [*s.played[-49:], ev.track]
        s.track, s.item_id, s.position_ms, s.playing = (ev.track, ev.item_id, ev.position_ms,
                                                        ev.playing)
        s.volume, s.at_server_ms, s.seq = ev.volume, ev.at_server_ms, ev.seq

    @applies(Listened)
    def _listened_applied(self, ev: Listened) -> None:
        """Nothing to change: the event is for the listening log (``storage.listening``)."""

    @applies(HostChanged)
    def _host_changed(self, ev: HostChanged) -> None:
        self.state.host, self.state.seq = ev.host, ev.seq

    @applies(Ended)
    def _ended(self, ev: Ended) -> None:
        self.state.ended, self.state.playing, self.state.seq = True, False, ev.seq

    @applies(WentEmpty)
    def _went_empty(self, ev: WentEmpty) -> None:
        self.state.empty_since_ms = ev.at_ms
