"""The local launcher behind ``rthub up``: embedded servers where no URL is given, a Ray head
(or the cluster at RAY_ADDRESS), and the actor hosts, all stopped cleanly on exit."""

from __future__ import annotations

import logging
import os
import threading

import ray

from actors.client import ActorSystem
from rthub.config import Settings
from storage.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


class LocalHub:
    """Everything one ``rthub up`` runs; ``start()`` returns the settings with URLs resolved."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres: EmbeddedPostgres | None = None
        self.system: ActorSystem | None = None
        self.dashboard_url: str | None = None

    def start(self) -> Settings:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.postgres_url is None:
            self.postgres = EmbeddedPostgres(settings.data_dir)
            settings = settings.replace(postgres_url=self.postgres.url)
        address = os.environ.get("RAY_ADDRESS")
        context = ray.init(address=address or None, namespace=settings.namespace,
                           num_cpus=None if address else os.cpu_count(),
                           configure_logging=False, log_to_driver=False)
        self.dashboard_url = getattr(context, "dashboard_url", None)
        self.system = ActorSystem(settings)
        hosts = self.system.start()
        ray.get([host.stats.remote() for host in hosts])  # each host connected and migrated
        self.settings = settings
        return settings

    def stop(self) -> None:
        """Checkpoint every entity, then stop hosts, Ray and the embedded server."""
        if self.system is not None:
            lanes = [self.system.host(f"rthub-host-{i}") for i in range(self.settings.hosts)]
            try:
                saved = sum(ray.get([host.shutdown.remote() for host in lanes], timeout=30))
                log.info("checkpointed %d entities", saved)
            except Exception as exc:  # the log still holds every acknowledged change
                log.warning("could not checkpoint before stopping: %s", exc)
            self.system.shutdown_hosts()
        if ray.is_initialized():
            ray.shutdown()
        if self.postgres is not None:
            self.postgres.stop()


def run_until_stopped(settings: Settings, stop: threading.Event) -> None:
    """Start the hub, say where everything is, wait for ``stop``, shut down."""
    hub = LocalHub(settings)
    try:
        resolved = hub.start()
        log.info("rthub is up")
        log.info("  postgres:  %s%s", resolved.postgres_url,
                 " (embedded)" if hub.postgres else "")
        log.info("  ray:       %s", f"http://{hub.dashboard_url}" if hub.dashboard_url
                 else "dashboard not running")
        log.info("  hosts:     %d actor hosts in namespace %r", resolved.hosts, resolved.namespace)
        log.info("  the WebSocket gateway arrives with issue 3; Ctrl-C stops everything")
        stop.wait()
        log.info("stopping")
    finally:
        hub.stop()
