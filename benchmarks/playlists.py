"""Collaborative playlist: committed ops/s and op ack latency on one hot playlist, rthub
against ShareDB (the system rthub's OT design imitates), same load, same machine, same run.

    python -m benchmarks.playlists            # 3 runs x (3 s warm-up + 20 s measured)
    python -m benchmarks.playlists --quick    # 1 run x (1 s warm-up + 5 s measured)

Scenario: one playlist, --editors (10) editors, each a separate socket of a separate user
(all shared as editors). Each runs ShareDB's client loop as fast as it can: one op in flight;
when its ack arrives (and every version before it is applied), make a random op on the local
list (insert 50% / move 25% / remove 25%, unique tracks) and send it; ops of others arrive as
broadcasts and are transformed past the op in flight. Measured over --seconds after a
warm-up: committed ops/s (versions the server advanced / time) and the ack latency of every
op sent in the window (send -> ack, one clock). At the end every editor must hold the list
the server returns (``converged``); ops the server refused are counted (both should be 0).

* rthub: the real hub as ``rthub up`` (direct ingress), the editors speak PROTOCOL.md with
  the project's sans-I/O client ``client.playlist.PlaylistDoc``;
* ShareDB 7 (node, ``benchmarks/servers/sharedb_server.js``: ``ShareDB.MemoryDB`` behind
  ``ws`` + ``@teamwork/websocket-json-stream``), one json0 document ``{items: [...]}``; the
  editors speak ShareDB's wire protocol with list ops ``li``/``ld``/``lm`` and a port of
  json0's transform for those three components (``json0_transform``), as ShareDB's client
  does (``transformX``: our op left, theirs right).

Each run uses a fresh playlist (document). Servers are pinned to core 0 and the load
generator (this process, both systems' clients on one asyncio loop) to core 1. Figures are
medians over --runs runs. Results: stdout and benchmarks/results/playlists.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.fanout import UNBOUNDED, npm_install, wait_port
from benchmarks.hub import HubProcess
from benchmarks.loadgen import Socket
from benchmarks.procs import tree_cpu
from cluster.ingress import free_port
from serve.auth import issue_token

log = logging.getLogger("benchmarks.playlists")
HERE = Path(__file__).parent
SERVERS = HERE / "servers"
RESULTS = HERE / "results" / "playlists.md"
JSON0 = "http://sharejs.org/types/JSONv0"
COLLECTION = "playlists"


# -- json0 list ops (ot-json0 1.1's transformComponent, for li / ld / lm on one list) ------------
def json0_transform(c: dict[str, Any], other: dict[str, Any], side: str
                    ) -> dict[str, Any] | None:
    """``c`` rewritten to apply after ``other`` (both components on one list, paths
    ``[key, index]``); ``side`` breaks ties as json0's ``left`` / ``right``. None: nothing
    is left of ``c``. A line-by-line port of ot-json0's ``transformComponent`` for the list
    insert, delete and move components (no replace, no nested paths)."""
    c = {**c, "p": list(c["p"])}
    at, other_at = c["p"][1], other["p"][1]
    if "li" in other:
        if "li" in c and at == other_at:
            if side == "right":  # li vs li at one index: left wins
                c["p"][1] += 1
        elif other_at <= at:
            c["p"][1] += 1
        if "lm" in c and other_at <= c["lm"]:
            c["lm"] += 1
    elif "ld" in other:
        if "lm" in c:
            if other_at == at:
                return None  # they deleted what we move
            to = c["lm"]
            if other_at < to or (other_at == to and at < to):
                c["lm"] -= 1
        if other_at < at:
            c["p"][1] -= 1
        elif other_at == at and "ld" in c:
            return None  # both deleted one element
    elif "lm" in other:
        other_from, other_to = other_at, other["lm"]
        if "lm" in c:
            if other_from != other_to:
                frm, to = at, c["lm"]
                if frm == other_from:  # they moved it too: tie break
                    if side != "left":
                        return None
                    c["p"][1] = other_to
                    if frm == to:
                        c["lm"] = other_to
                else:  # they moved around it
                    if frm > other_from:
                        c["p"][1] -= 1
                    if frm > other_to:
                        c["p"][1] += 1
                    elif frm == other_to and other_from > other_to:
                        c["p"][1] += 1
                        if frm == to:
                            c["lm"] += 1
                    if to > other_from or (to == other_from and to > frm):  # where is it going now?
                        c["lm"] -= 1
                    if to > other_to:
                        c["lm"] += 1
                    elif to == other_to:
                        if (other_to > other_from and to > frm) or (
                                other_to < other_from and to < frm):
                            if side == "right":
                                c["lm"] += 1
                        elif to > frm:
                            c["lm"] += 1
                        elif to == other_from:
                            c["lm"] -= 1
        elif "li" in c:
            if at > other_from:
                c["p"][1] -= 1
            if at > other_to:
                c["p"][1] += 1
        elif at == other_from:  # ld: follow the moved element
            c["p"][1] = other_to
        else:
            if at > other_from:
                c["p"][1] -= 1
            if at > other_to or (at == other_to and other_from > other_to):
                c["p"][1] += 1
    return c


def json0_apply(items: list[Any], c: dict[str, Any] | None) -> None:
    """Apply one list component in place, as json0's ``apply`` does (splice semantics)."""
    if c is None:
        return
    at = c["p"][1]
    if "li" in c:
        items.insert(at, c["li"])
    elif "ld" in c:
        del items[at:at + 1]
    elif c["lm"] != at:
        moved = items.pop(at)
        items.insert(c["lm"], moved)


