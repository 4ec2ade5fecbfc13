"""What Ray must know before it starts (its processes read the environment at start).

* ``RAY_worker_niceness=0``: Ray starts its workers at niceness 15, as if they were batch
  tasks. The gateway replicas and actor hosts are the service: at 15, any busy process at 0
  on the machine (a client, Postgres) takes the core from them for seconds, long enough for
  clients to time out their pings (seen in CI on this machine kind while it was busy).
* Under RTHUB_INGRESS=direct every gateway replica binds the WebSocket port itself (``serve
  .sockets``): user code runs on the replica's own event loop
  (``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0``; otherwise every Serve call into the
  replica crosses threads).
* The open-files soft limit is raised to the hard one, since Ray's workers inherit it and
  each socket is a descriptor.

An operator's own value of any of these wins.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import socket

from rthub.config import Settings

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on this machine now (tests, benchmarks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raise_open_files_limit() -> int:
    """Raise this process's open-files soft limit to the hard limit (Ray's processes
    inherit it); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def ray_env(settings: Settings) -> dict[str, str]:
    """Ray's flags for the hub (see module doc)."""
    limit = raise_open_files_limit()
    if limit < settings.max_sockets_per_replica + 1024:
        log.warning("the open-files limit (%d) is below RTHUB_MAX_SOCKETS_PER_REPLICA (%d): "
                    "a replica will fail to accept before it is full", limit,
                    settings.max_sockets_per_replica)
    flags = {"RAY_worker_niceness": "0"}
    if settings.ingress == "direct":
        flags["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] = "0"
    return flags
