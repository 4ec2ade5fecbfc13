// Types of @rthub/client: the SDK's API and the wire protocol v1 (PROTOCOL.md, with the hub's
// "Protocol notes" additions). `Requests` maps each client request type to its content and
// its ack; `Events` maps each server event type to its content, so `hub.request('chat.send',
// ...)` and `hub.on('chat.message', fn)` are typed.

// -- shared shapes -----------------------------------------------------------------------------
export type Topic = `room:${string}` | `party:${string}` | `playlist:${string}` | `user:${string}` | `poll:${string}`;
export type ErrorCode =
  | 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'rate_limited'
  | 'too_large' | 'unavailable' | 'internal'
  // the SDK's own
  | 'timeout' | 'disconnected' | 'closed' | 'replaced' | 'token_revoked'
  // a static token outlived by its socket (close 4401 "token expired")
  | 'token_expired';

export interface Frame<C = unknown> {
  type: string;
  id?: number | string;
  ref?: number | string;
  topic?: string;
  seq?: number;
  epoch?: string;
  content: C;
  timestamp?: string;
}

/** Where a socket is in a topic's stream (the ack of a create/join/open/subscribe). */
export interface Followed { topic: string; epoch: string; seq: number }

export interface Welcome {
  session_id: string;
  user_id: string;
  tenant: string;
  server_time_ms: number;
  heartbeat_s: number;
  resume_token: string;
  max_in_flight: number;
  connection_id?: string;
  gateway?: string;
  resumed?: boolean;
  [extra: string]: unknown;
}

export interface ChatMessage {
  message_id: string; room: string; sender: string; text: string; attachments: string[];
  seq: number; ts: string; reply_to?: string | null;
}
export interface PresenceMember { user: string; name: string; since: string; devices: number }
export type PlaylistItem = { item_id: string; track: unknown; added_by?: string };
export type PlaylistOp =
  | { insert: { index: number; track: unknown; item_id: string } }
  | { remove: { item_id: string } }
  | { move: { item_id: string; to_index: number } }
  | { reset: { items: Array<[string, unknown]> } }
  | null;
export interface PartyState {
  track: unknown; position_ms: number; playing: boolean; volume: number; at_server_ms: number;
  queue_version: number; host?: string; mode?: 'host_only' | 'everyone'; by?: string; action?: string;
}
export interface PartyQueueItem { item_id: string; track: unknown; added_by: string; votes: number }
export type NotificationState = 'delivered' | 'seen' | 'read' | 'archived';
export interface Notification {
  id: string; title: string; content: string; priority: 0 | 1 | 2 | 3; category: string | null;
  data: Record<string, unknown> | null; ts: string; state?: NotificationState; unread?: number; silent?: boolean;
}
export interface ScoredTrack { track: unknown; score: number }

