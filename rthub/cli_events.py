"""``rthub events tail``: follow a family stream from a terminal, one JSON line per event.

Without ``--group`` it only reads (new events, or ``--from-start`` everything kept); with one
it is a consumer of that group like any service's (``client.events``): it acknowledges what
it printed, and takes over what a dead consumer of the group held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from rthub.event_catalog import FAMILIES


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``events`` subcommand of ``rthub``."""
    events = commands.add_parser("events", help="the hub's event streams: "
                                                "`rthub events tail --family music`")
    events.add_argument("action", choices=["tail"])
    events.add_argument("--family", required=True, choices=FAMILIES)
    events.add_argument("--tenant", default="default")
    events.add_argument("--group", default=None,
                        help="read as a consumer of this group (acknowledging what it prints)")
    events.add_argument("--consumer", default=None, help="this consumer's name in the group")
    events.add_argument("--from-start", action="store_true",
                        help="begin with the oldest entry kept (default: new ones only)")
    events.add_argument("--count", type=int, default=None,
                        help="stop after this many events (default: follow until Ctrl-C)")


def redis_url(configured: str | None, data_dir: Path) -> str:
    """REDIS_URL, or the embedded Redis a local hub (``rthub up``) recorded it runs on."""
    from fanout.embedded import recorded_url

    url = configured or recorded_url(Path(data_dir))
    if url:
        return url
    raise SystemExit(f"rthub: REDIS_URL is not set and no local hub runs on {data_dir} "
                     "(start one with `make up`, or set REDIS_URL)")


def tail(url: str, args: argparse.Namespace) -> int:
    """Print events as JSON lines until ``--count`` or Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(url, args))
    return 0


async def _tail(url: str, args: argparse.Namespace) -> None:
    from client.events import EventConsumer

    printed = 0
    start = "0" if args.from_start else "$"
    async with EventConsumer(url, args.tenant, args.family, group=args.group,
                             consumer=args.consumer, start=start) as events:
        async for event in events:
            sys.stdout.write(json.dumps({
                "type": event.type, "v": event.version, "id": event.id, "topic": event.topic,
                "seq": event.seq, "ts": event.ts_ms, "data": event.data}) + "\n")
            sys.stdout.flush()
            await events.ack(event)
            printed += 1
            if args.count is not None and printed >= args.count:
                return