# -- one run's measurements ----------------------------------------------------------------------
@dataclass
class Tally:
    """What the editors of one run observe together."""

    version: int = 0  # the highest committed version any editor has seen
    window: tuple[float, float] = (float("inf"), float("inf"))  # measured sends
    latencies_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)  # ack -> the editor's next send
    sent: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    stopping: bool = False

    def seen(self, version: int) -> None:
        if version > self.version:
            self.version = version

    def acked(self, sent_at: float, error: str | None = None) -> float:
        now = time.perf_counter()
        if self.window[0] <= sent_at < self.window[1]:
            self.latencies_ms.append((now - sent_at) * 1000)
        if error is not None:
            self.rejected += 1
            if len(self.errors) < 5:
                self.errors.append(error)
                log.warning("op refused: %s", error)
        return now

    def sending(self, acked_at: float) -> float:
        now = time.perf_counter()
        if acked_at and self.window[0] <= acked_at < self.window[1]:
            self.gaps_ms.append((now - acked_at) * 1000)
        self.sent += 1
        return now


def random_op(rng: random.Random, size: int) -> tuple[str, int, int]:
    """(kind, index, to_index) of a random edit on a list of ``size`` items."""
    roll = rng.random()
    if size == 0 or roll < 0.5:
        return "insert", rng.randrange(size + 1), 0
    if roll < 0.75:
        return "move", rng.randrange(size), rng.randrange(size)
    return "remove", rng.randrange(size), 0


class Editor:
    """One collaborator's socket and client loop (one op in flight, closed loop)."""

    def __init__(self, index: int, sock: Socket, rng: random.Random, tally: Tally) -> None:
        self.index, self.sock, self.rng, self.tally = index, sock, rng, tally
        self.sent_at = self.acked_at = 0.0
        self.awaiting = False  # an op is sent and its ack has not arrived
        self.made = itertools.count(1)
        self.reply: asyncio.Future[Any] | None = None  # for one final request

    def start(self) -> None:
        self.sock.on_text = self.on_text
        self.pump()

    def on_text(self, text: str) -> None: ...

    def pump(self) -> None: ...

    @property
    def idle(self) -> bool: ...

    def item_ids(self) -> list[str]: ...


