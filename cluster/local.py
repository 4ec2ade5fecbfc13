"""The local launcher behind ``rthub up``: embedded servers where no URL is given, a Ray head
(or the cluster at RAY_ADDRESS), the actor hosts and the Serve gateway, all stopped cleanly
on exit."""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
import threading
import time
import urllib.request
from pathlib import Path

import ray

from actors.client import ActorSystem
from cluster.ingress import ray_env
from notify.service import notifier
from notify.service import stop as stop_notifier
from rthub.config import OPERATOR_PORTS, Settings
from storage.crypto import dev_keys
from storage.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


def dev_secret(data_dir: Path) -> str:
    """The JWT secret of a dev hub with no RTHUB_JWT_SECRET: made once, kept in the data dir,
    so dev tokens stay valid across restarts."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class LocalHub:
    """Everything one ``rthub up`` runs; ``start()`` returns the settings with URLs resolved."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres: EmbeddedPostgres | None = None
        self.redis = None
        self.system: ActorSystem | None = None
        self.dashboard_url: str | None = None
        self.operator = ""  # a ready replica's operator origin, once started
        self.model: Path | None = None  # the recommendation artifact served, if any

    def start(self) -> Settings:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Ray workers (hosts, gateway replicas) do not share the launcher's directory.
        settings = settings.replace(data_dir=settings.data_dir.resolve())
        if settings.postgres_url is None:
            self.postgres = EmbeddedPostgres(settings.data_dir)
            settings = settings.replace(postgres_url=self.postgres.url)
        if settings.redis_url is None:
            from fanout.embedded import EmbeddedRedis, record_url

            self.redis = EmbeddedRedis(settings.data_dir)
            record_url(settings.data_dir, self.redis.url)  # for `rthub maintenance`
            settings = settings.replace(redis_url=self.redis.url)
        if settings.jwt_secret is None and settings.jwt_jwks is None:
            settings = settings.replace(jwt_secret=dev_secret(settings.data_dir))
        if settings.encryption_keys is None:
            log.warning("RTHUB_ENCRYPTION_KEYS is unset: sealing chat text and attachments with "
                        "a dev key kept in %s", settings.data_dir)
            settings = settings.replace(encryption_keys=dev_keys(settings.data_dir))
        # Serve's flags must be in the environment before Ray starts (its processes inherit
        # them); a value already set by the operator wins.
        for name, value in ray_env(settings).items():
            os.environ.setdefault(name, value)
        address = os.environ.get("RAY_ADDRESS")
        # no RAY_ADDRESS: a Ray of its own ("local"), even if another runs on the machine
        # (ray.init() alone would join the latest one started)
        context = ray.init(address=address or "local", namespace=settings.namespace,
                           num_cpus=None if address else os.cpu_count(),
                           configure_logging=False, log_to_driver=False)
        self.dashboard_url = getattr(context, "dashboard_url", None)
        self.settings = settings
        self.system = ActorSystem(settings)
        hosts = self.system.start()
        ray.get([host.stats.remote() for host in hosts])  # each host connected and migrated
        ray.get(notifier(settings).start.remote())  # other processes send through it
        from serve.app import start as start_gateway  # imports Serve: only when running it

        start_gateway(settings)
        self.operator = wait_until_ready(settings)
        from serve.deployments.recommender import deploy as deploy_models

        self.model = deploy_models(settings)
        return settings

    def stop(self) -> None:
        """Drain the gateway (1012), checkpoint every entity, stop Ray and embedded servers."""
        if ray.is_initialized():
            from ray import serve as rayserve

            try:
                rayserve.shutdown()
            except Exception as exc:
                log.warning("could not stop Serve cleanly: %s", exc)
        if self.system is not None:
            hosts = [self.system.host(f"rthub-host-{i}") for i in range(self.settings.hosts)]
            try:
                saved = sum(ray.get([host.shutdown.remote() for host in hosts], timeout=30))
                log.info("checkpointed %d entities", saved)
            except Exception as exc:  # the log still holds every acknowledged change
                log.warning("could not checkpoint before stopping: %s", exc)
            self.system.shutdown_hosts()
            stop_notifier(self.settings)
        if ray.is_initialized():
            ray.shutdown()
        if self.redis is not None:
            from fanout.embedded import forget_url

            forget_url(self.settings.data_dir)
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()


def public_host(settings: Settings) -> str:
    """The address to print and probe: the listen address, or loopback for a wildcard."""
    return (settings.http_host if settings.http_host not in (None, "", "0.0.0.0", "::")
            else "127.0.0.1")


def operator_base(settings: Settings, port: int | None = None) -> str:
    """An operator origin (``/metrics``, ``/readyz``), by default the first port's; plain
    HTTP, loopback for a wildcard address."""
    host = settings.operator_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.operator_port if port is None else port}"


