// What the hub tests share: the hub's address from the environment (tests/sdk/test_js_sdk.py
// deploys it), tokens minted with its HS256 secret, and waiting for events without sleeping.
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { Hub } from '../src/index.js';

export const env = {
  url: process.env.RTHUB_SDK_TEST_URL,
  http: process.env.RTHUB_SDK_TEST_HTTP,
  secret: process.env.RTHUB_SDK_TEST_SECRET,
  tenant: process.env.RTHUB_SDK_TEST_TENANT,
  redis: process.env.RTHUB_SDK_TEST_REDIS,
};
/** node:test's `skip` for hub tests when no hub was given (run outside pytest). */
export const noHub = env.url ? false : 'no hub: run through tests/sdk/test_js_sdk.py';
export const WAIT_MS = 30000; // a busy 2-core machine; waits end on the event, not the time

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT as the hub's `issue_token` makes one. */
export function token(user, { ttlS = 3600, scope, tenant = env.tenant } = {}) {
  const nowS = Math.floor(Date.now() / 1000);
  const claims = { sub: user, tenant, iat: nowS, exp: nowS + ttlS, name: user, jti: randomBytes(12).toString('hex') };
  if (scope) claims.scope = scope;
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims));
  return head + '.' + createHmac('sha256', env.secret).update(head).digest('base64url');
}

/** A unique name per test run (tenants are shared by the module's tests). */
export const unique = (prefix) => `${prefix}-${randomBytes(4).toString('hex')}`;

const opened = [];
/** A connected Hub for `user` (closed by closeAll). */
export async function connect(user, options = {}) {
  const hub = new Hub({ url: env.url, token: token(user), WebSocket, requestTimeoutMs: WAIT_MS, ...options });
  opened.push(hub);
  await hub.connect();
  return hub;
}

export async function closeAll() {
  await Promise.all(opened.splice(0).map((hub) => hub.close()));
}

/** The next `name` event of `emitter` (for which `test` holds): resolves with its args[0]. */
export function next(emitter, name, test = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${name}' within ${ms} ms`));
    }, ms);
    const off = emitter.on(name, (...args) => {
      if (!test(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args[0]);
    });
  });
}

/** Resolves once `check()` is true, checked on each `name` event of `emitter`. */
export async function until(emitter, name, check, ms = WAIT_MS) {
  if (check()) return;
  await next(emitter, name, () => check(), ms);
}

/** Drops the hub's TCP connection without a close frame (a network cut). */
export function cut(hub) {
  hub.socket._socket.destroy();
}

/** One Redis command over RESP (unix:// or redis://host:port/db): the tests make Redis lose
 * a topic's history, as a restart without persistence does. */
export function redis(...args) {
  const url = new URL(env.redis);
  const db = url.protocol === 'unix:' ? url.searchParams.get('db') : url.pathname.slice(1);
  const socket = url.protocol === 'unix:' ? net.connect(url.pathname) : net.connect(Number(url.port || 6379), url.hostname);
  const encode = (parts) => `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('');
  return new Promise((resolve, reject) => {
    let reply = '';
    const expected = db ? 2 : 1;
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.split('\r\n').length - 1 >= expected) {
        socket.end();
        if (reply.includes('-ERR')) reject(new Error(reply));
        else resolve(reply.trim().split('\r\n').at(-1));
      }
    });
    socket.write((db ? encode(['SELECT', db]) : '') + encode(args));
  });
}
