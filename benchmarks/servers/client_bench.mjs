// The two scenarios of benchmarks/sdk_js.py, written once for both clients: each client
// script (sdk_client.mjs, socketio_client.mjs) supplies an adapter and calls main().
//
//   node <client script> '<config as JSON>'   -> one JSON line on stdout with the figures
//
// An adapter: { name, async open(config, index) -> client }, a client being
//   create(room) / join(room)   the sender makes the room, the others join it (and follow it)
//   send(room, text)             one acknowledged message (a Promise of its ack)
//   onMessage(fn)                fn(text) once per message the library hands the app
//   cut()                        destroy the TCP socket: no close frame, nothing flushed
//   caughtUp()                   until the server knows what this client has read
//   reconnected()                a Promise of {attemptAt, openAt, recovered} for the next
//                                reconnection (attemptAt: the new socket's start)
//   close()
//   resent                       (optional) sends the client had to make again
//   replayed()                   (optional) frames the library received again and dropped
// Times are performance.now() ms: senders and receivers share this process's one clock.
import { performance } from "node:perf_hooks";

export const now = () => performance.now();

/** Nearest-rank percentile (p99 of 100 values is the 99th smallest). */
export function pct(values, q) {
  if (!values.length) return null;
  const ordered = [...values].sort((a, b) => a - b);
  return ordered[Math.max(Math.ceil(q * ordered.length) - 1, 0)];
}

/** `promise`, or an error naming `what` after `ms`: a run that cannot finish says why. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Send messages first..first+count-1 with at most `window` unacknowledged (the hub's
 * max_in_flight), each stamped with the time it was handed to the client. */
async function pump(client, room, first, count, window) {
  let next = first;
  const end = first + count;
  const lane = async () => {
    while (next < end) {
      const i = next++;
      await client.send(room, `${i} ${now().toFixed(3)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
  return now();
}

/** What one receiver was handed: each message id once (a second one is a duplicate). */
class Inbox {
  constructor(client) {
    this.seen = new Set();
    this.duplicates = 0;
    this.latencies = [];
    this.lastAt = 0;
    this.waiters = [];
    client.onMessage((text) => this.add(text));
  }

  add(text) {
    const at = now();
    const [id, sentAt] = text.split(" ");
    if (this.seen.has(id)) {
      this.duplicates += 1;
      return;
    }
    this.seen.add(id);
    this.latencies.push(at - Number(sentAt));
    this.lastAt = at;
    this.waiters = this.waiters.filter(([count, resolve]) => {
      if (this.seen.size < count) return true;
      resolve(at);
      return false;
    });
  }

  /** Resolves with the time the count-th distinct message arrived. */
  until(count, withinMs) {
    if (this.seen.size >= count) return Promise.resolve(this.lastAt);
    const reached = new Promise((resolve) => this.waiters.push([count, resolve]));
    return within(reached, withinMs, `${count} distinct messages`);
  }
}

async function setUp(adapter, config, receivers) {
  const sender = await adapter.open(config, 0);
  await sender.create(config.room);
  const others = [];
  for (let i = 1; i <= receivers; i += 1) {
    const client = await adapter.open(config, i);
    await client.join(config.room);
    others.push(client);
  }
  return { sender, receivers: others, inboxes: others.map((c) => new Inbox(c)) };
}

/** Messages/s: one sender pipelines `messages` to the room after `warmup` not counted. */
async function rate(adapter, config) {
  const { sender, receivers, inboxes } = await setUp(adapter, config, config.receivers);
  const { room, warmup, messages, window } = config;
  await pump(sender, room, 0, warmup, window);
  await Promise.all(inboxes.map((box) => box.until(warmup, 60000)));
  for (const box of inboxes) box.latencies = [];
  const start = now();
  const cpuBefore = process.cpuUsage();
  const acked = await pump(sender, room, warmup, messages, window);
  const delivered = Math.max(...await Promise.all(
    inboxes.map((box) => box.until(warmup + messages, 120000))));
  const cpu = process.cpuUsage(cpuBefore);  // this process: the sender and every receiver
  const latencies = inboxes.flatMap((box) => box.latencies);
  for (const client of [sender, ...receivers]) client.close();
  return {
    acked_per_s: messages / ((acked - start) / 1000),
    delivered_per_s: (messages * receivers.length) / ((delivered - start) / 1000),
    latency_p50_ms: pct(latencies, 0.5),
    latency_p99_ms: pct(latencies, 0.99),
    duplicates: inboxes.reduce((sum, box) => sum + box.duplicates, 0),
    resent: sender.resent ?? 0,
    client_cpu_us: (cpu.user + cpu.system) / messages,
  };
}

/** Reconnect-to-resumed: `cuts` times, the follower's TCP socket is destroyed and the sender
 * sends `missed` messages at once; timed from the cut to the follower open again, and to
 * every missed message handed to it once. */
async function resume(adapter, config) {
  const { sender, receivers: [follower], inboxes: [inbox] } = await setUp(adapter, config, 1);
  const { room, missed, window } = config;
  let sent = 0;
  const warm = 10;
  await pump(sender, room, sent, warm, window);
  sent += warm;
  await inbox.until(sent, 60000);
  const cuts = [];
  for (let n = 0; n < config.cuts; n += 1) {
    await within(follower.caughtUp(), 30000, "the hub's ping, answered");
    const back = within(follower.reconnected(), 60000, "the reconnection");
    const cutAt = now();
    follower.cut();
    const ackedAt = await pump(sender, room, sent, missed, window);
    sent += missed;
    const { attemptAt, openAt, recovered } = await back;
    const doneAt = Math.max(await inbox.until(sent, 60000), openAt);  // Socket.IO hands the
    // replay to the app just before its 'connect' event
    cuts.push({
      open_ms: openAt - cutAt,
      resumed_ms: doneAt - cutAt,
      attempt_ms: attemptAt - cutAt,
      sent_ms: ackedAt - cutAt,
      // the resume path alone: from the later of the new socket's start and the last missed
      // message's ack (neither backoff nor the sender's pace); 0 if it came live before
      replay_ms: Math.max(0, doneAt - Math.max(attemptAt, ackedAt)),
      recovered,
    });
  }
  const replayed = follower.replayed ? follower.replayed() : null;
  sender.close();
  follower.close();
  return { cuts, duplicates: inbox.duplicates, replayed_frames: replayed,
           resent: sender.resent ?? 0 };
}

/** Run the scenario the config names with this adapter; print its figures as one line. */
export async function main(adapter) {
  const config = JSON.parse(process.argv[2]);
  const scenarios = { rate, resume };
  const result = await scenarios[config.scenario](adapter, config);
  process.stdout.write(`${JSON.stringify({ client: adapter.name, ...result })}\n`);
  process.exit(0);
}
