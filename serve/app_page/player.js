// A player with nothing to download: each track is a short generated melody (its notes
// from a hash of the track's name) looped in an AudioBufferSourceNode, so it can start at
// an exact AudioContext time, at any offset, and change rate for a drift nudge.
// Its position is read from the audio clock, mapped to local time by getOutputTimestamp.

const LOOP_S = 8;
const NOTES = [261.63, 293.66, 329.63, 392.0, 440.0, 523.25, 587.33, 659.25];

export const localNow = () => performance.timeOrigin + performance.now();

function hash(text) {
  let value = 2166136261;
  for (let i = 0; i < text.length; i++) value = Math.imul(value ^ text.charCodeAt(i), 16777619);
  return value >>> 0;
}

export class TonePlayer {
  constructor() {
    this.ctx = null;
    this.gain = null;
    this.source = null;
    this.buffers = new Map();
    this.anchor = null; // {ctxTime, positionMs, rate}: where the audio is at ctxTime
    this.key = null;
  }

  // Called from a click: browsers start audio only after a user gesture.
  unlock() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "playback" });
      this.gain = this.ctx.createGain();
      this.gain.gain.value = 0.12;
      this.gain.connect(this.ctx.destination);
    }
    return this.ctx.resume();
  }

  get state() {
    return this.ctx ? this.ctx.state : "off";
  }

  buffer(key) {
    if (this.buffers.has(key)) return this.buffers.get(key);
    const rate = this.ctx.sampleRate;
    const data = new Float32Array(rate * LOOP_S);
    let seed = hash(key);
    const noteS = 0.5;
    for (let n = 0; n < LOOP_S / noteS; n++) {
      seed = Math.imul(seed ^ (seed >>> 15), 2246822507) >>> 0;
      const freq = NOTES[seed % NOTES.length];
      const from = Math.floor(n * noteS * rate);
      const length = Math.floor(noteS * rate);
      for (let i = 0; i < length; i++) {
        const envelope = Math.min(1, i / 400, (length - i) / 2000);
        data[from + i] = Math.sin((2 * Math.PI * freq * i) / rate) * envelope;
      }
    }
    const buffer = this.ctx.createBuffer(1, data.length, rate);
    buffer.copyToChannel(data, 0);
    this.buffers.set(key, buffer);
    return buffer;
  }

  // The AudioContext time that is audible at local time localMs.
  ctxTimeAt(localMs) {
    const stamp = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : {};
    if (stamp.performanceTime > 0) {
      return stamp.contextTime + (localMs - (performance.timeOrigin + stamp.performanceTime)) / 1000;
    }
    return this.ctx.currentTime + (localMs - localNow()) / 1000;
  }

  // Play `key` so that at local time startAtLocalMs it is at positionMs.
  start(key, positionMs, startAtLocalMs, rate = 1) {
    this.stop();
    if (!this.ctx || this.ctx.state !== "running") return false;
    const source = this.ctx.createBufferSource();
    source.buffer = this.buffer(key);
    source.loop = true;
    source.playbackRate.value = rate;
    source.connect(this.gain);
    let when = this.ctxTimeAt(startAtLocalMs);
    let position = positionMs;
    const earliest = this.ctx.currentTime + 0.01;
    if (when < earliest) { // already late: start now, further in
      position += (earliest - when) * 1000 * rate;
      when = earliest;
    }
    source.start(when, (position / 1000) % LOOP_S);
    this.source = source;
    this.key = key;
    this.anchor = { ctxTime: when, positionMs: position, rate };
    return true;
  }

  // A rate change keeps the position continuous: re-anchor at the current audio time.
  setRate(rate) {
    if (!this.source || !this.anchor || this.anchor.rate === rate) return;
    const now = this.ctx.currentTime;
    const at = this.ctxPosition(now);
    this.source.playbackRate.setValueAtTime(rate, now);
    this.anchor = { ctxTime: now, positionMs: at, rate };
  }

  // The scheduled start has come (before it there is nothing audible to compare).
  started() {
    return Boolean(this.anchor) && this.ctx.currentTime >= this.anchor.ctxTime;
  }

  ctxPosition(ctxTime) {
    const a = this.anchor;
    return a.positionMs + (ctxTime - a.ctxTime) * 1000 * a.rate;
  }

  // Where the audible track is at local time localMs; null when nothing plays.
  positionAt(localMs = localNow()) {
    if (!this.source || !this.anchor) return null;
    return this.ctxPosition(this.ctxTimeAt(localMs));
  }

  stop() {
    if (this.source) {
      try { this.source.stop(); } catch { /* never started */ }
      this.source.disconnect();
    }
    this.source = null;
    this.anchor = null;
    this.key = null;
  }
}
