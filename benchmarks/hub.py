"""The real hub as every benchmark runs it: ``rthub up`` in a subprocess pinned to core 0,
on embedded servers in a throwaway data dir, with limits meant for people lifted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid

from cluster.ingress import free_port
from serve.auth import issue_token

LOAD_ENV = {
    "RAY_ADDRESS": "", "WS_HEARTBEAT_INTERVAL": "600", "RTHUB_MAX_SOCKETS_PER_REPLICA": "50000",
    "MAX_WS_CONNECTIONS_PER_USER": "1000",
    # load generators send faster than a person; the per-user chat rate limit is for people
    "RTHUB_CHAT_RATE": "10000", "RTHUB_CHAT_BURST": "10000",
    # thousands of sockets from one loopback address: no per-IP limits (benchmarks.security
    # measures what the limits cost)
    "RTHUB_RATE_LIMITS": "",
}


class HubProcess:
    """One ``rthub up``; ``start()`` returns once it printed its URLs (it waits for them to
    work); its log is read in the background so a full pipe never stalls it."""

    def __init__(self, prefix: str, extra_env: dict[str, str] | None = None) -> None:
        self.prefix, self.extra_env = prefix, extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0  # where WebSockets are served
        self.http_port = 0
        self.secret = uuid.uuid4().hex * 2
        self.data_dir = ""

    def start(self) -> None:
        ws_port, self.http_port = free_port(), free_port()
        self.data_dir = tempfile.mkdtemp(prefix=f"rthub-{self.prefix}-")
        env = {**os.environ, **LOAD_ENV, "RTHUB_DATA_DIR": self.data_dir,
               "RTHUB_WS_PORT": str(ws_port), "RTHUB_HTTP_PORT": str(self.http_port),
               "RTHUB_JWT_SECRET": self.secret,
               "RTHUB_NAMESPACE": f"{self.prefix[:4]}{uuid.uuid4().hex[:6]}", **self.extra_env}
        proxy = env.get("RTHUB_INGRESS") == "proxy"
        self.port = self.http_port if proxy else ws_port
        self.proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "rthub.cli",
                                      "up"], env=env, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "Ctrl-C stops everything" in line:
                break
        else:
            raise RuntimeError("rthub up did not start")
        stderr = self.proc.stderr
        threading.Thread(target=lambda: all(True for _ in stderr), daemon=True).start()

    def token(self, user: str) -> str:
        return issue_token(self.secret, user, ttl_s=7200)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
