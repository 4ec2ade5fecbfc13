"""The first line of a results file: the command that made it, when, on what, how busy."""

from __future__ import annotations

import os
import sys
import time


def run_heading(module: str, runs: int, load: tuple[float, float], *, when: str = "",
                generator: str = "the load generator") -> str:
    """Servers on core 0 and ``generator`` on core 1, as every comparison here runs; the
    load average before and after says whether other work shared the machine (figures from
    a busy machine are read differently). ``when`` goes after the date (e.g. versions)."""
    command = " ".join([f"python -m {module}", *sys.argv[1:]])
    return (f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}{when}, servers pinned to core 0 "
            f"and {generator} to core 1 (`taskset`, {os.cpu_count()}-core machine), median of "
            f"{runs} run{'s' * (runs > 1)}. Load average {load[0]:.2f} before the run, "
            f"{load[1]:.2f} after"
            + (" (other work was running on the machine)." if load[0] > 0.5 else "."))