// -- client requests: content and ack ----------------------------------------------------------
export interface Requests {
  'ping': { content: Record<string, never>; ack: { server_time_ms: number } };
  'time.ping': { content: { t0: number }; ack: { t0: number; t1: number; t2: number } };
  /** A fresh token for the open socket (same sub and tenant); the ack gives its exp (epoch
   * seconds). The SDK sends it itself when its token is a provider. */
  'session.refresh': { content: { token: string }; ack: { exp: number } };
  'subscribe': { content: { topic: string; since?: { epoch: string; seq: number } }; ack: Followed & { recovered: boolean } };
  'unsubscribe': { content: { topic: string }; ack: { topic: string } };
  'presence.list': { content: { topic: string }; ack: { members: PresenceMember[]; online: number; total: number } };
  // chat
  'room.create': {
    content: { name: string; visibility?: 'public' | 'private' | 'direct'; members?: string[]; room_id?: string; search?: boolean; retention_s?: number | null };
    ack: Followed & { room_id: string; existing?: boolean };
  };
  'room.join': { content: { room: string }; ack: Followed & Record<string, unknown> };
  'room.leave': { content: { room: string }; ack: Record<string, unknown> };
  'room.invite': { content: { room: string; user: string }; ack: Record<string, unknown> };
  'room.kick': { content: { room: string; user: string }; ack: Record<string, unknown> };
  'room.role': { content: { room: string; user: string; role: 'moderator' | 'member' }; ack: Record<string, unknown> };
  'room.update': { content: { room: string; name?: string; search?: boolean; retention_s?: number | null }; ack: Record<string, unknown> };
  'chat.send': {
    content: { room: string; text: string; client_msg_id: string; attachments?: string[]; reply_to?: string };
    ack: { message_id: string; seq: number };
  };
  'chat.edit': { content: { room: string; message_id: string; text: string }; ack: Record<string, unknown> };
  'chat.delete': { content: { room: string; message_id: string }; ack: Record<string, unknown> };
  'chat.typing': { content: { room: string; typing: boolean }; ack: Record<string, unknown> };
  'chat.read': { content: { room: string; seq: number }; ack: Record<string, unknown> };
  'chat.history': { content: { room: string; before_seq?: number; limit?: number }; ack: { messages: Array<ChatMessage & { deleted?: boolean }>; more: boolean } };
  'chat.search': { content: { query: string; room?: string; limit?: number }; ack: { hits: Array<{ message_id: string; room: string; text: string; seq: number; rank: number }> } };
  // parties
  'party.create': { content: { name: string; mode?: 'host_only' | 'everyone'; party_id?: string }; ack: Followed & { party_id: string } };
  'party.join': { content: { party: string }; ack: Followed & { state: PartyState; queue: PartyQueueItem[] } };
  'party.leave': { content: { party: string }; ack: Record<string, unknown> };
  'party.control': {
    content: { party: string; action: 'play' | 'pause' | 'skip' | 'seek' | 'volume_change'; position_ms?: number; volume?: number };
    ack: Record<string, unknown>;
  };
  'party.queue': {
    content: { party: string; op: 'add' | 'remove' | 'move' | 'vote'; track?: unknown; item_id?: string; to_index?: number };
    ack: { item_id?: string; queue_version: number };
  };
  'party.quality': { content: { party: string; bandwidth_kbps: number }; ack: { bitrate_kbps: number; changed: boolean } };
  'party.report': { content: { party: string; position_ms: number; at_server_ms: number; track?: unknown }; ack: PartyReport };
  'party.host': { content: { party: string; user: string }; ack: Record<string, unknown> };
  'party.kick': { content: { party: string; user: string }; ack: Record<string, unknown> };
  'party.end': { content: { party: string }; ack: Record<string, unknown> };
  // playlists
  'playlist.create': { content: { name: string; allow_duplicates?: boolean }; ack: Followed & { playlist_id: string; version: number } };
  'playlist.open': {
    content: { playlist: string };
    ack: Followed & { version: number; items: PlaylistItem[]; collaborators: Array<{ user: string; role: string }> };
  };
  'playlist.op': {
    content: { playlist: string; base_version: number; client_id: string; client_seq: number; op: PlaylistOp };
    ack: { version: number; op: PlaylistOp; duplicate?: boolean; conflict?: string };
  };
  'playlist.history': {
    content: { playlist: string; from_version?: number };
    ack: { ops: Array<{ version: number; op: PlaylistOp; author: string; client_id: string; client_seq: number }>; version: number; more: boolean };
  };
  'playlist.revert': { content: { playlist: string; to_version: number }; ack: { version: number } & Record<string, unknown> };
  'playlist.share': { content: { playlist: string; user: string; role: 'editor' | 'viewer' }; ack: Record<string, unknown> };
  'playlist.suggest': { content: { playlist: string; limit?: number }; ack: { tracks: ScoredTrack[]; model: string; fallback: boolean } };
  // notifications
  'notification.ack': { content: { id: string; state: 'seen' | 'read' | 'archived' }; ack: { id: string; state: NotificationState; unread: number } };
  'notification.list': { content: { state?: NotificationState; before?: string; limit?: number }; ack: { items: Notification[]; unread: number; more: boolean } };
  'notification.prefs': {
    content: {
      category?: string; channel?: string; enabled?: boolean; quiet_hours?: { start: string; end: string } | null;
      timezone?: string | null; locale?: string | null; digest?: { window_s: number; normal?: boolean } | { at: string } | null;
    };
    ack: Record<string, unknown>;
  };
  // polls (an addition)
  'poll.create': { content: { question: string; options: string[]; poll_id?: string }; ack: Followed & { poll_id: string } };
  'poll.open': { content: { poll: string }; ack: Followed & { poll: string; question: string; options: string[]; counts: number[]; closed: boolean } };
  'poll.vote': { content: { poll: string; option: number }; ack: Record<string, unknown> };
  'poll.close': { content: { poll: string }; ack: Record<string, unknown> };
}

