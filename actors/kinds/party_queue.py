"""A listening party's shared queue and its recommendations (a mixin of ``ListeningParty``).

Guests add and vote; in a ``host_only`` party only the host removes and moves. Ops follow the
playlist's rules (stable item ids; an op on a missing item is a no-op); with ``vote_order``
the queue is sorted by votes. When a change leaves fewer than ``LOW_QUEUE`` items the party
asks the ``recommend`` service, and pushes its answer if it is still wanted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from actors.entity import Context, applies, handles
from actors.kinds.party_types import (
    Queued,
    QueueOp,
    RecommendationsAsked,
    RecommendationsShown,
    Recommended,
)
from actors.kinds.tracks import track_id
from rthub import playlist_ot as ot
from rthub.errors import BadRequest, Conflict, Forbidden

MAX_QUEUE = 500
LOW_QUEUE = 2  # fewer items than this after a change: ask for recommendations


class SharedQueue:
    """Queue ops, recommendations and their appliers."""

    __slots__ = ()
    state_needs: ClassVar[tuple[str, ...]] = (
        "queue", "queue_version", "played", "asked_version", "mode", "host", "vote_order",
        "ended", "seq")
    kind_provides: ClassVar[tuple[str, ...]] = ("_member",)
    state: Any
    key: tuple[str, str, str]

    def _queue_view(self) -> list[dict[str, Any]]:
        return [{"item_id": i, "track": t, "added_by": by, "votes": len(voters)}
                for i, t, by, voters in self.state.queue]

    @handles(QueueOp)
    def queue_op(self, msg: QueueOp, ctx: Context) -> None:
        self._member(msg.user)
        s = self.state
        queue = [list(item) for item in s.queue]
        item_id = msg.item_id
        if msg.op == "add":
            if msg.track is None or len(repr(msg.track)) > 1000:
                raise BadRequest("add needs a 'track'")
            if len(queue) >= MAX_QUEUE:
                raise Conflict(f"the queue is full ({MAX_QUEUE} tracks)")
            item_id = item_id or ctx.new_token(8)
            if any(item[0] == item_id for item in queue):  # a resend of an add: same answer
                ctx.reply({"item_id": item_id, "queue_version": s.queue_version})
                return
            queue.append([item_id, msg.track, msg.user, []])
        elif msg.op in ("remove", "move"):
            if s.mode == "host_only" and msg.user != s.host:
                raise Forbidden("in a host_only party guests may only add and vote")
            if not msg.item_id:
                raise BadRequest(f"{msg.op} needs an 'item_id'")
            pairs = [(item[0], item) for item in queue]
            op = ({"remove": {"item_id": msg.item_id}} if msg.op == "remove" else
                  {"move": {"item_id": msg.item_id, "to_index": msg.to_index or 0}})
            queue = [item for _, item in ot.apply(pairs, op)]  # missing item: no-op
        elif msg.op == "vote":
            for item in queue:
                if item[0] == msg.item_id and msg.user not in item[3]:
                    item[3] = [*item[3], msg.user]  # one vote per user per item
        else:
            raise BadRequest("op must be one of add, remove, move, vote")
        if s.vote_order:
            queue.sort(key=lambda item: -len(item[3]))  # stable: first added first on ties
        self._queue_changed(queue, msg.user, msg.op, ctx)
        ctx.reply({"item_id": item_id, "queue_version": s.queue_version + 1})

    def _queue_changed(self, queue: list[list[Any]], by: str, op: str, ctx: Context) -> None:
        s = self.state
        version = s.queue_version + 1
        seq = ctx.stream("party.queue", {
            "party": self.key[2], "queue_version": version, "op": op, "by": by,
            "queue": [{"item_id": i, "track": t, "added_by": a, "votes": len(v)}
                      for i, t, a, v in queue]})
        ctx.emit(Queued(queue, version, by, op, seq))
        if len(queue) < LOW_QUEUE and op != "add":
            ctx.emit(RecommendationsAsked(version))
            ctx.call("recommend", {"seed": [*s.played[-5:], *(t for _, t, _, _ in queue)],
                                   "exclude": [t for _, t, _, _ in queue], "count": 5,
                                   "user": s.host},
                     Recommended, queue_version=version)

    @handles(Recommended)
    def recommended(self, msg: Recommended, ctx: Context) -> None:
        """An answer made for an older queue is judged against the queue now: dropped when a
        newer ask is out (its answer will come) or the queue is no longer low; otherwise
        pushed without the tracks queued since."""
        s = self.state
        if (msg.error or s.ended or msg.queue_version != s.asked_version
                or len(s.queue) >= LOW_QUEUE):
            return
        queued = {track_id(t) for _, t, _, _ in s.queue}
        tracks = [t for t in msg.result.get("tracks", []) if track_id(t) not in queued]
        if not tracks:
            return
        seq = ctx.stream("party.recommendations", {
            "party": self.key[2], "tracks": tracks,
            "model": msg.result.get("model", "recent"),
            "fallback": bool(msg.result.get("fallback", False))})
        ctx.emit(RecommendationsShown(seq))

    # -- appliers ---------------------------------------------------------------------------
    @applies(Queued)
    def _queued(self, ev: Queued) -> None:
        self.state.queue, self.state.queue_version = ev.queue, ev.queue_version
        self.state.seq = ev.seq

    @applies(RecommendationsShown)
    def _recommendations_shown(self, ev: RecommendationsShown) -> None:
        self.state.seq = ev.seq

    @applies(RecommendationsAsked)
    def _recommendations_asked(self, ev: RecommendationsAsked) -> None:
        self.state.asked_version = ev.queue_version
