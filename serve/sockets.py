"""The replica's own WebSocket listener: picows on RTHUB_WS_PORT, shared by `SO_REUSEPORT`.

Every gateway replica of a node binds the same port; the kernel spreads new connections over
them, so no proxy relays a frame. The upgrade request is judged before any socket opens:
`/healthz` is answered for load balancers, a bad or missing token gets 401 (403 for a token
that may not have this path), a draining or full replica 503, and only then 101 with the
negotiated subprotocol. picows objects are used only from the loop that created them (the
replica's; picows checks it).

Edges of `SO_REUSEPORT` (README "The WebSocket port"): sockets already open never move to a
new replica; a listener that closes drops the connections still in its accept queue unless
`net.ipv4.tcp_migrate_req=1`; any process of the same user may bind the port too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson
from picows import (
    WSFrame,
    WSListener,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from rthub.errors import HubError, Unauthorized, Unavailable
from serve import protocol
from serve.auth import Identity
from serve.connection import Connection
from serve.tls import CHECK_EVERY_S, ServerTLS
from serve.wire import Outgoing

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0  # for the client's close frame (or for it to read ours) before we hang up
HANDSHAKE_TIMEOUT_S = 10.0
READ_BUFFER_BYTES = 2048  # picows's smallest (it grows for larger frames); its default is 16 KiB
_TEXT, _BINARY, _CONTINUATION, _CLOSE = 1, 2, 0, 8
_JSON_HEADERS = {"Content-Type": "application/json"}


def refusal(status: int, error: HubError) -> WSUpgradeResponseWithListener:
    """An HTTP answer instead of an upgrade, with the protocol's error object as its body."""
    body = orjson.dumps(error.to_content())
    response = WSUpgradeResponse.create_error_response(status, body, _JSON_HEADERS)
    return WSUpgradeResponseWithListener(response, None)


def json_answer(content: dict[str, Any], status: int = 200) -> WSUpgradeResponseWithListener:
    body = orjson.dumps(content)
    response = (WSUpgradeResponse.create_ok_response(body, _JSON_HEADERS) if status == 200
                else WSUpgradeResponse.create_error_response(status, body, _JSON_HEADERS))
    return WSUpgradeResponseWithListener(response, None)


class SocketServer:
    """The WebSocket port of one gateway replica."""

    def __init__(self, core: GatewayCore, host: str | None, port: int) -> None:
        self.core = core
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        settings = core.settings
        self.tls = (ServerTLS(settings.tls_cert, settings.tls_key)
                    if settings.tls_cert and settings.tls_key else None)
        self._watch: asyncio.Task | None = None
        # picows's own limit, past which it closes with 1009; frames between our limit and
        # this one are answered ``too_large`` and the socket stays open.
        self._max_frame = max(16 * core.settings.max_frame_bytes, 1 << 20)

    async def start(self) -> None:
        self._server = await ws_create_server(
            self._route, self.host, self.port, reuse_port=True, backlog=4096,
            websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S, max_frame_size=self._max_frame,
            read_buffer_init_size=READ_BUFFER_BYTES, logger_name="rthub",
            use_aiofastnet=False,  # the loop's own (uvloop) transport: ~5 KB less a socket
            ssl=self.tls.context if self.tls else None)
        if self.tls is not None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_certificate())
        log.info("gateway %s listening for %s on %s:%d", self.core.gateway_id,
                 "wss://" if self.tls else "WebSockets", self.host, self.port)

    async def _watch_certificate(self) -> None:
        """A certificate replaced on disk serves the next handshakes (not a restart)."""
        assert self.tls is not None
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            self.tls.refresh()

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def stop(self) -> None:
        """Stop accepting (drain): open sockets are the gateway's to close."""
        if self._server is not None:
            self._server.close()
        if self._watch is not None:
            self._watch.cancel()

    def _route(self, request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        core = self.core
        path, _, query = request.path.decode("latin-1").partition("?")
        if path == "/healthz":
            state = {"ok": not core.draining, "gateway": core.gateway_id,
                     "connections": len(core.connections)}
            return json_answer(state, 200 if state["ok"] else 503)
        if path == "/ws":
            path_user = None
        elif path.startswith("/ws/") and "/" not in path[4:] and len(path) > 4:
            path_user = unquote(path[4:])
        else:
            return refusal(404, HubError(f"no route {path!r}: connect to /ws"))
        if request.method != b"GET":
            return refusal(405, HubError("a WebSocket upgrade is a GET"))
        if core.draining:
            return refusal(503, Unavailable("this gateway is restarting: connect again"))
        if len(core.connections) >= core.settings.max_sockets_per_replica:
            core.metrics.refused.labels("full").inc()
            return refusal(503, Unavailable("this gateway is full: connect again"))
        params = parse_qs(query)
        try:
            identity = core.identify(request.headers.get("authorization", ""),
                                     params.get("token", [None])[0], path_user)
        except HubError as err:
            core.metrics.refused.labels(err.code).inc()
            log.info("refused a socket before the upgrade: %s", err.message)
            return refusal(401 if isinstance(err, Unauthorized) else 403, err)
        subprotocol = protocol.choose_subprotocol(
            request.headers.get("sec-websocket-protocol", ""))
        headers = {"Sec-WebSocket-Protocol": subprotocol} if subprotocol else None
        socket = PicowsSocket(core, identity, subprotocol or protocol.JSON,
                              params.get("resume", [None])[0])
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(headers),
                                             socket)


