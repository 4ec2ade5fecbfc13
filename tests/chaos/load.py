"""Steady durable load, self-healing clients, and the checker of the chaos suite (issue 18).

Senders write durable messages (``chat.send`` to rooms, ``playlist.op`` to playlists,
``party.queue`` add/remove to parties), each with its idempotency key, resending the same
request after ``unavailable``, ``internal`` or a dropped socket until it is acknowledged; every
acknowledgement is recorded with its identity in the topic (a room message's ``seq``, a
playlist's ``version``, a party queue's ``queue_version``). Subscribers follow every topic,
reconnect when their socket drops (resume token first, else ``subscribe`` with ``since``) and
reload from history when told ``recovered: false``. Their view is what they were delivered
(after dropping ``seq <= last seen``) plus what they reloaded.

The checker then says, per subscriber and topic, which acknowledged messages are missing from
the view (and whether each is durable in history), how many duplicates and out-of-order
events were delivered, which ``seq`` jumps came without ``recovered: false``, and how long
each client took to recover from a fault. It reports what it sees; it never fills a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from benchmarks.loadgen import Socket
from tests.chaos.faults import Fault
from tests.serve.client import png

log = logging.getLogger(__name__)

RETRYABLE = {"unavailable", "internal", "rate_limited"}


class NoWelcome(ConnectionError):
    """The server closed the socket before its welcome (a refused resume: 4403; the
    session's host unavailable: 1011)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"no welcome (close code {code})")
        self.code = code


class Disconnected(Exception):
    """The socket dropped before the reply: the outcome is unknown, resend the same key."""


class Refused(Exception):
    """An ``error`` that a resend will not change (``bad_request``, ``forbidden`` ...)."""

    def __init__(self, frame_type: str, content: dict[str, Any]) -> None:
        super().__init__(f"{frame_type}: {content}")
        self.content = content


class ChaosClient:
    """One user's socket that comes back by itself: on a drop it reconnects (with its resume
    token when it has one) and calls ``on_connected``; pending requests fail ``Disconnected``.
    Built on the load generator's raw socket, cheap enough for 1,000+ frames/s."""

    _ids = itertools.count(1)

    def __init__(self, url: str, token: str, name: str, resume: bool = True) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, \
            parts.path
        self.token, self.name, self.use_resume = token, name, resume
        self.sock: Socket | None = None
        self.connected = asyncio.Event()
        self.pending: dict[int, asyncio.Future] = {}
        self.on_event: Callable[[dict[str, Any]], None] = lambda frame: None
        self.on_connected: Callable[[dict[str, Any]], Any] | None = None
        self.resume_token: str | None = None
        self.drops: list[float] = []  # when the socket was seen closed
        self.reconnects: list[tuple[float, bool]] = []  # (when, resumed)
        self.resume_refusals: list[str] = []  # why a resume by token failed
        self._stopping = False
        self._keeper: asyncio.Task | None = None
        self._welcome: asyncio.Future | None = None
        self._hooks: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self._open(resume=False)
        self._keeper = asyncio.create_task(self._keep(), name=f"keep-{self.name}")

    async def _open(self, resume: bool) -> dict[str, Any]:
        query = f"?resume={self.resume_token}" if resume and self.resume_token else ""
        loop = asyncio.get_running_loop()
        self._welcome = loop.create_future()
        sock = await Socket.open(self.host, self.port, self.path + query,
                                 {"Authorization": f"Bearer {self.token}"})
        self.sock = sock
        sock.on_text = self._on_text
        while not sock.frames.empty():  # frames that came with the upgrade's response
            self._on_text(sock.frames.get_nowait())
        closed = asyncio.ensure_future(sock.closed.wait())
        done, _ = await asyncio.wait({self._welcome, closed}, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if self._welcome not in done:
            sock.close()
            raise NoWelcome(sock.close_code)
        welcome = self._welcome.result()
        self.resume_token = welcome["content"].get("resume_token")
        self.connected.set()
        return welcome

    def _on_text(self, text: str) -> None:
        frame = orjson.loads(text)
        kind = frame.get("type")
        if kind == "session.welcome":
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_result(frame)
            return
        if kind == "ping":
            self.send_nowait("pong", {})
            return
        ref = frame.get("ref")
        if ref is not None and kind in ("ack", "error"):
            waiter = self.pending.pop(ref, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
            return
        self.on_event(frame)

    async def _keep(self) -> None:
        """Reconnect whenever the socket drops, until ``stop``."""
        while not self._stopping:
            assert self.sock is not None
            await self.sock.closed.wait()
            if self._stopping:
                return
            self.connected.clear()
            self.drops.append(time.monotonic())
            for waiter in self.pending.values():
                if not waiter.done():
                    waiter.set_exception(Disconnected())
            self.pending.clear()
            delay, unavailable = 0.05, 0
            while not self._stopping:
                try:
                    welcome = await self._open(resume=self.use_resume)
                except (OSError, ConnectionError, TimeoutError) as err:
                    # as a client SDK does: the token is dropped only when the server
                    # refuses it (4403), or keeps answering 1011 (unavailable) for ~10 s; a
                    # connection that failed before any answer is tried again with it
                    code = err.code if isinstance(err, NoWelcome) else None
                    unavailable += code == 1011
                    if self.resume_token and self.use_resume and (
                            code == 4403 or unavailable > 10):
                        self.resume_refusals.append(
                            f"{err} after {time.monotonic() - self.drops[-1]:.1f} s")
                        self.resume_token = None  # refused: start a new session
                    log.info("%s reconnect failed after %.1f s: %r", self.name,
                             time.monotonic() - self.drops[-1], err)
                    await asyncio.sleep(delay)  # the server is down: back off, try again
                    delay = min(delay * 2, 1.0)
                    continue
                resumed = bool(welcome["content"].get("resumed"))
                log.info("%s back after %.1f s (resumed: %s)", self.name,
                         time.monotonic() - self.drops[-1], resumed)
                self.reconnects.append((time.monotonic(), resumed))
                if self.on_connected is not None:
                    # in a task of its own: it sends requests, whose replies this loop reads
                    self._hooks.add(task := asyncio.create_task(self.on_connected(welcome)))
                    task.add_done_callback(self._hooks.discard)
                break

    @property
    def busy(self) -> bool:
        """Reconnecting, or running what a reconnect started (following its topics again)."""
        return not self.connected.is_set() or bool(self._hooks)

    def send_nowait(self, frame_type: str, content: dict[str, Any]) -> int:
        frame_id = next(self._ids)
        if self.sock is None or self.sock.closed.is_set():
            raise Disconnected()
        self.sock.send(orjson.dumps({"type": frame_type, "id": frame_id,
                                     "content": content}).decode())
        return frame_id

    async def request(self, frame_type: str, content: dict[str, Any],
                      within: float = 30) -> dict[str, Any]:
        """One attempt: the ``ack``/``error`` frame, or ``Disconnected``."""
        await asyncio.wait_for(self.connected.wait(), within)
        waiter = asyncio.get_running_loop().create_future()
        frame_id = self.send_nowait(frame_type, content)
        self.pending[frame_id] = waiter
        try:
            return await asyncio.wait_for(waiter, within)
        except TimeoutError:
            self.pending.pop(frame_id, None)
            raise Disconnected() from None

    async def call(self, frame_type: str, content: dict[str, Any],
                   deadline_s: float = 90) -> tuple[dict[str, Any], int]:
        """Resend the same request (same idempotency key) until it is acknowledged; the ack's
        content and the number of attempts. Raises ``Refused`` for a final error."""
        give_up = time.monotonic() + deadline_s
        attempts = 0
        while True:
            attempts += 1
            left = give_up - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{frame_type} not acknowledged in {deadline_s} s")
            try:
                frame = await self.request(frame_type, content, within=min(left, 20))
            except (Disconnected, TimeoutError):
                continue
            if frame["type"] == "ack":
                return frame["content"], attempts
            error = frame["content"]
            if error.get("code") not in RETRYABLE:
                raise Refused(frame_type, error)
            await asyncio.sleep(min(error.get("retry_after_ms") or 200, 2000) / 1000)

    async def stop(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self.sock is not None:
            self.sock.close()


# -- what a topic is ---------------------------------------------------------------------

@dataclass(frozen=True)
class Topic:
    """A room, playlist or party under load; ``key`` is its entity id."""

    kind: str  # "room" | "playlist" | "party"
    key: str

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.key}"


def identity(topic: Topic, frame: dict[str, Any]) -> int | None:
    """The acknowledged message an event carries (None for the topic's other events)."""
    content = frame.get("content") or {}
    if topic.kind == "room" and frame.get("type") == "chat.message":
        return frame.get("seq")
    if topic.kind == "playlist" and frame.get("type") == "playlist.op":
        return content.get("version")
    if topic.kind == "party" and frame.get("type") == "party.queue":
        return content.get("queue_version")
    return None


@dataclass
class TopicView:
    """What one subscriber has of one topic."""

    topic: Topic
    epoch: str | None = None
    last_seq: int = 0
    ids: set[int] = field(default_factory=set)  # identities delivered or reloaded
    snapshot_upto: int = 0  # a party reload: every queue_version <= this is in its state
    seen: set[int] = field(default_factory=set)  # seqs accepted
    duplicates: int = 0  # delivered again (seq <= last seen, seen before)
    out_of_order: int = 0  # seq <= last seen but never seen: it came late
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (last seen, next) jumps
    reloads: int = 0
    not_recovered: int = 0  # recovered: false answers

    def has(self, ident: int) -> bool:
        return ident in self.ids or ident <= self.snapshot_upto


class Subscriber:
    """A user following every topic through a ``ChaosClient``; keeps a ``TopicView`` each."""

    def __init__(self, client: ChaosClient, topics: list[Topic],
                 reload_on_gap: bool = False) -> None:
        self.client, self.reload_on_gap = client, reload_on_gap
        self.views = {t.name: TopicView(t) for t in topics}
        # per topic, when each new (accepted) event arrived
        self.event_times: dict[str, list[float]] = defaultdict(list)
        self._reloading: set[str] = set()
        self._reload_again: set[str] = set()  # asked while a reload ran: once more after it
        self._tasks: set[asyncio.Task] = set()
        client.on_event = self._event
        client.on_connected = self._reconnected

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> bool:
        """Its socket coming back, or a topic followed again or reloaded from history: its
        views may still grow, however long none has changed."""
        return self.client.busy or bool(self._tasks)

    async def follow(self) -> None:
        await asyncio.gather(*(self._subscribe(view) for view in self.views.values()))

    async def _subscribe(self, view: TopicView) -> None:
        content: dict[str, Any] = {"topic": view.topic.name}
        if view.epoch is not None:
            content["since"] = {"epoch": view.epoch, "seq": view.last_seq}
        ack, _ = await self.client.call("subscribe", content)
        self._position(view, ack, asked_since=view.epoch is not None)

    def _position(self, view: TopicView, ack: dict[str, Any], asked_since: bool) -> None:
        """A subscribe ack or a resume's ``subscribed``: recovered, or reload from history."""
        if asked_since and not ack.get("recovered"):
            view.not_recovered += 1
            same_epoch = view.epoch == ack["epoch"]
            view.epoch = ack["epoch"]
            view.last_seq = max(view.last_seq, ack["seq"]) if same_epoch else ack["seq"]
            self._spawn(self._reload(view))
        elif not asked_since:
            view.epoch, view.last_seq = ack["epoch"], max(view.last_seq, ack["seq"])

    def _event(self, frame: dict[str, Any]) -> None:
        topic = frame.get("topic")
        view = self.views.get(topic) if topic else None
        if view is None:
            return
        if frame.get("type") == "subscribed":
            self._position(view, frame["content"], asked_since=True)
            return
        seq = frame.get("seq")
        if seq is None:
            return  # ephemeral
        if seq <= view.last_seq:
            if seq in view.seen:
                view.duplicates += 1
            else:
                view.out_of_order += 1
            return
        if seq > view.last_seq + 1 and view.last_seq:
            view.gaps.append((view.last_seq, seq))
            if self.reload_on_gap:
                self._spawn(self._reload(view))
        view.last_seq = seq
        view.seen.add(seq)
        ident = identity(view.topic, frame)
        if ident is not None:
            view.ids.add(ident)
        self.event_times[view.topic.name].append(time.monotonic())

    async def _reconnected(self, welcome: dict[str, Any]) -> None:
        """A resumed session gets ``subscribed`` frames by itself; a new one subscribes with
        ``since`` per topic."""
        if welcome["content"].get("resumed"):
            return
        # pipelined, as a client library would: one at a time, 50 topics took seconds
        results = await asyncio.gather(*(self._subscribe(v) for v in self.views.values()),
                                       return_exceptions=True)
        for view, result in zip(self.views.values(), results, strict=True):
            if isinstance(result, Exception):  # the view stays short: the checker says so
                log.warning("%s could not follow %s again: %r", self.client.name,
                            view.topic.name, result)

    async def _reload(self, view: TopicView) -> None:
        """Read the topic's history into the view. A reload asked while one runs is run again
        after it: the running one may have read its pages before the newer position (a
        second ``recovered: false``, at a higher ``seq``) was taken, and skipping it would
        leave what lies between out of the view."""
        name = view.topic.name
        if name in self._reloading:
            self._reload_again.add(name)
            return
        self._reloading.add(name)
        try:
            while True:
                self._reload_again.discard(name)
                view.reloads += 1
                view.ids |= await read_history(self.client, view.topic, view)
                if name not in self._reload_again:
                    return
        except (Refused, TimeoutError) as err:
            log.warning("%s could not reload %s: %s", self.client.name, name, err)
        finally:
            self._reloading.discard(name)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.stop()


async def read_history(client: ChaosClient, topic: Topic, view: TopicView | None = None
                       ) -> set[int]:
    """The identities durable in ``topic``'s history (a party: its queue_version, recorded as
    the view's snapshot, since a party keeps its state, not its ops)."""
    found: set[int] = set()
    if topic.kind == "room":
        before = None
        while True:
            content: dict[str, Any] = {"room": topic.key, "limit": 100}
            if before is not None:
                content["before_seq"] = before
            page, _ = await client.call("chat.history", content)
            found |= {m["seq"] for m in page["messages"]}
            if not page["more"] or not page["messages"]:
                return found
            before = min(m["seq"] for m in page["messages"])
    if topic.kind == "playlist":
        start = 0
        while True:
            page, _ = await client.call("playlist.history",
                                        {"playlist": topic.key, "from_version": start})
            versions = [op["version"] for op in page["ops"]]
            found |= set(versions)
            if not page["more"] or not versions:
                return found
            start = max(versions)
    joined, _ = await client.call("party.join", {"party": topic.key})
    upto = joined["state"]["queue_version"]
    if view is not None:
        view.snapshot_upto = max(view.snapshot_upto, upto)
    return set(range(1, upto + 1))


# -- senders -----------------------------------------------------------------------------

@dataclass
class Ack:
    topic: str
    ident: int
    at: float
    attempts: int


class Sender:
    """A user writing to the topics it owns at a steady rate, resending until acknowledged.
    Rooms take ``room_window`` requests in flight each; a playlist or party takes one at a
    time (its op names the version it saw)."""

    def __init__(self, client: ChaosClient, topics: list[Topic], rate: float,
                 room_window: int = 4, attach_every: int = 0, http: str = "") -> None:
        self.client, self.topics, self.rate = client, topics, rate
        self.room_window, self.attach_every, self.http = room_window, attach_every, http
        self.acks: list[Ack] = []
        self.refused: list[str] = []
        self.unacked: list[str] = []  # given up after the deadline: outcome unknown
        self.upload_failures: dict[str, int] = defaultdict(int)
        self.ack_times: list[float] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._http: httpx.AsyncClient | None = None

    def _lanes(self) -> list[tuple[Topic, int]]:
        return [(t, i) for t in self.topics
                for i in range(self.room_window if t.kind == "room" else 1)]

    def start(self) -> None:
        lanes = self._lanes()
        interval = len(lanes) / self.rate if self.rate else 1.0
        if self.attach_every:
            self._http = httpx.AsyncClient(timeout=30)
        for n, (topic, lane) in enumerate(lanes):
            offset = interval * n / len(lanes)
            self._tasks.append(asyncio.create_task(self._lane(topic, lane, interval, offset)))

    async def _lane(self, topic: Topic, lane: int, interval: float, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.monotonic()
        version = 0
        for n in itertools.count(1):
            if self._stop.is_set():
                return
            next_at += interval
            now = time.monotonic()
            if next_at > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), next_at - now)
                if self._stop.is_set():
                    return
            elif now - next_at > 1:
                next_at = now  # a stall: go on at the rate, do not burst the backlog
            key = f"{self.client.name}-{topic.key}-{lane}-{n}"
            try:
                frame_type, content = await self._op(topic, key, n, version)
                reply, attempts = await self.client.call(frame_type, content)
            except Refused as err:
                self.refused.append(f"{topic.name} {key}: {err.content}")
                continue
            except TimeoutError:
                self.unacked.append(f"{topic.name} {key}")
                continue
            ident = {"room": "seq", "playlist": "version", "party": "queue_version"}[topic.kind]
            if reply.get(ident) is None:  # an op that changed nothing (a no-op version)
                continue
            version = reply[ident]
            at = time.monotonic()
            self.acks.append(Ack(topic.name, reply[ident], at, attempts))
            self.ack_times.append(at)

    async def _op(self, topic: Topic, key: str, n: int, version: int
                  ) -> tuple[str, dict[str, Any]]:
        if topic.kind == "room":
            content: dict[str, Any] = {"room": topic.key, "text": key, "client_msg_id": key}
            if self.attach_every and n % self.attach_every == 0:
                content["attachments"] = [await self._upload()]
            return "chat.send", content
        item = f"{topic.key}-{n // 2}"
        if topic.kind == "playlist":
            op = ({"insert": {"index": 0, "track": f"track-{item}", "item_id": item}}
                  if n % 2 else {"remove": {"item_id": item}})
            return "playlist.op", {"playlist": topic.key, "base_version": version,
                                   "client_id": self.client.name, "client_seq": n, "op": op}
        if n % 2:
            return "party.queue", {"party": topic.key, "op": "add", "item_id": item,
                                   "track": f"track-{item}"}
        return "party.queue", {"party": topic.key, "op": "remove", "item_id": item}

    async def _upload(self) -> str:
        """An attachment uploaded over HTTP, retried until the blob store takes it."""
        assert self._http is not None
        while not self._stop.is_set():
            try:
                answer = await self._http.post(
                    f"{self.http}/v1/attachments", files={"file": ("a.png", png(), "image/png")},
                    headers={"Authorization": f"Bearer {self.client.token}"})
            except httpx.HTTPError as err:
                self.upload_failures[type(err).__name__] += 1
            else:
                if answer.status_code == 201:
                    return answer.json()["attachment_id"]
                self.upload_failures[f"HTTP {answer.status_code}"] += 1
            await asyncio.sleep(0.2)
        raise TimeoutError("stopped while uploading")

    async def stop_sending(self) -> None:
        """No new requests; the ones in flight finish (acknowledged or given up)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        await self.stop_sending()
        if self._http is not None:
            await self._http.aclose()
        await self.client.stop()


# -- the scenario: set up, run, fault, check -------------------------------------------------

@dataclass
class Shape:
    """The size of a load: topics, clients and rate."""

    rooms: int = 4
    playlists: int = 2
    parties: int = 2
    senders: int = 2
    subscribers: int = 4
    rate: float = 100.0  # acknowledged messages per second, over all senders
    room_window: int = 2
    attach_every: int = 0  # every n-th chat message carries an attachment (0: none)
    reload_on_gap: bool = False  # PROTOCOL.md's client: a jump alone is not a reason to reload


@dataclass
class Report:
    """One fault's outcome, as the README table and the tests read it."""

    fault: str
    acked: int = 0  # during the fault window
    acked_total: int = 0
    lost: int = 0  # (subscriber, acked message) pairs missing from the view
    lost_detail: list[str] = field(default_factory=list)
    not_durable: list[str] = field(default_factory=list)  # acked, absent from history
    duplicates: int = 0
    out_of_order: int = 0
    silent_gaps: int = 0  # seq jumps without recovered: false
    gap_detail: list[str] = field(default_factory=list)
    not_recovered: int = 0  # recovered: false answers (then a reload)
    reloads: int = 0
    unresumed: list[str] = field(default_factory=list)
    recover_s: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unacked: list[str] = field(default_factory=list)
    upload_failures: dict[str, int] = field(default_factory=dict)
    drops: int = 0  # sockets seen dropped
    resumed: int = 0  # reconnects the session resumed (resume token)
    fresh: int = 0  # reconnects as a new session (then subscribe with since)
    resume_refusals: list[str] = field(default_factory=list)  # resumes by token that failed
    steady_rate: float = 0.0  # acks/s before the fault
    fault_s: float = 0.0  # from the fault's start to its end
    window_s: float = 0.0  # from the fault's start until the last client recovered
    seconds: float = 0.0  # the load's length (start to the senders' stop)
    notes: list[str] = field(default_factory=list)

    @property
    def lost_in_history(self) -> int:
        """Of the lost, how many are durable in history (a reload would find them)."""
        return sum(int(d.rsplit("history: ", 1)[1].split("/")[0]) for d in self.lost_detail)

    def pct(self, q: float) -> float | None:
        if not self.recover_s:
            return None
        ordered = sorted(self.recover_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Scenario:
    """A load on a deployed hub: ``setup`` makes the topics and clients, ``run`` drives it
    around faults, ``check`` compares every view with every acknowledgement."""

    def __init__(self, ws_url: str, http: str, token: Callable[[str], str],
                 shape: Shape) -> None:
        self.url, self.http, self.token, self.shape = ws_url, http, token, shape
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.topics = ([Topic("room", f"r{tag}{i}") for i in range(shape.rooms)]
                       + [Topic("playlist", "") for _ in range(shape.playlists)]
                       + [Topic("party", "") for _ in range(shape.parties)])
        self.senders: list[Sender] = []
        self.subscribers: list[Subscriber] = []
        self.admin: ChaosClient | None = None
        self.started = self.stopped = 0.0

    def client(self, user: str) -> ChaosClient:
        return ChaosClient(self.url, self.token(user), user)

    async def setup(self) -> None:
        shape = self.shape
        senders = [self.client(f"snd{self.tag}{i}") for i in range(shape.senders)]
        subs = [self.client(f"sub{self.tag}{i}") for i in range(shape.subscribers)]
        await asyncio.gather(*(c.start() for c in senders + subs))
        owned: dict[str, list[Topic]] = defaultdict(list)
        made: list[Topic] = []
        for n, topic in enumerate(self.topics):
            owner = senders[n % len(senders)]
            if topic.kind == "room":
                await owner.call("room.create", {"room_id": topic.key, "name": topic.key,
                                                 "visibility": "public"})
            elif topic.kind == "playlist":
                ack, _ = await owner.call("playlist.create", {"name": f"p{n}"})
                topic = Topic("playlist", ack["playlist_id"])
                for sub in subs:
                    await owner.call("playlist.share", {"playlist": topic.key,
                                                        "user": sub.name, "role": "viewer"})
            else:
                ack, _ = await owner.call("party.create", {"name": f"q{n}", "mode": "everyone"})
                topic = Topic("party", ack["party_id"])
                for keep in ("keep-a", "keep-b"):  # never under 2: no recommendation asks
                    await owner.call("party.queue", {"party": topic.key, "op": "add",
                                                     "item_id": f"{topic.key}-{keep}",
                                                     "track": keep})
            made.append(topic)
            owned[owner.name].append(topic)
        self.topics = made
        for sub in subs:
            for topic in made:
                if topic.kind == "room":
                    await sub.call("room.join", {"room": topic.key})
                elif topic.kind == "party":
                    await sub.call("party.join", {"party": topic.key})
        self.subscribers = [Subscriber(c, made, shape.reload_on_gap) for c in subs]
        await asyncio.gather(*(s.follow() for s in self.subscribers))
        share = shape.rate / len(senders)
        self.senders = [Sender(c, owned[c.name], share, shape.room_window, shape.attach_every,
                               self.http) for c in senders]
        self.admin = self.client(f"adm{self.tag}")
        await self.admin.start()
        for topic in made:  # the checker reads every history as a member
            if topic.kind == "room":
                await self.admin.call("room.join", {"room": topic.key})
            elif topic.kind == "party":
                await self.admin.call("party.join", {"party": topic.key})
            else:
                owner = next(s for s in senders if topic in owned[s.name])
                await owner.call("playlist.share", {"playlist": topic.key,
                                                    "user": self.admin.name, "role": "viewer"})

    def start(self) -> None:
        self.started = time.monotonic()
        for sender in self.senders:
            sender.start()

    async def settle(self, quiet_s: float = 15.0, within_s: float = 90.0) -> None:
        """Stop the senders, then wait until every subscriber has the last acknowledged
        message of every topic, or nothing has changed for ``quiet_s`` while no subscriber
        was busy (a view that stays short is then reported, not waited on forever). A
        resume's replay is the server's, invisible here: ``quiet_s`` is long enough for one
        on a loaded machine (4 s was not). Caught up, it returns at once."""
        self.stopped = time.monotonic()  # no new request after this
        await asyncio.gather(*(s.stop_sending() for s in self.senders))
        last: dict[str, int] = defaultdict(int)
        for sender in self.senders:
            for ack in sender.acks:
                last[ack.topic] = max(last[ack.topic], ack.ident)
        give_up, before, quiet_since = time.monotonic() + within_s, None, time.monotonic()
        while time.monotonic() < give_up:
            behind = sum(1 for sub in self.subscribers for name, top in last.items()
                         if not sub.views[name].has(top))
            if behind == 0:
                return
            if behind != before or any(sub.busy for sub in self.subscribers):
                before, quiet_since = behind, time.monotonic()
            elif time.monotonic() - quiet_since > quiet_s:
                return
            await asyncio.sleep(0.2)  # views change from socket callbacks; poll their sum

    async def check(self, fault: Fault | None, name: str | None = None) -> Report:
        report = Report(name or (fault.name if fault else "none"))
        acks = [a for s in self.senders for a in s.acks]
        report.acked_total = len(acks)
        for sender in self.senders:
            report.refused += sender.refused
            report.unacked += sender.unacked
            for what, count in sender.upload_failures.items():
                report.upload_failures[what] = report.upload_failures.get(what, 0) + count
        assert self.admin is not None
        durable = {t.name: await read_history(self.admin, t) for t in self.topics}
        acked_by_topic: dict[str, list[Ack]] = defaultdict(list)
        for ack in acks:
            acked_by_topic[ack.topic].append(ack)
            if ack.ident not in durable[ack.topic]:
                report.not_durable.append(f"{ack.topic}#{ack.ident}")
        for sub in self.subscribers:
            for name, view in sub.views.items():
                missing = sorted({a.ident for a in acked_by_topic[name]
                                  if not view.has(a.ident)})
                if missing:
                    report.lost += len(missing)
                    in_history = [m for m in missing if m in durable[name]]
                    report.lost_detail.append(
                        f"{sub.client.name} {name}: missing {_ranges(missing)} "
                        f"(durable in history: {len(in_history)}/{len(missing)})")
                report.duplicates += view.duplicates
                report.out_of_order += view.out_of_order
                report.silent_gaps += len(view.gaps)
                report.gap_detail += [f"{sub.client.name} {name}: seq {a} -> {b}"
                                      for a, b in view.gaps]
                report.not_recovered += view.not_recovered
                report.reloads += view.reloads
            if not sub.client.connected.is_set():
                report.unresumed.append(f"{sub.client.name} not connected")
        for sender in self.senders:
            if not sender.client.connected.is_set():
                report.unresumed.append(f"{sender.client.name} not connected")
        report.drops = sum(len(c.drops) for c in self.clients())
        report.resumed = sum(r for c in self.clients() for _, r in c.reconnects)
        report.fresh = sum(not r for c in self.clients() for _, r in c.reconnects)
        report.seconds = self.stopped - self.started
        report.resume_refusals = [f"{c.name}: {r}" for c in self.clients()
                                  for r in c.resume_refusals]
        until = fault.started if fault is not None and fault.started else self.stopped
        report.steady_rate = sum(1 for a in acks if a.at < until) / max(until - self.started,
                                                                      1e-9)
        if fault is not None and fault.started:
            self._recovery(report, fault, acks)
            report.notes += fault.notes
        return report

    def clients(self) -> list[ChaosClient]:
        return [s.client for s in self.senders] + [s.client for s in self.subscribers]

    def _recovery(self, report: Report, fault: Fault, acks: list[Ack]) -> None:
        """Per client and topic: from the fault's end to the client's first ack (a sender)
        or first new event (a subscriber) on that topic after it; per topic, so a client
        whose other topics carried on is not counted recovered while one is stuck. A pair
        with nothing after the fault has not resumed."""
        end = fault.ended or fault.started
        times: list[tuple[str, str, list[float]]] = []
        for sender in self.senders:
            per_topic: dict[str, list[float]] = defaultdict(list)
            for ack in sender.acks:
                per_topic[ack.topic].append(ack.at)
            times += [(sender.client.name, t.name, per_topic[t.name]) for t in sender.topics]
        for sub in self.subscribers:
            times += [(sub.client.name, name, sub.event_times[name]) for name in sub.views]
        for client, topic, seen in times:
            after = next((t for t in seen if t >= end), None)
            if after is None:
                report.unresumed.append(f"{client} {topic}: nothing after the fault")
            else:
                report.recover_s.append(after - end)
        window_end = end + max(report.recover_s, default=0.0)
        report.acked = sum(1 for a in acks if fault.started <= a.at <= window_end)
        report.fault_s, report.window_s = end - fault.started, window_end - fault.started

    async def close(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.senders),
                             *(s.stop() for s in self.subscribers), return_exceptions=True)
        if self.admin is not None:
            await self.admin.stop()


def _ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9' (a lost stretch reads as one)."""
    out: list[str] = []
    for _, run in itertools.groupby(enumerate(values), lambda p: p[1] - p[0]):
        items = [v for _, v in run]
        out.append(f"{items[0]}-{items[-1]}" if len(items) > 1 else str(items[0]))
    return ", ".join(out)
