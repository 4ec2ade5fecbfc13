"""The HTTP API: chat search, attachment upload and download, the audit log, and sending
notifications server to server.

Same tokens as the WebSocket (``Authorization: Bearer`` or ``?token=``), same error codes
(PROTOCOL.md), as JSON ``{"error": {"code", "message"}}`` with the matching HTTP status.
"""

from __future__ import annotations

import errno
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import asyncpg
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.channels import ENTITY_ID
from actors.kinds.tracks import track_id
from notify import targets
from notify.model import Notification, available
from notify.providers.webpush import application_server_key
from notify.service import ensure_running, with_user_locale
from rthub.errors import (
    BadRequest,
    Forbidden,
    HubError,
    NotFound,
    RateLimited,
    TooLarge,
    Unavailable,
)
from serve import admin, chat, protocol
from serve.auth import Identity
from serve.maintenance import announce_route
from serve.openapi import openapi_json
from storage import attachments, audit, listening, notifications, notify_targets
from storage.sniff import UnsupportedType, check_type

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

STATUS = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
          "conflict": 409, "too_large": 413, "rate_limited": 429, "unavailable": 503}
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and headers around the file part
_ATTACHMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AUDIT_MAX = 500
NOTIFY_SCOPE = "notify:send"
RECOMMEND_SCOPE = "recommend"
NOTIFY_BODY_MAX = 16 * 1024
BULK_MAX = 500
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class UnsupportedMedia(BadRequest):
    """An upload whose bytes are not an allowed type (HTTP 415, code ``bad_request``)."""


def _error(err: HubError) -> JSONResponse:
    status = 415 if isinstance(err, UnsupportedMedia) else STATUS.get(err.code, 500)
    return JSONResponse({"error": err.to_content()}, status_code=status)


Endpoint = Callable[[Request], Awaitable[Response]]