# -- rthub ----------------------------------------------------------------------------------------
class RthubEditor(Editor):
    def __init__(self, index: int, sock: Socket, rng: random.Random, tally: Tally,
                 playlist: str) -> None:
        from client.playlist import PlaylistDoc

        super().__init__(index, sock, rng, tally)
        self.doc = PlaylistDoc(playlist, f"e{index}-{uuid.uuid4().hex[:8]}")
        self.ids = itertools.count(100)
        self.op_id: int | None = None

    def on_text(self, text: str) -> None:
        frame = json.loads(text)
        kind = frame.get("type")
        if kind == "playlist.op":
            content = frame["content"]
            self.tally.seen(content["version"])
            self.doc.broadcast(content)
        elif kind in ("ack", "error") and frame.get("ref") is not None:
            if frame["ref"] == self.op_id:
                self.op_id, self.awaiting = None, False
                if kind == "ack":
                    self.tally.seen(frame["content"]["version"])
                    self.acked_at = self.tally.acked(self.sent_at)
                    self.doc.acked(frame["content"])
                else:  # the op stays in flight: this editor stops (and will not converge)
                    self.tally.acked(self.sent_at, json.dumps(frame["content"]))
                    return
            elif self.reply is not None and not self.reply.done():
                self.reply.set_result(frame)
            elif kind == "error":
                log.warning("editor %d: unexpected error %s", self.index, text[:300])
        self.pump()

    def pump(self) -> None:
        doc = self.doc
        while not self.awaiting and doc.inflight is None and not self.tally.stopping:
            if not doc.pending:
                kind, at, to = random_op(self.rng, len(doc.items))
                if kind == "insert":
                    n = next(self.made)
                    op = {"insert": {"index": at, "track": f"t{self.index}-{n}",
                                     "item_id": f"i{self.index}-{n}"}}
                elif kind == "move":
                    op = {"move": {"item_id": doc.items[at][0], "to_index": to}}
                else:
                    op = {"remove": {"item_id": doc.items[at][0]}}
                doc.local(op)
            content = doc.next_frame()
            if content is not None:
                self.op_id = next(self.ids)
                self.awaiting = True
                self.sent_at = self.tally.sending(self.acked_at)
                self.sock.send(json.dumps({"type": "playlist.op", "id": self.op_id,
                                           "content": content}))

    @property
    def idle(self) -> bool:
        return not self.awaiting and self.doc.idle

    def item_ids(self) -> list[str]:
        return [item_id for item_id, _ in self.doc.items]


async def rthub_ask(sock: Socket, ident: int, kind: str, content: dict[str, Any]
                    ) -> dict[str, Any]:
    """One request before the editors' loops start: its ack's content (frames between are
    only ``playlist.shared`` and presence, which nobody needs)."""
    sock.send(json.dumps({"type": kind, "id": ident, "content": content}))
    while True:
        frame = json.loads(await sock.recv())
        if frame.get("ref") == ident:
            if frame["type"] != "ack":
                raise RuntimeError(f"{kind}: {frame}")
            return frame["content"]


class Rthub:
    """The real hub, launched as benchmarks/fanout.py does (``rthub up``, direct ingress)."""

    name = "rthub (direct ingress)"
    proc: subprocess.Popen | None = None
    data_dir = ""

    def start(self) -> None:
        self.hub = HubProcess("playlists", {"RTHUB_INGRESS": "direct", **UNBOUNDED})
        self.hub.start()
        self.proc, self.port, self.secret = self.hub.proc, self.hub.port, self.hub.secret
        self.data_dir = self.hub.data_dir
        self.issue = issue_token

    def stop(self) -> None:
        self.hub.stop()

    async def socket(self, user: str) -> Socket:
        token = self.issue(self.secret, user, ttl_s=7200)
        sock = await Socket.open("127.0.0.1", self.port, "/ws",
                                 {"Authorization": f"Bearer {token}"})
        await sock.recv()  # session.welcome
        return sock

    async def editors(self, count: int, run: int, seed: int, tally: Tally) -> list[Editor]:
        playlist = f"hot-{run}-{uuid.uuid4().hex[:6]}"
        users = [f"editor{i}" for i in range(count)]
        socks = [await self.socket(user) for user in users]
        await rthub_ask(socks[0], 1, "playlist.create", {
            "playlist_id": playlist, "name": "Hot", "allow_duplicates": True})
        for n, user in enumerate(users[1:], 2):
            await rthub_ask(socks[0], n, "playlist.share",
                            {"playlist": playlist, "user": user, "role": "editor"})
        editors = []
        for i, sock in enumerate(socks):
            editor = RthubEditor(i, sock, random.Random(seed * 1000 + run * 100 + i), tally,
                                 playlist)
            editor.doc.opened(await rthub_ask(sock, 50, "playlist.open",
                                              {"playlist": playlist}))
            editors.append(editor)
        self.playlist = playlist
        return editors

    async def server_list(self, editors: list[Editor]) -> tuple[int, list[str]]:
        sock = await self.socket("editor0")
        try:
            opened = await rthub_ask(sock, 1, "playlist.open", {"playlist": self.playlist})
        finally:
            sock.close()
        return opened["version"], [item["item_id"] for item in opened["items"]]

    def version_of(self, editor: Editor) -> int:
        assert isinstance(editor, RthubEditor)
        return editor.doc.version


