/** A request the hub refused (`error` reply: bad_request, not_found, rate_limited ...) or one
 * the SDK gave up on: 'timeout' (no reply in time), 'disconnected' (the socket dropped after
 * it was sent: resend it; chat.send with the same client_msg_id is idempotent), 'closed'. */
export class HubError extends Error {
  constructor(code, message, { retryAfterMs = null, type = null } = {}) {
    super(message || code);
    this.name = 'HubError';
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.type = type;
  }
}
