import { backoffDelay } from './backoff.js';

/** The `exp` (seconds) of a JWT, read from its payload and not verified: the client only
 * needs to know when to ask its provider for a fresh one. null when unreadable. */
export function tokenExp(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))));
    return typeof payload.exp === 'number' ? payload.exp : null;
  } catch {
    return null;
  }
}

/** When to ask the provider for the next token (ms from `nowMs`): `marginS` before `exp`,
 * or, for a token whose remaining lifetime is under twice the margin, halfway to `exp` (a
 * 4 s token is refreshed after 2 s, not at once). null when the token has no exp or has
 * expired already: the hub will close the socket (4401) and the reconnect asks afresh. */
export function refreshDelayMs(exp, nowMs, marginS) {
  if (typeof exp !== 'number') return null;
  const leftMs = exp * 1000 - nowMs;
  if (leftMs <= 0) return null;
  const marginMs = marginS * 1000;
  return leftMs >= 2 * marginMs ? leftMs - marginMs : leftMs / 2;
}

/** How long to wait before retrying a failed refresh (ms): the backoff's delay, but at most
 * half the time left on the socket's token, so the retry still lands before its exp. null
 * when too little time is left for a retry to help (the 4401 close and reconnect will). */
export function retryDelayMs(backoffMs, exp, nowMs, minMs = 100) {
  if (typeof exp !== 'number') return Math.max(minMs, backoffMs);
  const leftMs = exp * 1000 - nowMs;
  if (leftMs < 2 * minMs) return null;
  return Math.min(Math.max(minMs, backoffMs), leftMs / 2);
}

/** Renews the open socket's token with a provider: plans each `session.refresh` before the
 * token's exp (refreshDelayMs), so the hub does not close the socket (4401). Each new or
 * dropped socket `stop`s the plan; an older refresh's outcome is then ignored. */
export class TokenRefresher {
  #timer = null;
  #gen = 0; // bumped whenever the socket changes: an older refresh's outcome is ignored
  #attempt = 0;
  exp = null; // exp of the token the current socket is authorised with

  /** `hub`: its token, state, options, logger and events; `renew(token)` sends
   * session.refresh and resolves with its ack; `unwelcomed()`: a socket awaits its welcome. */
  constructor(hub, { renew, unwelcomed }) {
    this.hub = hub;
    this.renew = renew;
    this.unwelcomed = unwelcomed;
  }

  /** A new socket authorised with `token`: plan its renewal. */
  opened(token) {
    this.exp = tokenExp(token);
    this.#schedule(this.exp);
  }

  stop() {
    clearTimeout(this.#timer);
    this.#gen++;
  }

  /** With a provider, plans the next refresh for a socket whose token expires at `exp` (the
   * margin before exp, or halfway for a short-lived token). */
  #schedule(exp) {
    this.stop();
    if (typeof this.hub.token !== 'function') return; // a static token cannot be renewed
    const delay = refreshDelayMs(exp, Date.now(), this.hub.tokenRefreshMarginS);
    if (delay === null) return;
    this.#attempt = 0;
    this.#arm(this.#gen, delay);
  }

  #arm(gen, delay) {
    this.#timer = setTimeout(() => this.#refresh(gen), delay);
    this.#timer.unref?.(); // Node: a pending refresh alone keeps no process alive
  }

  /** Asks the provider for a fresh token and hands it to the open socket. A failure is
   * retried before the old exp; a refresh left over from a previous socket (`gen` stale)
   * does nothing. */
  async #refresh(gen) {
    const hub = this.hub;
    const current = () => gen === this.#gen && hub.state === 'open';
    if (gen === this.#gen && this.unwelcomed()) {
      // a token shorter than the welcome's wait: refresh once this socket is welcomed
      const off = hub.on('welcome', () => (off(), this.#refresh(gen)));
      return;
    }
    if (!current()) return; // not open: the next socket's token comes from the provider
    let exp;
    try {
      const token = await hub.token();
      if (!current()) return;
      const ack = await this.renew(token);
      exp = typeof ack?.exp === 'number' ? ack.exp : tokenExp(token);
    } catch (err) {
      if (!current()) return;
      const delay = retryDelayMs(backoffDelay(this.#attempt++, hub.reconnect), this.exp, Date.now());
      hub.logger.warn(`rthub: token refresh failed; ${delay === null ? 'too close to exp to retry' : `retrying in ${Math.round(delay)} ms`}`, err);
      if (delay !== null) this.#arm(gen, delay);
      return;
    }
    if (gen !== this.#gen) return;
    this.exp = exp;
    hub.emit('refreshed', { exp });
    this.#schedule(exp);
  }
}