# -- ShareDB --------------------------------------------------------------------------------------
class ShareDBEditor(Editor):
    """ShareDB's client algorithm (lib/client/doc.js) for one json0 list, on the wire."""

    def __init__(self, index: int, sock: Socket, rng: random.Random, tally: Tally,
                 doc_id: str, src: str, version: int, items: list[str]) -> None:
        super().__init__(index, sock, rng, tally)
        self.doc_id, self.src = doc_id, src
        self.version, self.items = version, items  # items: the server's list + our op
        self.inflight: dict[str, Any] | None = None  # our op's component (None: a no-op)
        self.seq = 0  # of the op in flight (ShareDB's connection seq)
        self.open = False  # an op is in flight: sent, its version not applied yet
        self.early: dict[int, dict[str, Any] | None] = {}  # version -> op (None: our ack)

    def on_text(self, text: str) -> None:
        message = json.loads(text)
        action = message.get("a")
        if action == "op":
            if "error" in message:  # a refused op: this editor stops (and will not converge)
                if self.awaiting and message.get("seq") == self.seq:
                    self.awaiting = False
                    self.tally.acked(self.sent_at, json.dumps(message["error"]))
                return
            version = message["v"]
            if "op" in message:  # someone else's op (pub/sub, or caught up before an ack)
                if version >= self.version:
                    self.early[version] = message
                self.tally.seen(version + 1)
            elif self.awaiting and message.get("src") == self.src and (
                    message.get("seq") == self.seq):  # the ack of our op, version ``v``
                self.awaiting = False
                self.tally.seen(version + 1)
                self.acked_at = self.tally.acked(self.sent_at)
                self.early[version] = None
            self.drain()
        elif self.reply is not None and not self.reply.done():
            self.reply.set_result(message)
        self.pump()

    def drain(self) -> None:
        while self.version in self.early:
            message = self.early.pop(self.version)
            if message is None:  # our op is this version (applied locally when made)
                self.open = False
            else:
                for theirs in message["op"]:
                    mine = self.inflight
                    if self.open and mine is not None:  # transformX(inflight, theirs)
                        self.inflight = json0_transform(mine, theirs, "left")
                        theirs = json0_transform(theirs, mine, "right")
                    if theirs is not None:
                        json0_apply(self.items, theirs)
            self.version += 1

    def pump(self) -> None:
        """Send a new op once the last one is acknowledged and applied in version order."""
        if self.open or self.tally.stopping:
            return
        kind, at, to = random_op(self.rng, len(self.items))
        path = ["items", at]
        if kind == "insert":
            component = {"p": path, "li": f"i{self.index}-{next(self.made)}"}
        elif kind == "move":
            component = {"p": path, "lm": to}
        else:
            component = {"p": path, "ld": self.items[at]}
        json0_apply(self.items, component)
        self.inflight, self.open, self.awaiting = component, True, True
        self.seq += 1
        self.sent_at = self.tally.sending(self.acked_at)
        self.sock.send(json.dumps({"a": "op", "c": COLLECTION, "d": self.doc_id,
                                   "v": self.version, "src": self.src, "seq": self.seq,
                                   "op": [component]}))

    @property
    def idle(self) -> bool:
        return not self.open and not self.early

    def item_ids(self) -> list[str]:
        return list(self.items)