// -- server events: content --------------------------------------------------------------------
export interface Events {
  'chat.message': ChatMessage;
  'chat.edited': { message_id: string; text: string; edited_by: string; ts: string };
  'chat.deleted': { message_id: string; deleted_by: string };
  'chat.typing': { room: string; user: string; typing: boolean };
  'chat.read': { room: string; user: string; seq: number };
  'room.joined': { room: string; user: string } & Record<string, unknown>;
  'room.left': { room: string; user: string } & Record<string, unknown>;
  'room.role': { room: string; user: string; role: string } & Record<string, unknown>;
  'presence.join': { user: string; name?: string } & Record<string, unknown>;
  'presence.leave': { user: string } & Record<string, unknown>;
  'presence.occupancy': { online: number; members: number };
  'party.state': PartyState;
  'party.queue': { party: string; queue_version: number; op: string; by: string; queue: PartyQueueItem[] };
  'party.tick': Record<string, unknown>;
  'party.recommendations': { tracks: ScoredTrack[]; model: string; fallback: boolean };
  'party.joined': { user: string } & Record<string, unknown>;
  'party.left': { user: string } & Record<string, unknown>;
  'party.host': { user: string } & Record<string, unknown>;
  'party.ended': Record<string, unknown>;
  'playlist.op': { playlist: string; version: number; op: PlaylistOp; author: string; client_id: string; client_seq: number };
  'playlist.shared': { user: string; role: 'editor' | 'viewer' };
  'notification': Notification;
  'notification.state': { id: string; state: NotificationState; unread: number };
  'poll.counts': { poll: string; counts: number[] };
  'poll.closed': { poll: string; counts: number[] };
  'system.maintenance': { message: string; at: string; duration_s?: number };
}

export type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
export interface ReloadInfo { topic: string; epoch: string; seq: number }

/** The Hub's own events (beside every server event type of `Events`). */
export interface HubEvents {
  state: State;
  welcome: Welcome;
  resumed: Welcome;
  disconnect: { code: number; reason?: string };
  error: Error;
  reload: ReloadInfo;
  /** The open socket took a fresh token (`session.refresh` acked): it now lasts until `exp`. */
  refreshed: { exp: number };
}

export interface Logger {
  debug?(...args: unknown[]): void;
  info?(...args: unknown[]): void;
  warn?(...args: unknown[]): void;
  error?(...args: unknown[]): void;
}

export interface HubOptions {
  url: string;
  /** A JWT, or a provider called on every (re)connect and again before the token's exp,
   * whose token is sent on the open socket (`session.refresh`). A static token's socket is
   * closed 4401 "token expired" at its exp, for good. */
  token: string | (() => string | Promise<string>);
  /** Refresh this long before exp (60); a token living under twice this, halfway to exp. */
  tokenRefreshMarginS?: number;
  WebSocket?: new (url: string, protocols?: string | string[]) => unknown;
  /** 'json' (text frames, the default) or 'msgpack' (binary frames, subprotocol
   * rthub.msgpack.v1; integers past 2^53 arrive as bigint, `bin` as Uint8Array). */
  encoding?: 'json' | 'msgpack';
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
}