class PicowsSocket(WSListener):
    """One upgraded socket: picows calls in with frames, the connection writes through it."""

    __slots__ = ("_batcher", "_fragments", "_fragments_text", "_identity", "_limit", "_resume",
                 "_transport", "_ws", "conn", "core", "encoding", "pending")

    def __init__(self, core: GatewayCore, identity: Identity, encoding: str,
                 resume: str | None) -> None:
        self.core = core
        self._identity = identity
        self.encoding = encoding
        self._resume = resume
        self._ws: WSTransport | None = None
        self._transport: Any = None
        self._batcher = core.batcher
        self._limit = core.settings.send_buffer_bytes
        self.pending: list[bytes] = []  # frames of this loop turn, written in one call
        self.conn: Connection | None = None
        self._fragments: list[bytes] | None = None  # a message arriving in several frames
        self._fragments_text = False

    # -- picows callbacks -----------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        self._transport = transport.underlying_transport
        peer = self._transport.get_extra_info("peername")
        ip = self.core.network.client_ip(peer[0] if peer else "",
                                         transport.request.headers.get("x-forwarded-for"))
        # The handshake is over and its headers were read in ``_route``: free them (the
        # token alone is hundreds of bytes, kept for the socket's whole life otherwise).
        transport.request.headers.clear()
        transport.response.headers.clear()
        conn = Connection(self.core, self, self._identity, self.encoding,
                          f"c-{secrets.token_hex(8)}", ip, self._resume)
        self.conn = conn
        self._identity = None  # type: ignore[assignment]  # the connection holds it now
        self.core.accept(conn)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        conn = self.conn
        if kind in (_TEXT, _BINARY):
            if self._fragments is not None:  # a new message inside a fragmented one
                self._protocol_error("a new message began before the last one ended")
                return
            if not frame.fin:
                self._fragments = [frame.get_payload_as_bytes()]
                self._fragments_text = kind == _TEXT
                return
            conn.received(self._text(frame.get_payload_as_bytes()) if kind == _TEXT
                          else frame.get_payload_as_bytes())
        elif kind == _CONTINUATION:
            parts = self._fragments
            if parts is None:
                self._protocol_error("a continuation frame without a message to continue")
                return
            parts.append(frame.get_payload_as_bytes())
            if sum(map(len, parts)) > self.core.settings.max_frame_bytes * 16:
                self._protocol_error("a fragmented message over the size limit", 1009)
                return
            if frame.fin:
                data = b"".join(parts)
                self._fragments = None
                conn.received(self._text(data) if self._fragments_text else data)
        elif kind == _CLOSE:
            conn.peer_closed(frame.get_close_code())
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:  # a pong (pings are answered by picows)
            conn.heard()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.conn is not None:
            self.conn.ended()

    def pause_writing(self) -> None:  # the bytes limit decides (Connection.too_slow)
        pass

    def resume_writing(self) -> None:
        pass

    # -- the connection's sink ----------------------------------------------------------------
    def write(self, out: Outgoing) -> None:
        self._batcher.queue(self, out.wire(self.encoding))

    def flush(self) -> None:
        """Write what this turn queued, in one call (the close frame must come after it);
        past RTHUB_SEND_BUFFER_BYTES unsent, the client is too slow (4413)."""
        pending = self.pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._limit:
            self.conn.too_slow()

    def close(self, code: int, reason: str) -> None:
        """The close frame after everything queued; hang up once the client answers it, or
        after CLOSE_WAIT_S if it does not read (a slow client)."""
        ws = self._ws
        if ws is None or ws.is_disconnected:
            return
        self.flush()
        ws.send_close(code, reason.encode()[:123])
        asyncio.get_running_loop().call_later(CLOSE_WAIT_S, ws.disconnect, False)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        if not self._transport.is_closing():
            self._transport.resume_reading()

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _text(data: bytes) -> str | bytes:
        """A text frame's payload; invalid UTF-8 stays bytes, which the decoder refuses."""
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data

    def _protocol_error(self, reason: str, code: int = 1002) -> None:
        log.info("closing %s: %s", self.conn.id if self.conn else "?", reason)
        self._fragments = None
        if self.conn is not None:
            self.conn.close(code, reason)
