// Comparison server: Socket.IO 4.8 with rooms (websocket transport only).
// Events: "join" <room>  -> joins, acks "joined";  "pub" {room, payload} -> room gets "msg" payload.
// Acknowledged (the request path): "ask" m -> acked with m by the server alone;
// "send" {room, payload} -> room gets "msg" payload, then the sender's ack {ok: true}.
// Usage: node socketio_server.js <port> [--recovery]   (--recovery: connectionStateRecovery
// on, Socket.IO's replay of what a client missed while away, as benchmarks/sdk_js.py needs)
const { Server } = require("socket.io");
const port = parseInt(process.argv[2], 10);
const recovery = process.argv.includes("--recovery")
  ? { connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true } } : {};
const io = new Server(port, { transports: ["websocket"], perMessageDeflate: false,
                              pingInterval: 600000, pingTimeout: 600000, ...recovery });
io.on("connection", (socket) => {
  socket.on("join", (room) => { socket.join(room); socket.emit("joined", room); });
  socket.on("pub", (m) => { io.to(m.room).emit("msg", m.payload); });
  socket.on("ask", (m, ack) => { ack(m); });
  socket.on("send", (m, ack) => { io.to(m.room).emit("msg", m.payload); ack({ ok: true }); });
});
