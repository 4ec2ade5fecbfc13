"""The HTTP API's OpenAPI 3.0 description, served at ``GET /v1/openapi.json`` without a token.

Written by hand next to ``serve.http_api`` (the routes are plain Starlette, with nothing to
derive a schema from) and kept honest by tests: tests/serve/test_http_fuzz.py checks that
every route of ``HttpApi.routes()`` is described here and nothing else is, and runs
schemathesis against the served document (responses must match it, errors included).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

ERROR_CODES = ("bad_request", "unauthorized", "forbidden", "not_found", "conflict",
               "rate_limited", "too_large", "unavailable", "internal")
# HTTP status -> the PROTOCOL.md code its error body carries (415: an upload of a type the
# hub does not take is a bad request too).
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                409: "conflict", 413: "too_large", 415: "bad_request", 429: "rate_limited",
                503: "unavailable"}
_DESCRIPTIONS = {
    400: "The request cannot be understood (a parameter or the body is wrong).",
    401: "No token, or one that is invalid, expired or revoked.",
    403: "The token may not do this (a scope is missing), or the client's address is refused.",
    404: "No such resource (or none the token may read).",
    409: "The request clashes with current state.",
    413: "The body is over its limit.",
    415: "The upload is not one of the allowed file types.",
    429: "Too many requests: retry after ``Retry-After`` seconds (``retry_after_ms`` too).",
    503: "The hub could not complete it now; retry (with the same idempotency key).",
}
GUARDED = (400, 401, 403, 429, 503)  # what any route behind the token check may answer

NAME = {"type": "string", "minLength": 1, "maxLength": 200}
ENTITY_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,128}$"}
MILLIS = {"type": "integer", "format": "int64"}
MAX_MS = 253_402_300_799_999  # what a timestamp holds (year 9999)
TRACK: dict[str, Any] = {"description": "A track id, or an object with an ``id``."}
JSON_OBJECT = {"type": "object", "additionalProperties": True}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False,
         **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": extra, **more}
    if required:
        schema["required"] = list(required)
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False
           ) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"required": True, "description": description,
            "content": {"application/json": {"schema": schema}}}


def _operation(summary: str, responses: dict[int, dict[str, Any]],
               errors: tuple[int, ...] = (), **more: Any) -> dict[str, Any]:
    """An operation behind the token check: its own responses, then the errors any guarded
    route may answer and ``errors``."""
    found: dict[str, Any] = {str(status): body for status, body in responses.items()}
    for status in sorted({*GUARDED, *errors}):
        found[str(status)] = {"$ref": f"#/components/responses/{status}"}
    return {"summary": summary, "responses": found, **more}


def _error_response(status: int) -> dict[str, Any]:
    schema = {"allOf": [{"$ref": "#/components/schemas/Error"}, _obj(
        {"error": _obj({"code": {"type": "string", "enum": [STATUS_CODES[status]]}},
                       extra=True)}, extra=True)]}
    response = _json(schema, _DESCRIPTIONS[status])
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 0}}}
    return response


def _build() -> dict[str, Any]:
    hit = _obj({"message_id": {"type": "string"}, "room": {"type": "string"},
                "seq": {"type": "integer"}, "sender": {"type": "string"},
                "rank": {"type": "number"}, "text": {"type": "string"}}, extra=True)
    attachment = _obj({"attachment_id": {"type": "string"}, "content_type": {"type": "string"},
                       "size": {"type": "integer"}, "filename": {"type": "string"}},
                      ("attachment_id", "content_type", "size", "filename"))
    audit_entry = _obj({"id": {"type": "integer"}, "at_ms": MILLIS,
                        "actor": {"type": "string"}, "action": {"type": "string"},
                        "room": _nullable({"type": "string"}),
                        "message_id": _nullable({"type": "string"}),
                        "target": _nullable({"type": "string"}),
                        "ip": _nullable({"type": "string"}), "details": JSON_OBJECT}, extra=True)
    status = _obj({"id": {"type": "string"}, "user_id": {"type": "string"},
                   "category": {"type": "string"}, "priority": {"type": "integer"},
                   "title": {"type": "string"}, "status": {"type": "string"},
                   "attempts": {"type": "integer"}, "error": _nullable({"type": "string"}),
                   "created_ms": MILLIS,
                   "channels": {"type": "object", "additionalProperties": _obj({
                       "state": {"type": "string"}, "error": _nullable({"type": "string"}),
                       "attempts": {"type": "integer"}, "updated_ms": _nullable(MILLIS)},
                       extra=True)}}, ("id",), extra=True)
    notification_fields = {
        "user_id": NAME,
        "user_ids": {"type": "array", "minItems": 1, "maxItems": 500, "items": NAME,
                     "description": "The same notification to each (not with ``user_id``)."},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "content": {"type": "string", "maxLength": 4000},
        "body": {"type": "string", "maxLength": 4000, "description": "Same as ``content``."},
        "priority": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 3},
                               {"type": "string", "enum": ["LOW", "NORMAL", "HIGH", "CRITICAL",
                                                           "low", "normal", "high",
                                                           "critical"]}]},
        "category": {"type": "string", "minLength": 1, "maxLength": 64},
        "data": JSON_OBJECT,
        "template": {"type": "string", "description": "Rendered now, with ``params``."},
        "params": JSON_OBJECT,
        "locale": {"type": "string"},
        "channels": {"type": "array", "minItems": 1, "items": {
            "type": "string", "enum": ["in_app", "pusher", "push", "email", "sms"]}},
    }
    notification = _obj(notification_fields)
    device = _obj({
        "kind": {"type": "string", "enum": ["fcm", "apns", "webpush", "email", "sms"]},
        "token": {"type": "string", "description": "fcm / apns: the device token."},
        "subscription": _obj({"endpoint": {"type": "string", "maxLength": 2000},
                              "keys": _obj({"p256dh": {"type": "string"},
                                            "auth": {"type": "string"}}, ("p256dh", "auth"),
                                           extra=True)},
                             ("endpoint", "keys"), extra=True,
                             description="webpush: ``PushSubscription.toJSON()``."),
        "address": {"type": "string", "description": "email: an address; sms: E.164."},
        "app": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,100}$"},
        "user_id": NAME,
    }, ("kind",))
    recommended = _obj({"tracks": {"type": "array", "items": _obj(
        {"track": TRACK, "score": {"type": "number"}}, extra=True)},
        "model": {"type": "string"}, "fallback": {"type": "boolean"}},
        ("tracks", "model", "fallback"))
    token_id = {"type": "string", "minLength": 1, "maxLength": 256}
    scope_note = "Needs the ``{}`` scope (or ``admin``)."
    paths: dict[str, Any] = {
        "/v1/openapi.json": {"get": {
            "summary": "This document.", "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI description.")}}},
        "/v1/search": {"get": _operation(
            "Full-text search over the chat messages of rooms the user is a member of.",
            {200: _json(_obj({"hits": {"type": "array", "items": hit}}, ("hits",)),
                        "Ranked hits.")},
            parameters=[
                _query("q", {"type": "string", "minLength": 1, "maxLength": 500},
                       "The query (web search syntax).", required=True),
                _query("room", ENTITY_ID, "Only this room."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 50,
                                 "default": 20}, "At most this many hits."),
            ])},
        "/v1/attachments": {"post": _operation(
            "Upload a file to attach to chat messages (``chat.send {attachments}``).",
            {201: _json(attachment, "Stored.")}, (413, 415),
            description="Send it with a ``Content-Length`` (no chunked uploads).",
            requestBody={"required": True, "content": {"multipart/form-data": {
                "schema": _obj({"file": {"type": "string", "format": "binary"}}, ("file",),
                               extra=True)}}})},
        "/v1/attachments/{attachment_id}": {"get": _operation(
            "Download an attachment the user uploaded or may read in a room.",
            {200: {"description": "The file, as uploaded.",
                   "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
            (404,),
            parameters=[{"name": "attachment_id", "in": "path", "required": True,
                         "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}}])},
        "/v1/audit": {"get": _operation(
            "The tenant's audit log, oldest first. " + scope_note.format("admin"),
            {200: _json(_obj({"entries": {"type": "array", "items": audit_entry},
                              "next_after": _nullable({"type": "integer"})},
                             ("entries", "next_after")), "A page; pass ``next_after`` on.")},
            parameters=[
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 100}, "At most this many entries."),
                _query("after", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                       "Entries after this id."),
                _query("room", {"type": "string"}, "Only this room's."),
                _query("actor", {"type": "string"}, "Only this user's."),
                _query("action", {"type": "string"}, "Only this action."),
                _query("ip", {"type": "string"}, "Only from this address."),
                _query("since", {"type": "integer", "minimum": 0, "maximum": MAX_MS},
                       "At or after this time (ms since the epoch)."),
                _query("until", {"type": "integer", "minimum": 0, "maximum": MAX_MS},
                       "Before this time (ms since the epoch)."),
            ])},
        "/v1/admin/analytics": {"get": _operation(
            "The tenant's last minutes of live analytics, minute by minute, and its top rooms, "
            "parties, playlists and skipped tracks (the ``/admin`` page draws it). Needs the "
            "``admin`` scope.",
            {200: _json(_obj({"tenant": {"type": "string"}, "minutes": {"type": "integer"},
                              "series": {"type": "array", "items": JSON_OBJECT},
                              "top": JSON_OBJECT,
                              "notifications": {"type": "array", "items": JSON_OBJECT}},
                             ("tenant", "minutes", "series", "top", "notifications"),
                             extra=True), "Oldest minute first.")},
            parameters=[_query("minutes", {"type": "integer", "minimum": 1, "maximum": 60,
                                           "default": 60}, "How many minutes, up to now.")])},
        "/v1/notifications": {"post": _operation(
            "Send a notification to a user (or to ``user_ids``) of the token's tenant. "
            + scope_note.format("notify:send"),
            {200: _json(status, "Accepted before (the same ``Idempotency-Key``)."),
             202: _json({"oneOf": [status, _obj({"ids": {"type": "array", "items": {
                 "type": "string"}}}, ("ids",))]}, "Accepted: its status, or ``ids``.")},
            (413,),
            parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            requestBody=_body(notification, "``user_id`` or ``user_ids``; ``title`` and "
                              "``content``, or ``template`` with ``params``."))},
        "/v1/notifications/bulk": {"post": _operation(
            "Up to 500 notifications, accepted together or not at all. "
            + scope_note.format("notify:send"),
            {202: _json(_obj({"accepted": {"type": "array", "items": _obj(
                {"id": {"type": "string"}, "status": {"type": "string"}}, extra=True)}},
                ("accepted",)), "Accepted, in order.")},
            (413,),
            requestBody=_body(_obj({"notifications": {
                "type": "array", "minItems": 1, "maxItems": 500, "items": _obj(
                    {**notification_fields, "idempotency_key": {
                        "type": "string", "minLength": 1, "maxLength": 200}})}},
                ("notifications",), extra=True), "The notifications (other fields are "
                                                 "ignored)."))},
        "/v1/notifications/{notification_id}": {"get": _operation(
            "A notification's state on each channel. " + scope_note.format("notify:send"),
            {200: _json(status, "Its state.")}, (404,),
            parameters=[{"name": "notification_id", "in": "path", "required": True,
                         "schema": {"type": "string", "minLength": 1}}])},
        "/v1/devices": {
            "get": _operation(
                "Where the user is reached outside the hub. Another user's needs "
                "``notify:send``.",
                {200: _json(_obj({"devices": {"type": "array", "items": _obj({
                    "kind": {"type": "string"}, "address": {"type": "string"},
                    "app": {"type": "string"}, "created_ms": MILLIS,
                    "last_sent_ms": _nullable(MILLIS)}, extra=True)}}, ("devices",)),
                    "The user's targets.")},
                parameters=[_query("user_id", NAME, "Whose (default: the token's user).")]),
            "post": _operation(
                "Register a push token, a Web Push subscription, an email address or a phone "
                "number. Another user's needs ``notify:send``.",
                {200: _json(_obj({"user_id": {"type": "string"}, "kind": {"type": "string"},
                                  "app": {"type": "string"}}, ("user_id", "kind", "app")),
                            "Known already."),
                 201: _json(_obj({"user_id": {"type": "string"}, "kind": {"type": "string"},
                                  "app": {"type": "string"}}, ("user_id", "kind", "app")),
                            "Registered.")},
                (413,), requestBody=_body(device, "The target.")),
            "delete": _operation(
                "Forget a target. Another user's needs ``notify:send``.",
                {204: {"description": "Forgotten."}}, (404, 413),
                requestBody=_body(device, "The target.")),
        },
        "/v1/devices/webpush-key": {"get": _operation(
            "The VAPID public key browsers subscribe with (``applicationServerKey``).",
            {200: _json(_obj({"application_server_key": {"type": "string"}},
                             ("application_server_key",)), "The key (base64url).")},
            (404,))},
        "/v1/recommendations": {"post": _operation(
            "Tracks for a user, from their recent listening, a party's or playlist's, or the "
            "``history`` sent. Another user's needs the ``recommend`` scope.",
            {200: _json(recommended, "The model's tracks (``fallback``: popular ones).")},
            (413,),
            requestBody=_body(_obj({
                "user_id": NAME,
                "context": _obj({"party": ENTITY_ID, "playlist": ENTITY_ID}, maxProperties=1),
                "history": {"type": "array", "maxItems": 200, "items": TRACK},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            }), "Whose, and from what."))},
        "/v1/admin/maintenance": {"post": _operation(
            "Announce maintenance to every connected client of the token's tenant, on every "
            "replica (``system.maintenance``, ephemeral), and export it to the tenant's "
            "system stream. Needs ``admin``.",
            {202: _json(_obj({"message": {"type": "string"}, "at": {"type": "string"},
                              "duration_s": {"type": "integer"},
                              "gateways": {"type": "integer"}},
                             ("message", "at", "gateways")),
                        "Published: the frame's content, and how many replicas Redis "
                        "handed it to.")},
            (413,),
            requestBody=_body(_obj({
                "message": {"type": "string", "minLength": 1, "maxLength": 2000},
                "at": {"type": "string", "description": "RFC 3339, ``now`` or ``+10m``"},
                "duration": {"oneOf": [{"type": "string"},
                                       {"type": "integer", "minimum": 1}],
                             "description": "``30m``, ``1h30m`` or seconds"}},
                ("message", "at"), extra=True), "What clients show, when, for how long."))},
        "/v1/tokens/revoke": {"post": _operation(
            "Revoke one token, or every token of a user; their open sockets close (4410). "
            "Another user's tokens need ``admin``.",
            {200: _json(_obj({"revoked": JSON_OBJECT, "closed_here": {"type": "integer"}},
                             ("revoked", "closed_here")), "Revoked.")},
            (413,),
            requestBody=_body({"oneOf": [
                _obj({"token_id": token_id, "expires_at": {"type": "integer"}},
                     ("token_id", "expires_at"), extra=True),
                _obj({"user_id": token_id, "before": _nullable({"type": "integer"})},
                     ("user_id",), extra=True),
            ]}, "A token (its ``jti`` and ``exp``) or a user; other fields are ignored."))},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "rthub HTTP API", "version": "1",
                 "description": "Same tokens as the WebSocket (PROTOCOL.md); errors are "
                                "``{\"error\": {\"code\", \"message\"}}`` with PROTOCOL.md's "
                                "codes."},
        "paths": paths,
        "security": [{"bearer": []}, {"query_token": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "schemas": {"Error": _obj({"error": _obj({
                "code": {"type": "string", "enum": list(ERROR_CODES)},
                "message": {"type": "string"},
                "retry_after_ms": {"type": "integer", "minimum": 0}},
                ("code", "message"), extra=True)}, ("error",))},
            "responses": {str(s): _error_response(s) for s in sorted(STATUS_CODES)},
        },
    }


SCHEMA = _build()


def operations() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation described."""
    return {(method.upper(), path) for path, item in SCHEMA["paths"].items()
            for method in item}


async def openapi_json(request: Request) -> JSONResponse:
    """``GET /v1/openapi.json``: the document, to anyone (it holds no secrets)."""
    return JSONResponse(SCHEMA)
