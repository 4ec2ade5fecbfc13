"""A collaborative playlist as a client holds it: ShareDB's client algorithm, sans I/O.

The client keeps the list the server confirmed (``confirmed``, at ``version``), at most one
op *in flight* (sent, not yet acknowledged) and a queue of *pending* local ops. Local edits
apply at once; each op from another author is transformed past the in-flight and pending
ops (and they past it, with the same state-aware ``transform`` the server runs), so the
local list is always ``confirmed`` + in flight + pending, and converges to the server's.

Drive it with the frames of PROTOCOL.md: ``opened(ack of playlist.open)``, ``local(op)``
for an edit, ``next_frame()`` for what to send, ``acked(ack)`` and ``broadcast(content)``
for what arrives, ``resend()`` after a reconnect. Ops are applied strictly in version
order; one that arrives early waits for the versions before it (``gap`` says so).
"""

from __future__ import annotations

import itertools
from typing import Any

from rthub import playlist_ot as ot

NO_OP = {"remove": {"item_id": "\x00none"}}  # names no item a client can create


class PlaylistDoc:
    """One client's copy of one playlist."""

    def __init__(self, playlist: str, client_id: str) -> None:
        self.playlist = playlist
        self.client_id = client_id
        self.version = 0
        self.confirmed: ot.Items = []
        self.items: ot.Items = []  # what the user sees
        self.inflight: tuple[int, ot.Op] | None = None  # (client_seq, op made on `version`)
        self.pending: list[ot.Op] = []
        self._seqs = itertools.count(1)
        self._early: dict[int, dict[str, Any]] = {}  # version -> broadcast content

    # -- state from the server ---------------------------------------------------------------
    def opened(self, ack: dict[str, Any]) -> None:
        """``playlist.open``'s ack: the list at a version (nothing local may be queued)."""
        if self.inflight is not None or self.pending:
            raise RuntimeError("open again only with nothing in flight; use history_op")
        self.version = ack["version"]
        self.confirmed = [(item["item_id"], item["track"]) for item in ack["items"]]
        self.items = list(self.confirmed)
        self._early = {v: c for v, c in self._early.items() if v > self.version}
        self._drain()

    def broadcast(self, content: dict[str, Any]) -> None:
        """A ``playlist.op`` from the stream (anyone's, ours included), in any order."""
        if content["version"] > self.version:
            self._early[content["version"]] = content
            self._drain()

    def history_op(self, entry: dict[str, Any]) -> None:
        """An op from ``playlist.history`` (after a gap): same as a broadcast (it carries
        ``client_id`` and ``client_seq`` too, so our own op is known as ours)."""
        self.broadcast(entry)

    def acked(self, ack: dict[str, Any]) -> None:
        """The ack of our in-flight op: it is version ``ack['version']``."""
        if self.inflight is None or ack["version"] <= self.version:
            return  # already known from the stream
        self._early[ack["version"]] = {"version": ack["version"], "op": ack["op"],
                                       "client_id": self.client_id,
                                       "client_seq": self.inflight[0]}
        self._drain()

    def _drain(self) -> None:
        while (content := self._early.pop(self.version + 1, None)) is not None:
            self._receive(content)

    def _receive(self, content: dict[str, Any]) -> None:
        op = content["op"]
        mine = (self.inflight is not None and content.get("client_id") == self.client_id
                and content.get("client_seq") == self.inflight[0])
        if mine:  # the server applied our in-flight op (transformed) as this version
            self.confirmed = ot.apply(self.confirmed, op)
            if op != self.inflight[1]:  # refused (a duplicate track, say): show the truth
                self.items = self.confirmed
                for local in self.pending:
                    self.items = ot.apply(self.items, local)
            self.inflight = None
        else:
            self._remote(op)
        self.version = content["version"]

    def _remote(self, op: ot.Op) -> None:
        state = self.confirmed
        self.confirmed = ot.apply(self.confirmed, op)
        if self.inflight is not None:
            seq, mine = self.inflight
            self.inflight = (seq, ot.transform(mine, op, state))
            op, state = ot.transform(op, mine, state), ot.apply(state, mine)
        rebased = []
        for local in self.pending:
            rebased.append(ot.transform(local, op, state))
            op, state = ot.transform(op, local, state), ot.apply(state, local)
        self.pending = rebased
        self.items = ot.apply(self.items, op)

    # -- local edits ---------------------------------------------------------------------------
    def local(self, op: dict[str, Any]) -> None:
        """The user edited: show it now, send it when nothing is in flight."""
        self.items = ot.apply(self.items, op)
        self.pending.append(op)

    def next_frame(self) -> dict[str, Any] | None:
        """The ``playlist.op`` content to send now, if any (one op in flight at a time)."""
        if self.inflight is not None:
            return None
        while self.pending and self.pending[0] is None:
            self.pending.pop(0)
        if not self.pending:
            return None
        self.inflight = (next(self._seqs), self.pending.pop(0))
        return self._frame()

    def resend(self) -> dict[str, Any] | None:
        """After a reconnect: the in-flight op again (the server answers a repeat with its
        first result), made on our current version."""
        return self._frame() if self.inflight is not None else None

    def _frame(self) -> dict[str, Any] | None:
        assert self.inflight is not None
        seq, op = self.inflight
        if op is None:  # transformed away while in flight: still owed an ack, so resend
            op = NO_OP  # the protocol's no-op (PROTOCOL.md: an op on a missing item)
        return {"playlist": self.playlist, "base_version": self.version,
                "client_id": self.client_id, "client_seq": seq, "op": op}

    @property
    def idle(self) -> bool:
        return self.inflight is None and not self.pending

    @property
    def gap(self) -> bool:
        """Ops (or our ack) arrived past a version not seen yet. Usually the stream brings it
        a moment later; if not (a host killed between committing and publishing never sends
        it), ask ``playlist.history`` from ``version`` and pass each op to ``history_op``."""
        return bool(self._early)
