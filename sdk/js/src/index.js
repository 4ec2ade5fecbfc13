/** @rthub/client: the JavaScript SDK of rthub's wire protocol v1 (plain ES modules). */
export { Hub } from './hub.js';
export { HubError } from './errors.js';
export { ClockEstimator } from './clock.js';
export { backoffDelay } from './backoff.js';
export { now } from './time.js';
export * as ot from './ot.js';
export { PlaylistDoc, PlaylistEditor } from './playlist.js';
export { PartyClient, PartyScheduler } from './party.js';
export { Inbox } from './inbox.js';
export * as msgpack from './msgpack.js';