async def sharedb_ask(sock: Socket, message: dict[str, Any], reply_to: str
                      ) -> dict[str, Any]:
    sock.send(json.dumps(message))
    while True:
        reply = json.loads(await sock.recv())
        if reply.get("a") == reply_to and not ("op" in reply and reply_to == "op"):
            if "error" in reply:
                raise RuntimeError(f"{message['a']}: {reply}")
            return reply


class ShareDB:
    name = "ShareDB 7 (node, MemoryDB)"
    proc: subprocess.Popen | None = None
    data_dir = ""

    def start(self) -> None:
        npm_install()
        self.port = free_port()
        self.proc = subprocess.Popen(["taskset", "-c", "0", "node", "sharedb_server.js",
                                      str(self.port)], cwd=SERVERS)
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def socket(self) -> tuple[Socket, str]:
        sock = await Socket.open("127.0.0.1", self.port, "/")
        hello = await sharedb_ask(sock, {"a": "hs", "id": None, "protocol": 1,
                                         "protocolMinor": 2}, "hs")
        return sock, hello["id"]

    async def editors(self, count: int, run: int, seed: int, tally: Tally) -> list[Editor]:
        doc_id = f"hot-{run}-{uuid.uuid4().hex[:6]}"
        self.doc_id = doc_id
        editors = []
        for i in range(count):
            sock, src = await self.socket()
            got = await sharedb_ask(sock, {"a": "s", "c": COLLECTION, "d": doc_id}, "s")
            version = got["data"]["v"]
            if i == 0:  # the first editor creates the document
                await sharedb_ask(sock, {"a": "op", "c": COLLECTION, "d": doc_id, "v": version,
                                         "src": src, "seq": 1,
                                         "create": {"type": JSON0, "data": {"items": []}}},
                                  "op")
                version += 1
            else:
                assert got["data"]["data"] == {"items": []}, got
            editor = ShareDBEditor(i, sock, random.Random(seed * 1000 + run * 100 + i), tally,
                                   doc_id, src, version, [])
            editor.seq = 1 if i == 0 else 0
            editors.append(editor)
        return editors

    async def server_list(self, editors: list[Editor]) -> tuple[int, list[str]]:
        editor = editors[0]
        editor.reply = asyncio.get_running_loop().create_future()
        editor.sock.send(json.dumps({"a": "f", "c": COLLECTION, "d": self.doc_id}))
        reply = await asyncio.wait_for(editor.reply, 30)
        return reply["data"]["v"], list(reply["data"]["data"]["items"])

    def version_of(self, editor: Editor) -> int:
        assert isinstance(editor, ShareDBEditor)
        return editor.version