class HttpApi:
    """Routes of ``/v1``; every one checks the token first."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("/v1/search", self._guard(self.search), methods=["GET"]),
            Route("/v1/attachments", self._guard(self.upload), methods=["POST"]),
            Route("/v1/attachments/{attachment_id}", self._guard(self.download),
                  methods=["GET"]),
            Route("/v1/audit", self._guard(self.audit), methods=["GET"]),
            Route("/v1/admin/analytics", self._guard(self.analytics), methods=["GET"]),
            Route("/v1/notifications", self._guard(self.notify), methods=["POST"]),
            Route("/v1/notifications/bulk", self._guard(self.notify_bulk), methods=["POST"]),
            Route("/v1/notifications/{notification_id}", self._guard(self.notification),
                  methods=["GET"]),
            Route("/v1/devices", self._guard(self.devices), methods=["GET", "POST", "DELETE"]),
            Route("/v1/devices/webpush-key", self._guard(self.webpush_key), methods=["GET"]),
            Route("/v1/recommendations", self._guard(self.recommend), methods=["POST"]),
            Route("/v1/tokens/revoke", self._guard(self.revoke), methods=["POST"]),
            Route("/v1/admin/maintenance", self._guard(self.maintenance), methods=["POST"]),
            Route("/v1/openapi.json", openapi_json, methods=["GET"]),  # no token: public
        ]

    def _guard(self, endpoint: Callable[[Request, Identity], Awaitable[Response]]) -> Endpoint:
        async def run(request: Request) -> Response:
            core = self.core
            ip = core.network.client_ip(request.client.host if request.client else "",
                                        request.headers.get("x-forwarded-for"))
            who: Identity | None = None
            try:
                core.network.check(ip)
                who = core.identify(request.headers.get("authorization", ""),
                                    request.query_params.get("token"), None, ip)
                if core.limits.active:
                    await core.limits.check("http", who.tenant, who.user, ip, frame=False)
                protocol.storable([*(part for item in request.query_params.multi_items()
                                     for part in item), *request.path_params.values()])
                return await endpoint(request, who)
            except HubError as err:
                if isinstance(err, Forbidden):
                    core.audit.record(who.tenant if who else "default",
                                      who.user if who else "-",
                                      "permission.denied" if who else "ip.refused", ip,
                                      route=request.url.path, reason=err.message)
                response = _error(err)
                if isinstance(err, RateLimited):
                    response.headers["retry-after"] = str(-(-err.retry_after_ms // 1000))
                elif isinstance(err, Unavailable):
                    response.headers["retry-after"] = "1"
                return response

        return run

    # -- search ----------------------------------------------------------------------------
    async def search(self, request: Request, who: Identity) -> Response:
        params = request.query_params
        limit = _int_param(params.get("limit", "20"), "limit")
        found = await chat.search(self.core, who.tenant, who.user, params.get("q"),
                                  params.get("room"), limit)
        return JSONResponse(found)

    # -- attachments -----------------------------------------------------------------------
    async def upload(self, request: Request, who: Identity) -> Response:
        limit = self.core.settings.attachment_max_bytes
        length = request.headers.get("content-length")
        if length is None:
            raise BadRequest("send the upload with a Content-Length")
        if not length.isdigit() or int(length) > limit + MULTIPART_OVERHEAD:
            raise TooLarge(f"the upload is over the {limit}-byte attachment limit")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequest("upload a multipart/form-data body with a 'file' part")
        try:
            async with request.form(max_files=1, max_fields=4) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise BadRequest("the form has no 'file' part")
                data = await upload.read()
                filename = _filename(upload.filename)
        except (HTTPException, MultiPartException) as exc:  # a malformed body: was a 500
            raise BadRequest(f"the multipart body cannot be read: "
                             f"{getattr(exc, 'detail', None) or exc}") from None
        if len(data) > limit:
            raise TooLarge(f"the file is {len(data)} bytes; the limit is {limit}")
        if not data:
            raise BadRequest("the file is empty")
        try:
            content_type = check_type(data, self.core.settings.attachment_types)
        except UnsupportedType as err:
            raise UnsupportedMedia(str(err)) from None
        core = self.core
        try:
            stored = await attachments.store(await core.db(), core.blobs, core.keyring,
                                             who.tenant, who.user, filename, content_type,
                                             data)
        except OSError as exc:  # the blob store's disk is full, or it is unreachable
            log.error("attachment store refused a write: %s", exc)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise Unavailable("the attachment store is full; retry later" if full
                              else "the attachment store is unavailable; retry") from None
        except (asyncpg.PostgresConnectionStatusError, asyncpg.CannotConnectNowError,
                asyncpg.InterfaceError, ConnectionError) as exc:
            raise Unavailable(f"storage unavailable; retry ({type(exc).__name__})") from None
        log.info("attachment %s stored (%s, %d bytes)", stored["attachment_id"], content_type,
                 len(data))
        return JSONResponse(stored, status_code=201)

    async def download(self, request: Request, who: Identity) -> Response:
        attachment_id = request.path_params["attachment_id"]
        if not _ATTACHMENT_ID.match(attachment_id):
            raise BadRequest("not an attachment id")
        core = self.core
        found = await attachments.fetch(await core.db(), core.blobs, core.keyring, who.tenant,
                                        who.user, attachment_id)
        if found is None:
            raise NotFound(f"no attachment {attachment_id!r} that you may read")
        meta, data = found
        return Response(data, media_type=meta["content_type"], headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(meta['filename'])}",
            "x-content-type-options": "nosniff", "cache-control": "private, no-store"})

    # -- audit -----------------------------------------------------------------------------
    async def audit(self, request: Request, who: Identity) -> Response:
        if "admin" not in who.scopes:
            raise Forbidden("the audit log needs the 'admin' scope")
        params = request.query_params
        limit = _int_param(params.get("limit", "100"), "limit")
        if not 1 <= limit <= AUDIT_MAX:
            raise BadRequest(f"'limit' must be from 1 to {AUDIT_MAX}")
        since, until = params.get("since"), params.get("until")
        rows = await audit.query(await self.core.db(), who.tenant,
                                 _int_param(params.get("after", "0"), "after"),
                                 params.get("room"), params.get("actor"), params.get("action"),
                                 limit, ip=params.get("ip"),
                                 since_ms=None if since is None else _ms_param(since, "since"),
                                 until_ms=None if until is None else _ms_param(until, "until"))
        return JSONResponse({"entries": rows, "next_after": rows[-1]["id"] if rows else None})

    async def analytics(self, request: Request, who: Identity) -> Response:
        """The tenant's last hour, minute by minute (``serve.admin``)."""
        return JSONResponse(await admin.analytics(self.core, who,
                                                  request.query_params.get("minutes")))

    # -- revocation ------------------------------------------------------------------------
    async def revoke(self, request: Request, who: Identity) -> Response:
        """Revoke one token (``token_id`` and its ``expires_at``) or every token of a user
        (``user_id``, optionally ``before`` a time in seconds). A user may revoke their own;
        the ``admin`` scope anyone's in its tenant. Open sockets close with 4410."""
        body = await _json_body(request, NOTIFY_BODY_MAX, "revocation")
        if not isinstance(body, dict) or ("token_id" in body) == ("user_id" in body):
            raise BadRequest("send {\"token_id\", \"expires_at\"} or {\"user_id\"}")
        core = self.core
        if "token_id" in body:
            token_id, expires_at = body["token_id"], body.get("expires_at")
            if not isinstance(token_id, str) or not 0 < len(token_id) <= 256:
                raise BadRequest("'token_id' must be the token's jti, 1 to 256 characters")
            if not isinstance(expires_at, int) or isinstance(expires_at, bool):
                raise BadRequest("'expires_at' must be the token's exp (seconds)")
            if "admin" not in who.scopes and token_id != who.token_id:
                raise Forbidden("revoking another token needs the 'admin' scope")
            await core.revocations.revoke_token(who.tenant, token_id, expires_at)
            action, target, answer = "token.revoke", token_id, {"token_id": token_id}
        else:
            user, before = body["user_id"], body.get("before")
            if not isinstance(user, str) or not 0 < len(user) <= 256:
                raise BadRequest("'user_id' must be a user id")
            if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
                raise BadRequest("'before' must be a time in seconds")
            if "admin" not in who.scopes and user != who.user:
                raise Forbidden("revoking another user's tokens needs the 'admin' scope")
            cutoff = await core.revocations.revoke_user(who.tenant, user, before)
            action, target, answer = "user.revoke", user, {"user_id": user, "before": cutoff}
        closed = core.close_revoked()
        core.audit.record(who.tenant, who.user, action, None, target=target)
        log.info("%s revoked %s %s (%d local sockets closed)", who.user, action, target, closed)
        return JSONResponse({"revoked": answer, "closed_here": closed})

    async def maintenance(self, request: Request, who: Identity) -> Response:
        """Announce maintenance to the tenant's clients (``serve.maintenance``)."""
        return await announce_route(self.core, who, lambda: _json_body(
            request, NOTIFY_BODY_MAX, "an announcement"))

    # -- notifications ---------------------------------------------------------------------
    async def notify(self, request: Request, who: Identity) -> Response:
        """Server to server: accept a notification for a user of the token's tenant."""
        _require_scope(who, NOTIFY_SCOPE)
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 200:
            raise BadRequest("'Idempotency-Key' must be 1 to 200 characters")
        payload = await _json_body(request, NOTIFY_BODY_MAX, "a notification")
        core = self.core
        if isinstance(payload, dict) and "user_ids" in payload:
            return await self._notify_many(who, payload, key)
        payload = await with_user_locale(core.ref, who.tenant, payload)
        note = Notification.from_request(payload, core.templates, available(core.settings))
        found, new = await notifications.enqueue(
            await core.db(), who.tenant, note.row(key), core.settings.notification_queue_size)
        ensure_running(core.settings)
        return JSONResponse(found, status_code=202 if new else 200)

    async def _notify_many(self, who: Identity, payload: dict[str, Any], key: str | None
                           ) -> Response:
        """``user_ids``: the same notification to each (PROTOCOL.md), in one transaction;
        with an ``Idempotency-Key`` a retry returns the same ``ids``."""
        users = payload.pop("user_ids")
        if (not isinstance(users, list) or not 1 <= len(users) <= BULK_MAX
                or not all(isinstance(u, str) for u in users) or "user_id" in payload):
            raise BadRequest(f"'user_ids' must be a list of 1 to {BULK_MAX} users (and no "
                             "'user_id' with it)")
        notes = []
        for user in dict.fromkeys(users):
            item = await with_user_locale(self.core.ref, who.tenant,
                                         {**payload, "user_id": user})
            note = Notification.from_request(item, self.core.templates,
                                             available(self.core.settings))
            notes.append(note.row(f"{key}\x1f{user}" if key else None))
        accepted = await notifications.enqueue_many(
            await self.core.db(), who.tenant, notes, self.core.settings.notification_queue_size)
        ensure_running(self.core.settings)
        return JSONResponse({"ids": [a["id"] for a in accepted]}, status_code=202)

    async def notify_bulk(self, request: Request, who: Identity) -> Response:
        """Up to ``BULK_MAX`` notifications in one request, accepted together or not at all
        (one HTTP request and one transaction for all: what a service sending many uses)."""
        _require_scope(who, NOTIFY_SCOPE)
        body = await request.body()
        if len(body) > NOTIFY_BODY_MAX * 64:
            raise TooLarge(f"a bulk request is at most {NOTIFY_BODY_MAX * 64} bytes")
        try:
            items = protocol.storable(json.loads(body)).get("notifications")
        except (ValueError, AttributeError, RecursionError):
            raise BadRequest("the body must be {\"notifications\": [...]}") from None
        if not isinstance(items, list) or not 1 <= len(items) <= BULK_MAX:
            raise BadRequest(f"'notifications' must be a list of 1 to {BULK_MAX}")
        core, notes = self.core, []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadRequest(f"notifications[{n}]: a notification is a JSON object")
            key = item.get("idempotency_key")
            if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
                raise BadRequest(f"notifications[{n}]: 'idempotency_key' must be 1 to 200 "
                                 "characters")
            item = await with_user_locale(core.ref, who.tenant, item)
            try:
                note = Notification.from_request(
                    {k: v for k, v in item.items() if k != "idempotency_key"}, core.templates,
                    available(core.settings))
            except BadRequest as err:
                raise BadRequest(f"notifications[{n}]: {err.message}") from None
            notes.append(note.row(key))
        accepted = await notifications.enqueue_many(
            await core.db(), who.tenant, notes, core.settings.notification_queue_size)
        ensure_running(core.settings)
        return JSONResponse({"accepted": accepted}, status_code=202)

    async def notification(self, request: Request, who: Identity) -> Response:
        _require_scope(who, NOTIFY_SCOPE)
        ident = request.path_params["notification_id"]
        found = await notifications.status(await self.core.db(), who.tenant, ident)
        if found is None:
            raise NotFound(f"no notification {ident!r}")
        return JSONResponse(found)


    # -- recommendations -------------------------------------------------------------------
    async def recommend(self, request: Request, who: Identity) -> Response:
        """``{user_id?, context?: {party | playlist}, history?, limit}``: the model's tracks
        for the user (their own token, or a ``recommend`` scope naming ``user_id``), from
        their recent listening, or the context's, or the ``history`` sent."""
        payload = await _json_body(request, NOTIFY_BODY_MAX, "a request")
        if not isinstance(payload, dict) or set(payload) - {"user_id", "context", "history",
                                                            "limit"}:
            raise BadRequest("the body is {user_id?, context?: {party | playlist}, "
                             "history?: [track], limit?}")
        user = payload.get("user_id", who.user)
        if not isinstance(user, str) or not 1 <= len(user) <= 200:  # was a 500 (or no check)
            raise BadRequest("'user_id' must be a user id of 1 to 200 characters")
        if user != who.user:
            _require_scope(who, RECOMMEND_SCOPE)
        limit = payload.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
            raise BadRequest("'limit' must be an integer from 1 to 50")
        history = payload.get("history")
        context = payload.get("context", {})  # false, 0 or "" are not a context either
        if not isinstance(context, dict) or len(context) > 1 or set(context) - {
                "party", "playlist"} or not all(isinstance(v, str) and ENTITY_ID.match(v)
                                                for v in context.values()):
            raise BadRequest("'context' is {party: <id>} or {playlist: <id>}")
        if history is None:
            where = next((f"{k}:{v}" for k, v in context.items()), None)
            history = await listening.recent(await self.core.db(), who.tenant, user, where, 50)
        elif not isinstance(history, list) or len(history) > 200:
            raise BadRequest("'history' must be a list of at most 200 tracks")
        tracks = [track_id(t) for t in history]
        answer = await self.core.recommendations.ask(who.tenant, str(user), tracks, [], limit)
        return JSONResponse({k: answer[k] for k in ("tracks", "model", "fallback")})

    # -- devices ---------------------------------------------------------------------------
    async def devices(self, request: Request, who: Identity) -> Response:
        """Where a user is reached outside the hub: ``POST`` registers an FCM or APNs token,
        a Web Push subscription, an email address or a phone number; ``DELETE`` forgets one;
        ``GET`` lists them. A user's own token acts for them; a ``notify:send`` token names
        the ``user_id``."""
        if request.method == "GET":
            named = request.query_params.get("user_id")
            if named is not None and not 1 <= len(named) <= 200:  # as POST checks it
                raise BadRequest("'user_id' must be a user id of 1 to 200 characters")
            user = self._device_user(who, named)
            found = await notify_targets.listing(await self.core.db(), who.tenant, user)
            return JSONResponse({"devices": found})
        payload = await _json_body(request, NOTIFY_BODY_MAX, "a device")
        named, target = targets.from_request(payload)
        user = self._device_user(who, named)
        pool = await self.core.db()
        if request.method == "DELETE":
            if not await notify_targets.remove(pool, who.tenant, user, target.kind,
                                               target.address):
                raise NotFound(f"no such {target.kind} target for this user")
            return Response(status_code=204)
        if target.kind not in targets.configured(self.core.settings):
            raise BadRequest(f"this hub has no {target.kind} provider "
                             f"({targets.SETTING[target.kind]} is unset)")
        new = await notify_targets.register(
            pool, who.tenant, user, {"kind": target.kind, "address": target.address,
                                     "app": target.app, "data": target.data}, targets.PER_USER)
        return JSONResponse({"user_id": user, "kind": target.kind, "app": target.app},
                            status_code=201 if new else 200)

    async def webpush_key(self, request: Request, who: Identity) -> Response:
        """The VAPID public key a browser subscribes with (``applicationServerKey``)."""
        key = application_server_key(self.core.settings)
        if key is None:
            raise NotFound("this hub sends no Web Push (RTHUB_VAPID_KEY is unset)")
        return JSONResponse({"application_server_key": key})

    @staticmethod
    def _device_user(who: Identity, named: str | None) -> str:
        if named is None or named == who.user:
            return who.user
        _require_scope(who, NOTIFY_SCOPE)
        return named


async def _json_body(request: Request, limit: int, what: str) -> Any:
    body = await request.body()
    if len(body) > limit:
        raise TooLarge(f"{what} is at most {limit} bytes")
    try:
        return protocol.storable(json.loads(body))
    except (ValueError, RecursionError):  # RecursionError: nested too deep (was a 500)
        raise BadRequest("the body must be a JSON object") from None


def _require_scope(who: Identity, scope: str) -> None:
    if scope not in who.scopes and "admin" not in who.scopes:
        raise Forbidden(f"this needs the {scope!r} scope")


def _int_param(raw: str, name: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # '²' is a digit to isdigit
        raise BadRequest(f"'{name}' must be a non-negative integer")
    return int(raw)


def _ms_param(raw: str, name: str) -> int:
    """A time in ms since the epoch, within what a timestamp holds (was a 500 past it)."""
    value = _int_param(raw, name)
    if value > MAX_MS:
        raise BadRequest(f"'{name}' must be a time in ms up to {MAX_MS} (year 9999)")
    return value


def _filename(raw: Any) -> str:
    """The client's file name, reduced to a harmless base name."""
    name = str(raw or "file").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in "\"'<>")[:200]
    return name or "file"
