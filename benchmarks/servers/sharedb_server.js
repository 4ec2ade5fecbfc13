// Comparison server for benchmarks/playlists.py: ShareDB 7 with its in-memory database and
// pub/sub (ShareDB.MemoryDB, the default MemoryPubSub), behind a ws server; every socket is a
// ShareDB agent speaking ShareDB's own JSON protocol (handshake, subscribe, fetch, op).
// Usage: node sharedb_server.js <port>   (or SHAREDB_PORT=<port>)
const http = require("http");
const ShareDB = require("sharedb");
const WebSocket = require("ws");
const WebSocketJSONStream = require("@teamwork/websocket-json-stream");

const port = parseInt(process.argv[2] || process.env.SHAREDB_PORT, 10);
const backend = new ShareDB({ db: new ShareDB.MemoryDB() });
const server = http.createServer();
const wss = new WebSocket.Server({ server, perMessageDeflate: false });
wss.on("connection", (ws) => backend.listen(new WebSocketJSONStream(ws)));
server.listen(port, "127.0.0.1");
process.on("SIGINT", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
