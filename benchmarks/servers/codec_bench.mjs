// The JS SDK's msgpack codec (sdk/js/src/msgpack.js) against V8's JSON and @msgpack/msgpack:
// bytes per frame, and ns to encode and decode, for three frames the hub sends.
// Usage: node codec_bench.mjs '{"runs": 5, "iterations": 100000}'; prints one JSON line.
import { decode as libDecode, encode as libEncode } from "@msgpack/msgpack";
import { decode, encode } from "../../sdk/js/src/msgpack.js";

const config = JSON.parse(process.argv[2] ?? "{}");
const runs = config.runs ?? 5;
const iterations = config.iterations ?? 100000;

const message = (i) => ({
  type: "chat.message", topic: "room:lobby-2f9c", seq: 1200 + i, epoch: "1733333333123-0",
  timestamp: "2026-12-04T19:03:01.123Z",
  content: {
    room: "lobby-2f9c", message_id: `01JEXAMPLE${String(i).padStart(16, "0")}`, sender: "ana",
    text: `message ${i}: on écoute quoi ce soir ?`, client_msg_id: `m-${i}`, ts: 1733333333333 + i,
  },
});
const FRAMES = {
  "time.pong": { type: "time.pong", ref: 7, content: { t0: 1733333333333.25, t1: 1733333333334.5, t2: 1733333333334.75 } },
  "chat.message": message(1),
  "chat.history ack (50 messages)": { type: "ack", ref: 8, content: { messages: Array.from({ length: 50 }, (_, i) => message(i).content), more: true } },
};
const text = new TextDecoder();
const utf8 = new TextEncoder();
const CODECS = {
  JSON: { encode: (f) => utf8.encode(JSON.stringify(f)), decode: (b) => JSON.parse(text.decode(b)) },
  "sdk/js msgpack": { encode, decode },
  "@msgpack/msgpack 3.1.3": { encode: libEncode, decode: libDecode },
};

function time(fn, n) {
  for (let i = 0; i < n / 10; i++) fn(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - start) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];
for (const [frameName, frame] of Object.entries(FRAMES)) {
  const n = frameName.includes("50") ? Math.max(1, Math.floor(iterations / 40)) : iterations;
  for (const [codecName, codec] of Object.entries(CODECS)) {
    const bytes = codec.encode(frame);
    const back = codec.decode(bytes);
    if (JSON.stringify(back) !== JSON.stringify(frame)) throw new Error(`${codecName} changed ${frameName}`);
    const enc = [];
    const dec = [];
    for (let r = 0; r < runs; r++) {
      enc.push(time(() => codec.encode(frame), n));
      dec.push(time(() => codec.decode(bytes), n));
    }
    results.push({ frame: frameName, codec: codecName, bytes: bytes.length, encode_ns: median(enc), decode_ns: median(dec), iterations: n });
  }
}
console.log(JSON.stringify({ node: process.version, runs, results }));
