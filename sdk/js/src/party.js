/** A listening party over a Hub (PartyClient) and the playback plan of one device
 * (PartyScheduler). `party.state` is a statement about time: at server time `at_server_ms`
 * the track is at `position_ms`; the hub's clock estimate turns it into local time. */
import { Emitter } from './emitter.js';
import { now } from './time.js';

const EVENTS = { 'party.state': 'state', 'party.queue': 'queue', 'party.recommendations': 'recommendations' };

/** Emits 'state' (party.state content), 'queue' (items) and 'recommendations'. `queue` is
 * both the method that sends party.queue and, as `queue.items` (or `queueItems`), the items. */
export class PartyClient extends Emitter {
  #offs = [];

  constructor(hub, partyId) {
    super();
    this.hub = hub;
    this.partyId = partyId;
    this.topic = `party:${partyId}`;
    this.state = null;
    this.queueItems = [];
    this.recommendations = null;
    const queue = (op, options) => this.#queueOp(op, options);
    Object.defineProperty(queue, 'items', { get: () => this.queueItems });
    this.queue = queue;
  }

  /** Joins (following the party's stream), syncs the clock if it has no sample yet;
   * resolves with party.join's ack {state, queue}. */
  async join() {
    this.#listen();
    const ack = await this.hub.request('party.join', { party: this.partyId });
    this.state = ack.state ?? this.state;
    this.queueItems = ack.queue ?? this.queueItems;
    if (this.hub.clock.samples.length === 0) await this.hub.syncClock();
    this.emit('state', this.state);
    this.emit('queue', this.queueItems);
    return ack;
  }

  async leave() {
    for (const off of this.#offs.splice(0)) off();
    return this.hub.request('party.leave', { party: this.partyId });
  }

  /** play | pause | skip | seek {position_ms} | volume_change {volume}. */
  control(action, { position_ms, volume } = {}) {
    return this.hub.request('party.control', defined({ party: this.partyId, action, position_ms, volume }));
  }

  #queueOp(op, { track, item_id, to_index } = {}) {
    return this.hub.request('party.queue', defined({ party: this.partyId, op, track, item_id, to_index }));
  }

  /** Tells the party where this device's player is (`positionMs` at local time `atLocalMs`,
   * sent as server time through the clock estimate); resolves with {drift_ms, correction?}:
   * the party's own verdict, a rate nudge, a seek, or a reload when the track is not its. */
  report(positionMs, { atLocalMs = now(), track = this.state?.track } = {}) {
    return this.hub.request('party.report', defined({
      party: this.partyId, position_ms: positionMs, at_server_ms: this.hub.clock.toServer(atLocalMs), track }));
  }

  /** The bitrate tier this device should stream at for its measured bandwidth:
   * resolves with {bitrate_kbps, changed}. */
  quality(bandwidthKbps) {
    return this.hub.request('party.quality', { party: this.partyId, bandwidth_kbps: bandwidthKbps });
  }

  /** Where the track is (ms) at local time `localMs`, by the state and the clock offset. */
  positionAt(localMs = now()) {
    const s = this.state;
    if (!s) return null;
    if (!s.playing) return s.position_ms;
    return Math.max(0, s.position_ms + (this.hub.clock.toServer(localMs) - s.at_server_ms));
  }

  #listen() {
    for (const off of this.#offs.splice(0)) off();
    for (const [type, name] of Object.entries(EVENTS)) {
      this.#offs.push(this.hub.on(type, (content, frame) => {
        if (frame.topic !== this.topic) return;
        if (name === 'state') this.state = content;
        if (name === 'queue') this.queueItems = content.queue;
        if (name === 'recommendations') this.recommendations = content;
        this.emit(name, name === 'queue' ? this.queueItems : content);
      }));
    }
  }
}

function defined(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}

/** One device's playback against the party: when to start and how to correct drift (a rate
 * nudge under `nudgeBelowMs`, corrected over `correctOverMs` within ±`maxRateChange`; a seek
 * above), as PROTOCOL.md asks clients to do themselves. */
export class PartyScheduler {
  constructor(party, { nudgeBelowMs = 400, toleranceMs = 20, correctOverMs = 2000, maxRateChange = 0.05 } = {}) {
    this.party = party;
    this.nudgeBelowMs = nudgeBelowMs;
    this.toleranceMs = toleranceMs;
    this.correctOverMs = correctOverMs;
    this.maxRateChange = maxRateChange;
  }

  /** When to start (local ms) and from where in the track. Paused: startAtLocalMs null. */
  plan(localNowMs = now()) {
    const s = this.party.state;
    if (!s) return null;
    if (!s.playing) return { startAtLocalMs: null, offsetMs: s.position_ms };
    const startLocal = this.party.hub.clock.toLocal(s.at_server_ms);
    if (localNowMs <= startLocal) return { startAtLocalMs: startLocal, offsetMs: s.position_ms };
    return { startAtLocalMs: localNowMs, offsetMs: s.position_ms + (localNowMs - startLocal) };
  }

  /** The player says it is at `actualPositionMs` at `localNowMs`: what to do about it. */
  correct(actualPositionMs, localNowMs = now()) {
    const expected = this.party.positionAt(localNowMs);
    const driftMs = actualPositionMs - expected; // > 0: ahead of the party
    const size = Math.abs(driftMs);
    if (size <= this.toleranceMs) return { driftMs, action: 'none', rate: 1, seekToMs: null };
    if (size < this.nudgeBelowMs) {
      const change = Math.min(this.maxRateChange, size / this.correctOverMs);
      return { driftMs, action: 'nudge', rate: 1 - Math.sign(driftMs) * change, seekToMs: null };
    }
    return { driftMs, action: 'seek', rate: 1, seekToMs: expected };
  }
}
