"""schemathesis over the HTTP API, against a deployed hub: every operation of the served
``/v1/openapi.json``, with positive and negative data and with good, missing and bad
tokens. No response is a 5xx, each matches the document (status, content type, body), and
every 4xx carries ``{"error": {"code", "message"}}`` with the code of its status.

Bounded (MAX_EXAMPLES per operation) and deterministic (derandomized), so a failure here
repeats; ``serve.openapi`` is the document, and the first test keeps it and the routes in
step.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from serve import openapi
from serve.http_api import HttpApi
from tests.serve.conftest import Hub

MAX_EXAMPLES = int(os.environ.get("RTHUB_FUZZ_EXAMPLES", "25"))  # per operation; more locally
# Who sends: a token with every scope, a plain user's, none, and tokens the hub must refuse.
CREDENTIALS = ("admin", "admin", "admin", "query", "user", "none", "garbage", "expired",
               "forged")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


def test_the_schema_describes_every_route_and_nothing_else() -> None:
    routes = HttpApi(None).routes()  # type: ignore[arg-type]  # the core is read per request
    served = {(method, route.path) for route in routes if isinstance(route, Route)
              for method in route.methods or () if method != "HEAD"}
    assert served == openapi.operations(), (
        f"routes without a schema: {sorted(served - openapi.operations())}; "
        f"described but not routed: {sorted(openapi.operations() - served)}")
    schema = schemathesis.openapi.from_dict(openapi.SCHEMA)
    assert len([op for op in schema.get_all_operations() if op.ok()]) == len(served)


def test_the_document_is_served_without_a_token(hub: Hub) -> None:
    with urllib.request.urlopen(f"{hub.http}/v1/openapi.json", timeout=20) as response:
        assert response.status == 200
        assert json.loads(response.read()) == json.loads(json.dumps(openapi.SCHEMA))


# The document in code is the one served (the test above); schemathesis reads it at import,
# so each operation is a test of its own, run against the session's deployed hub.
schema = schemathesis.openapi.from_dict(openapi.SCHEMA)
schema.config.generation.update(modes=["positive", "negative"], max_examples=MAX_EXAMPLES,
                                deterministic=True, with_security_parameters=False,
                                database="none")
# A bad request may be refused for its size (413) or for the resource it names (404) too.
schema.config.checks.negative_data_rejection.expected_statuses = [
    "400", "401", "403", "404", "409", "413", "415", "429"]


def _credentials(hub: Hub, who: str, user: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query) sending ``who``'s credentials (a user no case can name: a revoke
    of a fuzzed user id never revokes the tokens this test sends)."""
    tokens = {
        "admin": hub.token(user, scopes="admin notify:send recommend"),
        "query": hub.token(user, scopes="admin notify:send recommend"),
        "user": hub.token(user),
        "expired": hub.token(user, ttl_s=-60),
        "forged": hub.token(user, scopes="admin").rsplit(".", 1)[0] + ".c2lnbmF0dXJl",
        "garbage": "not-a-jwt",
    }
    if who == "none":
        return {}, {}
    if who == "query":
        return {}, {"token": tokens[who]}
    return {"Authorization": f"Bearer {tokens[who]}"}, {}


def _error_shape(response: Any) -> None:
    """A 4xx body is ``{"error": {"code", "message"}}`` with the code of its status."""
    status = response.status_code
    if not 400 <= status < 500:
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("message"), str), body
    assert error.get("code") == openapi.STATUS_CODES.get(status), (status, body)
    if status == 429:
        assert int(response.headers["retry-after"]) >= 0


@schema.parametrize()
@schema.given(who=st.sampled_from(CREDENTIALS))
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_any_request_with_a_documented_response(
        case: Any, who: str, hub: Hub) -> None:
    user = f"fuzz-{uuid.uuid4().hex[:12]}"
    headers, query = _credentials(hub, who, user)
    if query:
        case.query = {**(case.query or {}), **query}
    response = case.call(base_url=hub.http, headers=headers, timeout=30)
    case.validate_response(response, checks=CHECKS, headers=headers)
    _error_shape(response)
    if case.operation.path != "/v1/openapi.json" and who in (
            "none", "garbage", "expired", "forged"):
        assert response.status_code == 401, (who, response.status_code)



# What schemathesis rarely builds, each a 500 once: nesting past Python's recursion limit,
# NUL (which PostgreSQL refuses) in a parameter or body, a Unicode digit, a time past year
# 9999, a multipart part without a name, a non-string user.
CRAFTED = [
    ("POST", "/v1/notifications", {}, b"[" * 10_000),
    ("POST", "/v1/notifications/bulk", {}, b'{"notifications":' + b"[" * 100_000),
    ("POST", "/v1/recommendations", {}, b"[" * 10_000),
    ("POST", "/v1/devices", {}, b"[" * 10_000),
    ("POST", "/v1/tokens/revoke", {}, b"[" * 10_000),
    ("POST", "/v1/recommendations", {}, b'{"user_id": 5}'),
    ("POST", "/v1/recommendations", {}, b'{"context": {"party": "p\\u0000"}}'),
    ("POST", "/v1/notifications", {}, b'{"user_id": "u\\u0000", "title": "t"}'),
    ("POST", "/v1/notifications/bulk", {},
     b'{"notifications": [{"user_id": "u", "title": "t\\u0000"}]}'),
    ("POST", "/v1/tokens/revoke", {}, b'{"user_id": "u\\u0000"}'),
    ("GET", "/v1/search?q=a%00", {}, b""),
    ("GET", "/v1/search?q=a&limit=%C2%B2", {}, b""),
    ("GET", "/v1/audit?since=99999999999999999", {}, b""),
    ("GET", "/v1/audit?room=r%00", {}, b""),
    ("GET", "/v1/devices?user_id=u%00", {}, b""),
    ("GET", "/v1/notifications/n%00", {}, b""),
    ("POST", "/v1/attachments", {"content-type": "multipart/form-data; boundary=b"},
     b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % n
              for n in range(5)) + b"--b--\r\n"),  # more fields than an upload has
    ("POST", "/v1/attachments", {"content-type": "multipart/form-data; boundary=b"},
     b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), CRAFTED,
                         ids=[f"{m} {p[:40]}" for m, p, _, _ in CRAFTED])
def test_crafted_bad_requests_are_bad_request(hub: Hub, method: str, path: str,
                                              headers: dict[str, str], body: bytes) -> None:
    token = hub.token(f"fuzz-{uuid.uuid4().hex[:12]}", scopes="admin notify:send recommend")
    response = httpx.request(method, f"{hub.http}{path}", content=body, timeout=30,
                             headers={**headers, "authorization": f"Bearer {token}"})
    assert response.status_code == 400, (response.status_code, response.text[:200])
    _error_shape(response)
