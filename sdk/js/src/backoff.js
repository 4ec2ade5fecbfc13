/** Exponential backoff with full jitter (AWS's "full jitter"): attempt n waits a uniform
 * random time in [0, min(maxMs, initialMs * 2^n)], so clients dropped together by one
 * restart do not come back together. */
export function backoffDelay(attempt, { initialMs = 200, maxMs = 10000 } = {}, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt));
  return random() * ceiling;
}