export interface Subscription {
  readonly topic: string;
  readonly epoch: string | null;
  readonly seq: number;
  unsubscribe(): Promise<void>;
}

type Listener<C> = (content: C, frame: Frame<C>) => void;

export class Hub {
  constructor(options: HubOptions);
  readonly state: State;
  readonly session: Welcome | null;
  readonly clock: ClockEstimator;
  readonly encoding: 'json' | 'msgpack';
  readonly socket: unknown;
  connect(): Promise<Welcome>;
  close(): Promise<void>;
  on<K extends keyof HubEvents>(name: K, fn: (value: HubEvents[K]) => void): () => void;
  on<K extends string>(name: K, fn: Listener<K extends keyof Events ? Events[K] : any>): () => void;
  /** Typed for every request of `Requests`; any other type (a newer hub's) is untyped. */
  request<K extends string>(
    type: K,
    content: K extends keyof Requests ? Requests[K]['content'] : Record<string, unknown>,
    options?: { timeoutMs?: number },
  ): Promise<K extends keyof Requests ? Requests[K]['ack'] : any>;
  subscribe(topic: string, handlers?: { onEvent?: Listener<any>; onReload?: (info: ReloadInfo) => void }): Promise<Subscription>;
  position(topic: string): { epoch: string | null; seq: number } | null;
  syncClock(samples?: number): Promise<{ offsetMs: number; errorBoundMs: number }>;
}

export class HubError extends Error {
  constructor(code: ErrorCode | string, message?: string, options?: { retryAfterMs?: number | null; type?: string | null });
  readonly code: ErrorCode | string;
  readonly retryAfterMs: number | null;
  /** The request type that failed, when it was a request. */
  readonly type: string | null;
}

export class ClockEstimator {
  constructor(options?: { window?: number; keep?: number });
  samples: Array<[number, number]>;
  add(t0: number, t1: number, t2: number, t3: number): [number, number];
  readonly offsetMs: number;
  readonly errorBoundMs: number;
  toServer(localMs: number): number;
  toLocal(serverMs: number): number;
}

export function backoffDelay(attempt: number, options?: { initialMs?: number; maxMs?: number }, random?: () => number): number;
/** Local ms: performance.timeOrigin + performance.now(). */
export function now(): number;

export type Items = Array<[string, unknown]>;
export namespace ot {
  function kind(op: PlaylistOp): 'insert' | 'remove' | 'move' | 'reset' | null;
  function apply(items: Items, op: PlaylistOp): Items;
  function transform(a: PlaylistOp, b: PlaylistOp, base: Items): PlaylistOp;
  function merge(base: Items, a: PlaylistOp, b: PlaylistOp): Items;
  function transformAgainst(op: PlaylistOp, committed: PlaylistOp[], base: Items): [PlaylistOp, Items];
}

declare class Emitting<E> {
  on<K extends keyof E>(name: K, fn: (value: E[K]) => void): () => void;
}

export class PlaylistDoc {
  constructor(playlist: string, clientId: string);
  playlist: string;
  clientId: string;
  version: number;
  confirmed: Items;
  items: Items;
  inflight: [number, PlaylistOp] | null;
  pending: PlaylistOp[];
  opened(ack: Requests['playlist.open']['ack']): void;
  broadcast(content: Events['playlist.op'] | { version: number; op: PlaylistOp; client_id?: string; client_seq?: number }): void;
  historyOp(entry: Requests['playlist.history']['ack']['ops'][number]): void;
  acked(ack: Requests['playlist.op']['ack']): void;
  local(op: Exclude<PlaylistOp, null>): void;
  nextFrame(): Requests['playlist.op']['content'] | null;
  resend(): Requests['playlist.op']['content'] | null;
  readonly idle: boolean;
  readonly gap: boolean;
}

