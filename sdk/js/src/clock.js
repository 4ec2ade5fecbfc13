/** The server's clock as the client estimates it (port of client/clock.py): NTP's on-wire
 * algorithm; the estimate is the median offset of the `keep` lowest-delay samples of the
 * last `window`, since a sample's error is at most half its delay. */
import { now } from './time.js';

export class ClockEstimator {
  constructor({ window = 16, keep = 4 } = {}) {
    this.window = window;
    this.keep = keep;
    this.samples = []; // [delay, offset], oldest first
  }

  /** One time.ping/time.pong exchange (all ms); returns [delay, offset]. */
  add(t0, t1, t2, t3) {
    const delay = (t3 - t0) - (t2 - t1);
    const offset = ((t1 - t0) + (t2 - t3)) / 2;
    this.samples.push([Math.max(delay, 0), offset]);
    if (this.samples.length > this.window) this.samples.shift();
    return [delay, offset];
  }

  /** Server time minus local time, in ms (0 before any sample). */
  get offsetMs() {
    if (this.samples.length === 0) return 0;
    const best = [...this.samples].sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, this.keep);
    const offsets = best.map((s) => s[1]).sort((a, b) => a - b);
    const mid = offsets.length >> 1;
    return offsets.length % 2 ? offsets[mid] : (offsets[mid - 1] + offsets[mid]) / 2;
  }

  /** Half the best sample's round trip: the offset is off by at most this. */
  get errorBoundMs() {
    if (this.samples.length === 0) return Infinity;
    return Math.min(...this.samples.map((s) => s[0])) / 2;
  }

  toServer(localMs) {
    return localMs + this.offsetMs;
  }

  toLocal(serverMs) {
    return serverMs - this.offsetMs;
  }
}

/** A burst of `samples` time.ping exchanges (`ping(content)` resolves with the pong) into
 * `clock`; resolves with its estimate. */
export async function syncClock(clock, ping, samples) {
  for (let i = 0; i < samples; i++) {
    const t0 = now();
    const pong = await ping({ t0 });
    clock.add(t0, pong.t1, pong.t2, now());
  }
  return { offsetMs: clock.offsetMs, errorBoundMs: clock.errorBoundMs };
}