# -- runs -----------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One run of one system."""

    ops_per_s: float
    p50: float
    p95: float
    p99: float
    acks: int
    rejected: int
    converged: bool
    items: int  # on the playlist at the end
    server: float  # CPU of the server's process tree over the window, share of one core
    core0: float  # busy share of the server's core (every process on it)
    loadgen: float  # CPU of this process over the window, share of one core
    core1: float  # busy share of the load generator's core
    gap50: float  # ack -> next op sent (waiting for earlier versions to arrive), ms
    gap99: float


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def busy(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total else float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def until(check: Any, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def one_run(system: Rthub | ShareDB, args: argparse.Namespace, run: int) -> Outcome:
    tally = Tally()
    editors = await system.editors(args.editors, run, args.seed, tally)
    for editor in editors:
        editor.start()
    await asyncio.sleep(args.warmup)
    assert system.proc is not None
    server = tree_cpu(system.proc.pid, system.data_dir)
    cores, used, start = psutil.cpu_times(percpu=True), cpu_seconds(), time.perf_counter()
    first = tally.version
    tally.window = (start, float("inf"))
    await asyncio.sleep(args.seconds)
    end = time.perf_counter()
    last = tally.version
    tally.window = (start, end)
    cores_after, used_after = psutil.cpu_times(percpu=True), cpu_seconds()
    server_s = tree_cpu(system.proc.pid, system.data_dir) - server
    tally.stopping = True
    settled = await until(lambda: all(e.idle for e in editors), 30)
    version, items = await system.server_list(editors)
    caught_up = await until(lambda: all(system.version_of(e) >= version for e in editors), 30)
    converged = settled and caught_up and all(e.item_ids() == items for e in editors)
    if not converged:
        log.warning("%s run %d: not converged (settled %s, caught up %s, server v%d, "
                    "editors at %s)", system.name, run, settled, caught_up, version,
                    [system.version_of(e) for e in editors])
    for editor in editors:
        editor.sock.close()
    lat = tally.latencies_ms
    outcome = Outcome((last - first) / (end - start), pct(lat, 0.5), pct(lat, 0.95),
                      pct(lat, 0.99), len(lat), tally.rejected, converged, len(items),
                      server_s / (end - start), busy(cores[0], cores_after[0]),
                      (used_after - used) / (end - start), busy(cores[1], cores_after[1]),
                      pct(tally.gaps_ms, 0.5), pct(tally.gaps_ms, 0.99))
    log.info("%s run %d: %.0f ops/s, ack p50 %.2f p95 %.2f p99 %.2f ms (%d acks), %d refused, "
             "converged %s, %d items; ack -> next send p50 %.2f p99 %.2f ms; server CPU %.0f%% "
             "(core 0 %.0f%% busy), load generator %.0f%% (core 1 %.0f%%)", system.name,
             run + 1, outcome.ops_per_s, outcome.p50, outcome.p95, outcome.p99, outcome.acks,
             outcome.rejected, converged, outcome.items, outcome.gap50, outcome.gap99,
             outcome.server * 100, outcome.core0 * 100, outcome.loadgen * 100,
             outcome.core1 * 100)
    return outcome


async def run_all(args: argparse.Namespace) -> dict[str, list[Outcome]]:
    results: dict[str, list[Outcome]] = {}
    for cls in (Rthub, ShareDB):
        if args.only and args.only.lower() not in cls.name.lower():
            continue
        system = cls()
        system.start()
        try:
            results[system.name] = [await one_run(system, args, run)
                                    for run in range(args.runs)]
        finally:
            system.stop()
    return results


# -- report ---------------------------------------------------------------------------------------
def render(results: dict[str, list[Outcome]], args: argparse.Namespace,
           load: tuple[float, float]) -> str:
    def med(outcomes: list[Outcome], name: str) -> float:
        return statistics.median(getattr(o, name) for o in outcomes)

    command = " ".join(["python -m benchmarks.playlists", *sys.argv[1:]])
    lines = [
        f"`{command}` — {time.strftime('%Y-%m-%d')}, servers pinned to core 0 and the load "
        f"generator to core 1 (`taskset`, 2-core machine), median of {args.runs} "
        f"run{'s' * (args.runs > 1)}, {args.seconds:g} s measured after a {args.warmup:g} s "
        f"warm-up per run. Load average {load[0]:.2f} before the run, {load[1]:.2f} after"
        + (" (other work was running on the machine: the server CPU column shows how much of "
           "core 0 the server under test got)." if load[0] > 0.5 else "."),
        "",
        f"One playlist, {args.editors} editors (a socket and a user each), every editor "
        "closed-loop at full speed with one op in flight: insert 50% / move 25% / remove 25% "
        "on its local list, broadcasts of the others transformed past its op in flight. "
        "*ops/s*: versions committed by the server per second; *ack*: send -> ack of each op "
        "sent in the window; *converged*: every editor ends with the server's list.",
        "",
        "| system | committed ops/s | ack p50 ms | ack p95 ms | ack p99 ms | acks measured "
        "| refused ops | converged | items at end | ack -> next send p50 / p99 ms "
        "| server CPU / core 0 busy | load generator CPU / core 1 busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, outcomes in results.items():
        converged = sum(o.converged for o in outcomes)
        lines.append(
            f"| {name} | {med(outcomes, 'ops_per_s'):,.0f} | {med(outcomes, 'p50'):.2f} "
            f"| {med(outcomes, 'p95'):.2f} | {med(outcomes, 'p99'):.2f} "
            f"| {med(outcomes, 'acks'):,.0f} | {sum(o.rejected for o in outcomes)} "
            f"| {'yes' if converged == len(outcomes) else 'no'} ({converged}/{len(outcomes)}) "
            f"| {med(outcomes, 'items'):,.0f} "
            f"| {med(outcomes, 'gap50'):.2f} / {med(outcomes, 'gap99'):.2f} "
            f"| {med(outcomes, 'server'):.0%} / {med(outcomes, 'core0'):.0%} "
            f"| {med(outcomes, 'loadgen'):.0%} / {med(outcomes, 'core1'):.0%} |")
    rthub, sharedb = results.get(Rthub.name), results.get(ShareDB.name)
    if rthub and sharedb:
        ops = med(rthub, "ops_per_s") / med(sharedb, "ops_per_s")
        p99 = med(rthub, "p99") / med(sharedb, "p99")
        lines += ["", f"**rthub / ShareDB: committed ops/s {ops:.2f}x, ack p99 {p99:.2f}x** "
                  f"(p50 {med(rthub, 'p50') / med(sharedb, 'p50'):.2f}x)."]
    lines += ["", "Every run:", "", "| system | run | ops/s | p50 / p95 / p99 ms | refused "
              "| converged | items | server CPU / core 0 busy |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, outcomes in results.items():
        for n, o in enumerate(outcomes, 1):
            lines.append(f"| {name} | {n} | {o.ops_per_s:,.0f} | {o.p50:.2f} / {o.p95:.2f} / "
                         f"{o.p99:.2f} | {o.rejected} | {'yes' if o.converged else 'no'} "
                         f"| {o.items:,} | {o.server:.0%} / {o.core0:.0%} |")
    lines += ["", NOTE]
    return "\n".join(lines) + "\n"


NOTE = (
    "What differs: rthub makes every op durable before its ack: the gateway hands it to the "
    "Playlist entity on a Ray actor host, which transforms it, appends the `Committed` event "
    "(and the op-log projection) to PostgreSQL in a group commit, then releases the ack and "
    "publishes the broadcast through Redis streams back to the gateways; the whole `rthub up` "
    "(Ray's GCS and raylet, Serve, the gateway, the host, embedded PostgreSQL and "
    "Redis) shares core 0. ShareDB runs as one node process with `ShareDB.MemoryDB` and the "
    "in-process MemoryPubSub: nothing is durable and nothing leaves the process, so this is "
    "the ceiling of the same algorithm (ops carry their base version, the server transforms "
    "them past what was committed since, one op in flight per client), not a production "
    "ShareDB, which adds a database (sharedb-mongo, sharedb-postgres) and a Redis pub/sub. "
    "The ops differ too: rthub's name items by id and its transform is state-aware (it "
    "looks items up in the list, so each op still costs O(ops committed since its base x "
    "list length), with index arithmetic for the rest), while json0 only "
    "moves indices with arithmetic. The closed loop makes the list grow by ~1 item per 4 "
    "ops, so the faster system ends each run with the longer list. Both systems' editors run "
    "in one Python process on core 1 (rthub's with the project's `PlaylistDoc`, whose "
    "transform is also O(list length)); its CPU is shown, and a load generator near 100% "
    "would cap the figure it measures.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 5 s")
    parser.add_argument("--runs", type=int, help="runs per system (default 3)")
    parser.add_argument("--editors", type=int, default=10)
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 20)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="run only the system whose name contains this")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.sched_setaffinity(0, {1})
    load_before = os.getloadavg()[0]
    uvloop.install()
    results = asyncio.run(run_all(args))
    report = render(results, args, (load_before, os.getloadavg()[0]))
    if not args.only:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