export class PlaylistEditor extends Emitting<{ change: Array<{ item_id: string; track: unknown }>; error: Error }> {
  constructor(hub: Hub, playlistId: string, options?: { clientId?: string });
  readonly items: Array<{ item_id: string; track: unknown }>;
  readonly version: number;
  readonly clientId: string;
  readonly doc: PlaylistDoc;
  open(): Promise<Requests['playlist.open']['ack']>;
  close(): void;
  /** Returns the new item's id. */
  insert(index: number, track: unknown): string;
  remove(itemId: string): void;
  move(itemId: string, toIndex: number): void;
  settled(): Promise<void>;
}

export interface PartyQueue {
  (op: 'add' | 'remove' | 'move' | 'vote', options?: { track?: unknown; item_id?: string; to_index?: number }): Promise<Requests['party.queue']['ack']>;
  /** The queue's items (the last party.queue or party.join). */
  readonly items: PartyQueueItem[];
}

export class PartyClient extends Emitting<{ state: PartyState; queue: PartyQueueItem[]; recommendations: Events['party.recommendations'] }> {
  constructor(hub: Hub, partyId: string);
  readonly hub: Hub;
  readonly state: PartyState | null;
  /** Call it to send party.queue; read `queue.items` (or `queueItems`) for the items. */
  readonly queue: PartyQueue;
  readonly queueItems: PartyQueueItem[];
  join(): Promise<Requests['party.join']['ack']>;
  leave(): Promise<Record<string, unknown>>;
  control(action: Requests['party.control']['content']['action'], options?: { position_ms?: number; volume?: number }): Promise<Record<string, unknown>>;
  positionAt(localMs?: number): number | null;
  /** The party's verdict on this device's position: drift and, past its tolerance, a correction. */
  report(positionMs: number, options?: { atLocalMs?: number; track?: unknown }): Promise<PartyReport>;
  quality(bandwidthKbps: number): Promise<Requests['party.quality']['ack']>;
}

export type PartyCorrection =
  | { mode: 'rate'; rate: number; for_ms: number }
  | { mode: 'seek'; position_ms: number; at_server_ms: number }
  | { mode: 'reload'; state: PartyState };

export interface PartyReport { drift_ms: number | null; correction?: PartyCorrection }

export class PartyScheduler {
  constructor(party: PartyClient | { hub: { clock: ClockEstimator }; state: PartyState | null; positionAt(localMs: number): number | null },
    options?: { nudgeBelowMs?: number; toleranceMs?: number; correctOverMs?: number; maxRateChange?: number });
  plan(localNowMs?: number): { startAtLocalMs: number | null; offsetMs: number } | null;
  correct(actualPositionMs: number, localNowMs?: number): { driftMs: number; action: 'none' | 'nudge' | 'seek'; rate: number; seekToMs: number | null };
}

export class Inbox extends Emitting<{ notification: Notification; change: { items: Notification[]; unread: number }; error: Error }> {
  constructor(hub: Hub);
  readonly items: Notification[];
  readonly unread: number;
  readonly more: boolean;
  load(options?: { state?: NotificationState; limit?: number }): Promise<{ items: Notification[]; unread: number }>;
  /** The next older page after the last item held; resolves with the items added. */
  loadMore(options?: { limit?: number }): Promise<Notification[]>;
  ack(id: string, state: 'seen' | 'read' | 'archived'): Promise<Requests['notification.ack']['ack']>;
  close(): Promise<void>;
}

/** The msgpack codec of subprotocol rthub.msgpack.v1 (no ext types; string map keys). */
export declare namespace msgpack {
  function encode(value: unknown): Uint8Array;
  function decode(data: Uint8Array | ArrayBuffer): unknown;
}
