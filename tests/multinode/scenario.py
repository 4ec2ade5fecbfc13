"""The hub on three Ray nodes, with a worker node lost under load: run as a program, it
prints one JSON report on stdout for ``tests/multinode/test_multinode.py`` to judge.

    python -m tests.multinode.scenario [--kill node|remove] [--out report.json]

It is a process of its own because a ``ray.cluster_utils.Cluster`` cannot share a process
with the suite's ``ray.init``. Everything is real: three raylets (``benchmarks.multinode
.LocalNodes``), ``rthub up``'s launcher against the cluster (``cluster.local.LocalHub``, with
embedded PostgreSQL and Redis), three actor hosts reserving a CPU each, three gateway
replicas sharing the WebSocket port by ``SO_REUSEPORT``, real WebSocket clients.

Steps, each recorded in the report:
1. placement: which node runs each host and each replica;
2. sockets: clients connect until some sit on replicas of every node (the welcome names
   the replica, the replica's process names its node);
3. across nodes: a message sent on a socket of one node reaches members on the others;
4. loss: senders keep sending to rooms on every host while the worker node running the most
   (a host and a replica) is killed; its clients reconnect with their resume tokens, sends
   that fail are resent with the same ``client_msg_id`` until acknowledged;
5. after: the killed node's host runs again on another node (a new process, one per name),
   every acknowledged message is in its room's history exactly once;
6. a node added back: the replica Serve could not place while two nodes were left (one a
   node) starts on it, the moved host killed again is placed by Ray on the node set as it
   is now, and every room still answers with its whole history;
7. chaos (``--chaos``, on by default): on the same three nodes, this hub's gateway and hosts
   stopped, the chaos suite's hub (``tests.chaos.nodes``: owned Redis and PostgreSQL, a
   host and a replica a node) under its bounded load of rooms, playlists and parties, and
   a worker node killed whole; the report's ``chaos`` is the checker's ``Report``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import ray
import websockets

from benchmarks.multinode import LocalNodes, poll, spread_gateway
from cluster.ingress import free_port, ray_env
from rthub import config
from rthub.config import OPERATOR_PORTS, Settings
from serve.auth import issue_token
from tests.serve.client import Client

log = logging.getLogger("tests.multinode.scenario")
ROOMS = 9  # over three hosts: every host runs some
SECRET = uuid.uuid4().hex * 2
LOAD_ENV = {"RTHUB_CHAT_RATE": "10000", "RTHUB_CHAT_BURST": "10000", "RTHUB_RATE_LIMITS": "",
            "RTHUB_QUEUE_TARGET_MS": "60000", "RTHUB_HOST_QUEUE_LIMIT": "1000000",
            "WS_HEARTBEAT_INTERVAL": "600", "RTHUB_LOG_LEVEL": "WARNING"}


def listeners(port: int) -> list[dict[str, Any]]:
    """Who listens on ``port`` now (a diagnosis for a stuck run)."""
    import psutil

    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(conn.pid)
                found.append({"pid": conn.pid, "status": proc.status(),
                              "cmd": " ".join(proc.cmdline())[:80]})
    return found


def hub_settings(data_dir: Path, replicas: int, hosts: int) -> Settings:
    """A hub of its own (namespace, ports, data dir), with the load limits for people off:
    the senders here are faster than people."""
    env = {"RTHUB_DATA_DIR": str(data_dir), "RTHUB_JWT_SECRET": SECRET,
           "RTHUB_NAMESPACE": f"mn{uuid.uuid4().hex[:8]}", "RTHUB_HOSTS": str(hosts),
           "RTHUB_HOST_CPUS": "1", "RTHUB_GATEWAY_REPLICAS": str(replicas),
           "RTHUB_WS_PORT": str(free_port()), "RTHUB_HTTP_PORT": str(free_port()),
           "RTHUB_OPERATOR_PORT": str(free_port()), **LOAD_ENV}
    return config.load(env)  # no POSTGRES_URL / REDIS_URL: embedded servers, fresh each run


class Scenario:
    def __init__(self, nodes: LocalNodes, settings: Settings, hub: Any) -> None:
        self.nodes, self.settings, self.hub = nodes, settings, hub
        self.url = f"ws://127.0.0.1:{settings.ws_port}/ws"
        self.ports = range(settings.operator_port, settings.operator_port + OPERATOR_PORTS)
        self.report: dict[str, Any] = {"steps": {}}
        self.acked: dict[str, set[str]] = {}  # room -> texts acknowledged

    def token(self, user: str) -> str:
        return issue_token(SECRET, user, ttl_s=3600)

    def step(self, name: str, started: float, **facts: Any) -> None:
        facts["seconds"] = round(time.monotonic() - started, 1)
        self.report["steps"][name] = facts
        log.info("%s: %s", name, facts)

    # -- placement ---------------------------------------------------------------------------
    def hosts(self) -> dict[str, dict[str, Any]]:
        """{host name: {pid, node}} of the hashed hosts, each asked for its own pid."""
        return self.nodes.host_placement(self.settings)

    def replicas(self, nodes: int) -> dict[str, dict[str, Any]]:
        """The live replicas, once there is one on each of ``nodes`` nodes and no more."""
        def spread() -> dict[str, dict[str, Any]] | None:
            found = self.nodes.replicas(self.ports)
            on = Counter(r["node"] for r in found.values())
            return found if len(on) == nodes and max(on.values()) == 1 else None

        return poll(spread, 120, 0.5, f"one gateway replica on each of {nodes} nodes")

    # -- clients -----------------------------------------------------------------------------
    async def spread_clients(self, replicas: dict[str, dict[str, Any]], per_node: int = 2
                             ) -> list[tuple[Client, str]]:
        """Connect until every node has ``per_node`` sockets: [(client, node)]."""
        nodes = {r["node"] for r in replicas.values()}
        clients: list[tuple[Client, str]] = []
        counts: Counter[str] = Counter()
        for i in range(60):
            client = await Client.connect(self.url, self.token(f"u{i}"))
            node = replicas[client.welcome["content"]["gateway"]]["node"]
            clients.append((client, node))
            counts[node] += 1
            if all(counts[n] >= per_node for n in nodes):
                break
        return clients

    async def send_until_acked(self, sender: dict[str, Any], room: str, text: str) -> None:
        """``chat.send`` until acknowledged: after a lost socket, on a resumed one; after
        ``unavailable`` (outcome unknown, or shed), again with the same client_msg_id."""
        while True:
            client: Client = sender["client"]
            try:
                await client.ask("chat.send", {"room": room, "text": text,
                                               "client_msg_id": text}, within=20)
                self.acked[room].add(text)
                return
            except (websockets.ConnectionClosed, OSError, TimeoutError) as exc:
                sender["errors"].append(f"send: {type(exc).__name__}")
                await self.reconnect(sender)
            except AssertionError as refused:  # an error frame
                sender["retries"] += 1
                if "unavailable" not in str(refused):
                    raise
                await asyncio.sleep(0.2)  # retry_after_ms's floor is short; the host restarts

    async def reconnect(self, sender: dict[str, Any]) -> None:
        """Resume the sender's session on whichever replica the port gives now, as a client
        SDK does: a 1011 (the session's host restarting after the node loss) is retried; a
        4403 (token refused) or a resume still refused after ~12 s starts a fresh session
        (the user is still a member of the room), and counts as a refusal."""
        token = sender["client"].welcome["content"]["resume_token"]
        with contextlib.suppress(Exception):
            await sender["client"].close()
        query = f"?resume={token}"
        for attempt in range(100):
            try:
                sender["client"] = await Client.connect(self.url, self.token(sender["user"]),
                                                        query=query)
                break
            except websockets.ConnectionClosed as closed:
                code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (
                    None, "")
                sender["errors"].append(f"closed {code}: {reason}"[:120])
                if query and (code == 4403 or (code == 1011 and attempt >= 60)):
                    sender["refused"].append(f"{code} {reason}"[:80])  # a fresh session
                    query = ""
                else:  # 1011: the session's host is restarting (its node was lost): again
                    await asyncio.sleep(0.2)
            except Exception as exc:  # refused, reset, or cut mid-handshake by the loss
                sender["errors"].append(f"{type(exc).__name__}: {exc}"[:120])
                await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"{sender['user']} could not reconnect")
        sender["reconnects"] += 1
        sender["resumed"] += bool(sender["client"].welcome["content"]["resumed"])
        sender["fresh"] += not query

    async def history(self, client: Client, room: str) -> list[str]:
        texts: list[str] = []
        before = None
        while True:
            content = {"room": room, "limit": 100, **({"before_seq": before} if before else {})}
            page = await client.ask("chat.history", content, within=30)
            texts += [m["text"] for m in page["messages"]]
            if not page["more"] or not page["messages"]:
                return texts
            before = min(m["seq"] for m in page["messages"])

    # -- the run -----------------------------------------------------------------------------
    async def run(self, kill: str) -> dict[str, Any]:
        report = self.report
        t = time.monotonic()
        hosts = self.hosts()
        replicas = self.replicas(len(self.nodes.nodes))
        report["placement_before"] = {"hosts": hosts, "replicas": replicas}
        self.step("placement", t, host_nodes=sorted({h["node"] for h in hosts.values()}),
                  replica_nodes=sorted({r["node"] for r in replicas.values()}))

        t = time.monotonic()
        clients = await self.spread_clients(replicas)
        socket_nodes = Counter(node for _, node in clients)
        self.step("sockets", t, sockets_per_node=dict(socket_nodes))

        # across nodes: one member per node in a room; the first node's socket sends
        t = time.monotonic()
        one_per_node = {}
        for client, node in clients:
            one_per_node.setdefault(node, client)
        members = list(one_per_node.items())
        (from_node, sender), receivers = members[0], members[1:]
        await sender.ask("room.create", {"room_id": "across", "name": "across"})
        for _, client in receivers:
            await client.ask("room.join", {"room": "across"})
        await sender.ask("chat.send", {"room": "across", "text": "hello from " + from_node,
                                       "client_msg_id": "across-1"})
        got = []
        for node, client in receivers:
            frame = await client.expect("chat.message", within=20,
                                        has={"text": "hello from " + from_node})
            got.append({"node": node, "text": frame["content"]["text"]})
        self.step("across_nodes", t, sent_from=from_node, delivered_to=got)
        for client, _ in clients:
            await client.close()

        system = self.hub.system
        rooms = [f"room{i}" for i in range(ROOMS)]
        room_host = {room: system.host_for(("default", "room", room)) for room in rooms}
        report["rooms_per_host"] = dict(Counter(room_host.values()))

        # senders: one per room, each on the port (they land on every node's replicas)
        t = time.monotonic()
        senders = []
        for i, room in enumerate(rooms):
            user = f"s{i}"
            client = await Client.connect(self.url, self.token(user))
            await client.ask("room.create", {"room_id": room, "name": room})
            self.acked[room] = set()
            senders.append({"user": user, "room": room, "client": client, "reconnects": 0,
                            "resumed": 0, "fresh": 0, "retries": 0, "errors": [], "refused": [],
                            "node": replicas[client.welcome["content"]["gateway"]]["node"]})
        # the victim, chosen once the kernel has spread the senders: the worker node with a
        # host and the most senders on it (then the most replicas), so the loss hits clients
        victims = [n for n in self.nodes.nodes if n.name != "head"
                   and any(h["node"] == n.name for h in hosts.values())]
        victim = max(victims, key=lambda n: (sum(s["node"] == n.name for s in senders),
                                             sum(r["node"] == n.name for r in replicas.values())))
        moved = sorted(name for name, h in hosts.items() if h["node"] == victim.name)
        on_victim = sum(s["node"] == victim.name for s in senders)
        stop = asyncio.Event()
        killed_at: list[float] = []
        acked_after: dict[str, int] = {room: 0 for room in rooms}

        async def load(sender: dict[str, Any]) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                text = f"{sender['room']}-{n}-{uuid.uuid4().hex[:6]}"
                await self.send_until_acked(sender, sender["room"], text)
                if killed_at:
                    acked_after[sender["room"]] += 1
                await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(load(s)) for s in senders]
        await asyncio.sleep(3)  # load before the loss: acknowledged sends to every host
        before_kill = sum(len(v) for v in self.acked.values())
        t_kill = time.monotonic()
        if kill == "node":
            await asyncio.to_thread(self.nodes.kill_node, victim)
        else:
            await asyncio.to_thread(self.nodes.remove, victim)
        killed_at.append(t_kill)

        def host_back() -> dict[str, Any] | None:
            with contextlib.suppress(Exception):
                now = self.hosts()
                if all(now[name]["pid"] != hosts[name]["pid"] and now[name]["node"]
                       for name in moved):
                    return now
            return None

        hosts_after = await asyncio.to_thread(poll, host_back, 120, 0.5, "moved hosts back")
        host_back_s = time.monotonic() - t_kill

        def every_room_acked() -> bool:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()
            return all(acked_after[room] >= 3 for room in rooms)

        try:
            await asyncio.to_thread(poll, every_room_acked, 60, 0.2,
                                    "sends acked after the loss")
        except TimeoutError:
            report["stuck"] = {s["room"]: {"acked_after": acked_after[s["room"]],
                                           "host": room_host[s["room"]],
                                           "reconnects": s["reconnects"],
                                           "errors": s["errors"][-3:]} for s in senders}
            report["listeners"] = listeners(self.settings.ws_port)
            raise
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        self.step("node_lost", t, victim=victim.name, how=kill, moved_hosts=moved,
                  hosts_after={n: hosts_after[n] for n in moved},
                  host_back_s=round(host_back_s, 1), senders_on_victim=on_victim,
                  acked_before_loss=before_kill,
                  acked_total=sum(len(v) for v in self.acked.values()),
                  reconnects=sum(s["reconnects"] for s in senders),
                  resumed=sum(s["resumed"] for s in senders),
                  fresh_sessions=sum(s["fresh"] for s in senders),
                  resume_refusals=sorted({r for s in senders for r in s["refused"]}),
                  resends=sum(s["retries"] for s in senders),
                  connect_errors=sum(len(s["errors"]) for s in senders),
                  alive_nodes=len(self.nodes.alive_node_ids()))

        # nothing lost: every acknowledged text in its room's history, once
        t = time.monotonic()
        missing, duplicated = {}, {}
        for sender in senders:
            room = sender["room"]
            texts = await self.history(sender["client"], room)
            lost = self.acked[room] - set(texts)
            twice = [x for x, c in Counter(texts).items() if c > 1]
            if lost:
                missing[room] = sorted(lost)[:5]
            if twice:
                duplicated[room] = twice[:5]
        self.step("history", t, missing=missing, duplicated=duplicated,
                  checked=sum(len(v) for v in self.acked.values()))

        # a node added back: the replica Serve could not place (one a node) lands on it, and
        # the moved host, killed again, is placed by Ray on the node set as it is now
        t = time.monotonic()
        added = self.nodes.add_worker()  # Cluster.add_node: from the main thread only
        replicas_now = await asyncio.to_thread(self.replicas, len(self.nodes.nodes))
        again = moved[0]
        pid = hosts_after[again]["pid"]
        ray.kill(ray.get_actor(again, namespace=self.settings.namespace), no_restart=False)

        def restarted() -> dict[str, Any] | None:
            with contextlib.suppress(Exception):
                now = self.hosts()
                if now[again]["pid"] != pid and now[again]["node"]:
                    return now
            return None

        hosts_final = await asyncio.to_thread(poll, restarted, 90, 0.5, "host restarted")
        for sender in senders:
            await self.send_until_acked(sender, sender["room"], f"{sender['room']}-final")
        final_missing = {}
        for sender in senders:
            texts = set(await self.history(sender["client"], sender["room"]))
            if lost := self.acked[sender["room"]] - texts:
                final_missing[sender["room"]] = sorted(lost)[:5]
        self.step("node_added", t, added=added.name, replicas=len(replicas_now),
                  replica_nodes=dict(Counter(r["node"] for r in replicas_now.values())),
                  host_nodes=dict(Counter(h["node"] for h in hosts_final.values())),
                  host_pids_unique=len({h["pid"] for h in hosts_final.values()}) == len(
                      hosts_final), missing=final_missing)
        report["placement_after"] = {"hosts": hosts_final, "replicas": replicas_now}
        for sender in senders:
            await sender["client"].close()
        return report


def release(hub: Any) -> None:
    """Stop the launcher's gateway app and hosts, leaving Ray, Serve and the nodes: the
    chaos run deploys a hub of its own there, whose hosts need the CPUs these reserve."""
    from ray import serve as rayserve

    rayserve.delete("rthub")
    hub.system.shutdown_hosts()
    hub.system = None  # nothing left for LocalHub.stop to checkpoint


async def chaos(nodes: LocalNodes, serve_port: int, work: Path) -> dict[str, Any]:
    """Step 7: one node-kill run of the chaos suite's bounded load on these nodes (six
    subscribers: the victim must serve some, and the kernel spreads them over 3 nodes)."""
    from tests.chaos.harness import BOUNDED
    from tests.chaos.load import Shape
    from tests.chaos.nodes import node_kill_once

    started = time.monotonic()
    shape = Shape(**{**dataclasses.asdict(BOUNDED), "subscribers": 6})
    report = await node_kill_once(nodes, serve_port, work, shape)
    log.info("chaos: %s, lost %d, p50/p99 %s/%s s, %s", report.fault, report.lost,
             report.pct(0.5), report.pct(0.99), report.notes)
    return {**dataclasses.asdict(report), "run_s": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", choices=("node", "remove"), default="node",
                        help="how the worker node goes: its raylet and workers SIGKILLed "
                             "(a machine that dies), or Cluster.remove_node")
    parser.add_argument("--chaos", action=argparse.BooleanOptionalAction, default=True,
                        help="then the chaos suite's node-kill run on the same nodes")
    parser.add_argument("--out", type=Path, help="write the JSON report here (default: "
                        "stdout's last line; Ray writes to stdout too)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="rthub-multinode-"))
    # one replica from the launcher, then three spread by the redeploy: fewer replicas to
    # start twice
    settings = hub_settings(data_dir, replicas=1, hosts=3)
    for name, value in ray_env(settings).items():
        os.environ.setdefault(name, value)
    nodes = LocalNodes().start()
    os.environ["RAY_ADDRESS"] = nodes.address
    from cluster.local import LocalHub

    hub = LocalHub(settings)
    report: dict[str, Any] = {}
    try:
        resolved = hub.start().replace(gateway_replicas=3)
        spread_gateway(resolved, per_node=1)  # one replica a node, as the ops config has it
        scenario = Scenario(nodes, resolved, hub)
        report = scenario.report  # filled as the steps pass: a failure reports how far
        report["started_s"] = round(time.monotonic() - started, 1)
        asyncio.run(scenario.run(args.kill))
        if args.chaos:
            release(hub)
            try:
                report["chaos"] = asyncio.run(chaos(nodes, resolved.http_port,
                                                    data_dir / "chaos"))
            except Exception as exc:  # the chaos test says so; steps 1-6 stand
                log.exception("the chaos step failed")
                report["chaos"] = {"error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:
        log.exception("the scenario failed")
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            hub.stop()
        nodes.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    report["total_s"] = round(time.monotonic() - started, 1)
    if args.out:
        args.out.write_text(json.dumps(report))
    else:
        sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
