"""What a server costs: the CPU and memory of its whole process tree.

For rthub that tree is ``rthub up`` and every Ray process under it, plus the embedded
PostgreSQL and Redis, which daemonise (their parent is init, not the hub): they are found by
their working directory, inside the hub's data dir.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil


def server_processes(pid: int, data_dir: str = "") -> list[psutil.Process]:
    """``pid``, its descendants, and (with ``data_dir``) the servers running inside it."""
    root = psutil.Process(pid)
    found = {p.pid: p for p in (root, *root.children(recursive=True))}
    if data_dir:
        inside = Path(data_dir).resolve()
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ValueError):
                if proc.pid not in found and Path(proc.cwd()).resolve().is_relative_to(inside):
                    for member in (proc, *proc.children(recursive=True)):
                        found[member.pid] = member
    return list(found.values())


def cpu_by_process(pid: int, data_dir: str = "") -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) used so far, per process: {pid: (name, seconds)}."""
    seconds = {}
    for proc in server_processes(pid, data_dir):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            seconds[proc.pid] = (proc.name(), times.user + times.system)
    return seconds


def tree_cpu(pid: int, data_dir: str = "") -> float:
    """CPU seconds used so far by the whole server."""
    return sum(seconds for _, seconds in cpu_by_process(pid, data_dir).values())


def tree_rss(pid: int, data_dir: str = "") -> int:
    """Resident bytes of the whole server."""
    total = 0
    for proc in server_processes(pid, data_dir):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total
