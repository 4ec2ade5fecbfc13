"""The product description's Python API, for any process that reaches the hub:

```python
from rthub.realtime import realtime_hub, NotificationPriority, websocket_endpoint

await realtime_hub.initialize()
await realtime_hub.notification_manager.send_notification(
    user_id="user123", title="Nouvelle Chanson Ajoutée",
    content="Votre ami a ajouté une chanson à la playlist partagée",
    priority=NotificationPriority.HIGH)
```

``initialize()`` joins the hub's Ray cluster (``RAY_ADDRESS``, or a cluster this process
already joined; the hub's namespace from ``RTHUB_NAMESPACE``) and talks to its notifier; or,
with ``RTHUB_URL`` (the hub's HTTP API) and ``RTHUB_TOKEN`` (a token with the
``notify:send`` scope), it sends over HTTP. ``websocket_endpoint(websocket, user_id)`` serves
a client socket mounted in the caller's own FastAPI or Starlette app (cluster mode only: it
runs a gateway in this process). This module is the hub's facade, so unlike the rest of
``rthub/`` it sits on top of everything else, and imports it only when asked.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from typing import Any

from notify.model import NotificationPriority
from rthub.errors import HubError, from_content

__all__ = ["NotificationPriority", "realtime_hub", "websocket_endpoint"]


class NotificationManager:
    """Sends notifications; ``RealtimeHub.initialize`` first."""

    def __init__(self, hub: RealtimeHub) -> None:
        self._hub = hub

    async def send_notification(self, user_id: str, title: str, content: str = "",
                                priority: int | str = NotificationPriority.NORMAL,
                                category: str = "general", data: dict[str, Any] | None = None,
                                idempotency_key: str | None = None) -> dict[str, Any]:
        """Accept one notification for ``user_id``; returns its status (``id``, ``status``,
        each channel's state). Raises the hub's error (``bad_request``, ``rate_limited``)."""
        payload = {"user_id": user_id, "title": title, "content": content,
                   "priority": int(priority) if isinstance(priority, int) else priority,
                   "category": category, "data": data or {}}
        return await self._hub._send(payload, idempotency_key)

    async def status(self, notification_id: str) -> dict[str, Any] | None:
        """Where a notification is: the notification and each channel's delivery state."""
        return await self._hub._status(notification_id)


class RealtimeHub:
    """A process's connection to the hub."""

    def __init__(self) -> None:
        self.notification_manager = NotificationManager(self)
        self.tenant = os.environ.get("RTHUB_TENANT", "default")
        self._notifier: Any = None
        self._url: str | None = None
        self._token: str | None = None
        self._gateway: Any = None

    async def initialize(self, address: str | None = None, namespace: str | None = None,
                         url: str | None = None, token: str | None = None) -> None:
        """Join the hub: its Ray cluster, or its HTTP API (``url`` / ``RTHUB_URL``)."""
        url = url or os.environ.get("RTHUB_URL")
        if url:
            self._url = url.rstrip("/")
            self._token = token or os.environ.get("RTHUB_TOKEN")
            if not self._token:
                raise ValueError("RTHUB_URL needs RTHUB_TOKEN (a token with 'notify:send')")
            return
        import ray

        from notify.service import NAME

        namespace = namespace or os.environ.get("RTHUB_NAMESPACE", "rthub")
        if not ray.is_initialized():
            ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto",
                     namespace=namespace, configure_logging=False, log_to_driver=False)
        try:
            self._notifier = ray.get_actor(NAME, namespace=namespace)
        except ValueError:
            raise RuntimeError(f"no hub in Ray namespace {namespace!r}: start one with "
                               "`rthub up`, or set RTHUB_NAMESPACE") from None
        await self._notifier.start.remote()

    async def _send(self, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        if self._url is not None:
            return await asyncio.to_thread(self._post, payload, key)
        if self._notifier is None:
            raise RuntimeError("call `await realtime_hub.initialize()` first")
        return await _unwrapped(self._notifier.send.remote(self.tenant, payload, key))

    async def _status(self, ident: str) -> dict[str, Any] | None:
        if self._url is not None:
            return await asyncio.to_thread(self._http, "GET", f"/v1/notifications/{ident}")
        return await _unwrapped(self._notifier.status.remote(self.tenant, ident))

    def _post(self, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
        headers = {"idempotency-key": key} if key else {}
        return self._http("POST", "/v1/notifications", payload, headers)

    def _http(self, method: str, path: str, payload: Any = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self._url}{path}", method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"authorization": f"Bearer {self._token}",
                     "content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}").get("error", {})
            raise from_content(body) from None

    async def gateway(self) -> Any:
        """A gateway in this process, for ``websocket_endpoint`` (cluster mode)."""
        if self._gateway is None:
            if self._notifier is None:
                raise RuntimeError("websocket_endpoint needs the hub's Ray cluster: "
                                   "`await realtime_hub.initialize()` without RTHUB_URL")
            from serve.gateway import GatewayCore

            gateway = GatewayCore(await self._notifier.settings.remote())
            await gateway.start()
            self._gateway = gateway
        return self._gateway


    async def close(self) -> None:
        """Close this process's gateway (its sockets get 1012 and resume elsewhere)."""
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None


async def _unwrapped(call: Any) -> Any:
    """The hub's own error (``bad_request``, ``rate_limited``), not Ray's wrapper of it."""
    import ray

    try:
        return await call
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, HubError):
            raise err.cause from None
        raise


realtime_hub = RealtimeHub()


async def websocket_endpoint(websocket: Any, user_id: str | None = None) -> None:
    """Serve one client socket (a Starlette/FastAPI ``WebSocket``) as the hub's ``/ws``:
    the same protocol, token and sessions as the hub's own port."""
    from serve.asgi_socket import serve_asgi

    await serve_asgi(await realtime_hub.gateway(), websocket, user_id)
