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