def find_operator(settings: Settings, timeout_s: float) -> str | None:
    """The operator origin of a ready replica of *this* hub: a replica takes the first free
    port from RTHUB_OPERATOR_PORT, which another program may hold, so the ports are tried in
    turn until one answers ``/readyz`` with this hub's namespace (polled: from outside)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for port in range(settings.operator_port,
                          min(settings.operator_port + OPERATOR_PORTS, 65536)):
            base = operator_base(settings, port)
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                    if json.loads(answer.read()).get("namespace") == settings.namespace:
                        return base
            except (OSError, ValueError):
                continue  # nothing there, not ready yet, or not an rthub operator port
        time.sleep(0.2)
    return None


def tls(settings: Settings) -> bool:
    return bool(settings.tls_cert and settings.tls_key)


def ws_url(settings: Settings) -> str:
    """Where clients connect: a replica's own port, or Serve's proxy under ``proxy``."""
    port = settings.ws_port if settings.ingress == "direct" else settings.http_port
    return f"{'wss' if tls(settings) else 'ws'}://{public_host(settings)}:{port}/ws"


def http_base(settings: Settings) -> str:
    """The HTTP API's origin (HTTPS with a certificate configured)."""
    return (f"{'https' if tls(settings) else 'http'}://{public_host(settings)}:"
            f"{settings.http_port}")


def wait_until_ready(settings: Settings, timeout_s: float = 60.0) -> str:
    """Until the app answers on Serve's HTTP port, a replica is ready on its operator port
    and, under direct ingress, answers ``/healthz`` on the WebSocket port: the URLs printed
    next must work when they are printed. Returns the ready replica's operator origin."""
    scheme = "https" if tls(settings) else "http"
    operator = find_operator(settings, timeout_s)
    if operator is None:
        raise RuntimeError(f"no gateway replica became ready on an operator port from "
                           f"{operator_base(settings)} in {timeout_s:.0f} s")
    urls = [f"{http_base(settings)}/healthz"]
    if settings.ingress == "direct":
        urls.append(f"{scheme}://{public_host(settings)}:{settings.ws_port}/healthz")
    for url in urls:
        if not ready_at(url, timeout_s):
            raise RuntimeError(f"the gateway did not become ready at {url} in {timeout_s:.0f} s")
    return operator


def ready_at(url: str, timeout_s: float) -> bool:
    """Until ``url`` answers 200 (polled: nothing to wait on from outside)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # our own port, probed for life: its certificate is the clients' to check
            with urllib.request.urlopen(url, timeout=2,
                                        context=ssl._create_unverified_context()) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass  # not listening yet, or Serve's proxy answering before the app runs
        time.sleep(0.2)
    return False


def run_until_stopped(settings: Settings, stop: threading.Event) -> None:
    """Start the hub, say where everything is, wait for ``stop``, shut down."""
    from serve.auth import issue_token

    hub = LocalHub(settings)
    try:
        resolved = hub.start()
        base = http_base(resolved)
        log.info("rthub is up")
        log.info("  websocket: %s", ws_url(resolved))
        log.info("  http api:  %s/v1/ (search, attachments, audit)", base)
        log.info("  operator:  %s/metrics and /readyz (one replica's; each has a port of its "
                 "own from %d, on %s only)", hub.operator, resolved.operator_port,
                 resolved.operator_host)
        if resolved.jwt_secret:
            log.info("  dev token: %s  (user 'alice'; `rthub token --user NAME` for more)",
                     issue_token(resolved.jwt_secret, "alice", ttl_s=86_400))
            log.info("  admin:     %s/admin?token=%s  (live analytics; user 'ops', scope admin)",
                     base, issue_token(resolved.jwt_secret, "ops", scopes="admin", ttl_s=86_400))
        log.info("  app:       %s/app  (the web app: log in with a dev token, or add "
                 "?token=<jwt>)", base)
        log.info("  postgres:  %s%s", resolved.postgres_url, " (embedded)" if hub.postgres else "")
        log.info("  redis:     %s%s", resolved.redis_url, " (embedded)" if hub.redis else "")
        log.info("  ray:       %s", f"http://{hub.dashboard_url}" if hub.dashboard_url
                 else "dashboard not running")
        log.info("  hosts:     %d actor hosts in namespace %r", resolved.hosts, resolved.namespace)
        log.info("  models:    %s", f"serving {hub.model} as app {resolved.recommend_app!r}"
                 if hub.model else "none trained (`rthub ml train --synthetic`); "
                 "recommendations answer from popularity")
        log.info("Ctrl-C stops everything")
        stop.wait()
        log.info("stopping")
    finally:
        hub.stop()
