"""``rthub up`` and ``rthub token`` end to end, as a newcomer runs them."""

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import jwt
import pytest
import websockets

from cluster.ingress import free_port
from tests.certs import self_signed


def wait_for_line(proc: subprocess.Popen, needle: str) -> list[str]:
    """Read the process's log until ``needle`` shows up (or it exits)."""
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never logged; output:\n{''.join(seen)}")


def field(log: list[str], name: str) -> str:
    return next(line.split(f"{name}:", 1)[1].split()[0] for line in log if f" {name}:" in line)


async def hello(url: str, token: str, trust: ssl.SSLContext | None = None
                ) -> tuple[dict, dict]:
    """The welcome, and a chat message sent to a new room and broadcast back."""
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  open_timeout=30, ssl=trust) as ws:
        welcome = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "room.create", "id": 1,
                                  "content": {"room_id": "hello", "name": "hello"}}))
        await ws.send(json.dumps({"type": "chat.send", "id": 2, "content": {
            "room": "hello", "text": "hi", "client_msg_id": "c1"}}))
        while (frame := json.loads(await ws.recv()))["type"] != "chat.message":
            assert frame["type"] != "error", frame
        return welcome, frame


@pytest.mark.parametrize("ingress", ["direct", "proxy", "direct+tls"])
def test_up_serves_websockets_on_embedded_servers_and_stops_cleanly(tmp_path: Path, ingress):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("RAY_SERVE_")}  # the suite's own Serve flags
    env.update({"RTHUB_DATA_DIR": str(tmp_path / "data"), "RAY_ADDRESS": "",
                "RTHUB_NAMESPACE": f"cli{uuid.uuid4().hex[:8]}",
                "RTHUB_INGRESS": ingress.removesuffix("+tls"),
                "RTHUB_HTTP_PORT": str(free_port()), "RTHUB_WS_PORT": str(free_port()),
                "RTHUB_OPERATOR_PORT": str(free_port())})
    trust = None  # with TLS: the client trusts the hub's own certificate, nothing else
    if ingress.endswith("+tls"):
        cert, key, _ = self_signed(tmp_path)
        env.update({"RTHUB_TLS_CERT": cert, "RTHUB_TLS_KEY": key})
        trust = ssl.create_default_context(cafile=cert)
    for name in ("POSTGRES_URL", "REDIS_URL", "RTHUB_JWT_SECRET"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-c", "from rthub.cli import main; main(['up'])"],
                            env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        log = wait_for_line(proc, "Ctrl-C stops everything")
        assert "(embedded)" in field(log, "postgres") + "".join(log)
        assert field(log, "websocket").startswith("wss://" if trust else "ws://")
        welcome, message = asyncio.run(hello(field(log, "websocket"), field(log, "dev token"),
                                             trust))
        assert welcome["type"] == "session.welcome"
        assert welcome["content"]["user_id"] == "alice"
        assert (message["topic"], message["content"]["text"]) == ("room:hello", "hi")
        # where `rthub maintenance` finds the embedded Redis while the hub runs
        assert (tmp_path / "data" / "redis-url").read_text().strip() == field(log, "redis")
        operator = field(log, "operator")  # metrics and readiness: loopback, off client ports
        assert operator.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(operator, timeout=10) as metrics:
            assert b"rthub_frames_in_total" in metrics.read()
        with urllib.request.urlopen(operator.replace("/metrics", "/readyz"), timeout=10) as ready:
            assert json.loads(ready.read())["ready"] is True
        api = field(log, "http api").removesuffix("/v1/")
        admin = field(log, "admin")  # the page, and the figures it reads with that token
        assert admin.startswith(f"{api}/admin?token=")
        with urllib.request.urlopen(admin, timeout=10, context=trust) as page:
            assert b"<html" in page.read().lower()
        request = urllib.request.Request(f"{api}/v1/admin/analytics?minutes=5", headers={
            "Authorization": "Bearer " + admin.split("token=", 1)[1]})
        with urllib.request.urlopen(request, timeout=10, context=trust) as figures:
            assert json.loads(figures.read())["minutes"] == 5
        app = field(log, "app")  # the web app, told where the WebSocket is
        assert app == f"{api}/app"
        with urllib.request.urlopen(f"{app}/config.json", timeout=10, context=trust) as config:
            assert json.loads(config.read())["ws_url"] == field(log, "websocket")
        client_ports = [api] + ([] if ingress == "proxy" else [
            field(log, "websocket").replace("ws", "http", 1).removesuffix("/ws")])
        for origin in client_ports:
            for path in ("/metrics", "/readyz"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(origin + path, timeout=10, context=trust)
                assert refused.value.code == 404
        if ingress != "proxy":  # the WebSocket port answers a load balancer's checks
            health = (field(log, "websocket").replace("ws", "http", 1)
                      .replace("/ws", "/healthz"))
            with urllib.request.urlopen(health, timeout=10, context=trust) as answer:
                assert json.loads(answer.read())["ok"] is True
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()  # kept for the next start
    assert not (tmp_path / "data" / "redis-url").exists()


def test_token_prints_a_signed_token_with_the_asked_claims(tmp_path: Path):
    env = {**os.environ, "RTHUB_JWT_SECRET": "s3cret" * 6}
    out = subprocess.run(
        [sys.executable, "-c", "from rthub.cli import main; main()", "token", "--user", "bob",
         "--tenant", "acme", "--scope", "notify:send admin", "--ttl", "15m"],
        env=env, capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path).stdout
    claims = jwt.decode(out.strip(), "s3cret" * 6, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert claims["tenant"] == "acme"
    assert claims["scope"] == "notify:send admin"
    assert claims["exp"] - claims["iat"] == 900


def test_token_refuses_a_malformed_ttl(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", "from rthub.cli import main; main()", "token", "--user", "bob",
         "--ttl", "forever"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        check=False)
    assert result.returncode == 2
    assert "--ttl must look like 90s, 15m, 1h or 7d, got 'forever'" in result.stderr
