/** The socket itself: its URL, its handlers (with the HTTP status of a refused upgrade),
 * how it is dropped or closed, and which closes are final (PROTOCOL.md "Close codes"). */

/** Close codes after which reconnecting cannot help: the token is bad or revoked, the
 * socket is forbidden, or another connection replaced this one (reconnecting would replace
 * that one in turn, forever). One exception: 4401 "token expired" with a token provider
 * reconnects, since the provider can give a fresh token. */
const FINAL_CLOSE = new Map([
  [4401, 'unauthorized'],
  [4403, 'forbidden'],
  [4409, 'replaced'],
  [4410, 'token_revoked'],
]);
const EXPIRED = 'token expired'; // the reason of the hub's 4401 when a socket outlives its token
/** An upgrade refused over HTTP (`ws` reports the status): a token or user the hub will not take. */
const HTTP_REFUSAL = new Map([
  [401, 'unauthorized'],
  [403, 'forbidden'],
]);

/** What a close means: `final` is the HubError code that refuses a first connect (null: a
 * drop worth retrying); `forGood` says an open session must not reconnect either. An HTTP
 * refusal with a provider is retried (the provider may give a better token); 4401 "token
 * expired" is final only with a static token, which nothing can renew. */
export function classifyClose(code, reason, staticToken) {
  let final = FINAL_CLOSE.get(code) ?? HTTP_REFUSAL.get(code) ?? null;
  if (code === 4401 && reason === EXPIRED) final = staticToken ? 'token_expired' : null;
  const forGood = final !== null && (FINAL_CLOSE.has(code) || staticToken);
  return { final, forGood };
}

/** The socket's URL: `url` with the token, and the resume token when resuming. */
export function socketUrl(url, token, resumeToken) {
  const query = new URLSearchParams({ token });
  if (resumeToken !== null) query.set('resume', resumeToken);
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}${query}`;
}

/** Hands `ws`'s frames to `onData` and its close to `onClose(code, reason)`; a refused
 * upgrade closes with its HTTP status as the code. */
export function watch(ws, { onData, onClose }) {
  let refusal = null;
  ws.onmessage = (event) => onData(event.data);
  ws.onerror = (event) => {
    // `ws` says why an upgrade was refused ("Unexpected server response: 401"); browsers do not
    refusal = /server response: (\d+)/.exec(event?.message ?? '')?.[1] ?? refusal;
  };
  ws.onclose = (event) => {
    const code = refusal ? Number(refusal) : event.code;
    onClose(code, refusal ? `upgrade refused with HTTP ${refusal}` : event.reason);
  };
}

/** Stops listening to `ws` (a socket dropped or replaced says nothing more). */
export function detach(ws) {
  ws.onmessage = ws.onclose = ws.onerror = null;
}

/** Drops a silent socket at once (`ws`: no closing handshake; a browser's: a close). */
export function kill(ws) {
  if (typeof ws.terminate === 'function') ws.terminate();
  else ws.close(4000, 'heartbeat timeout');
}

/** Closes `ws` with 1000 and waits for its close (2 s at most). */
export async function closeGently(ws) {
  if (ws.readyState === 3) return;
  await new Promise((resolve) => {
    const done = setTimeout(resolve, 2000);
    ws.onclose = () => {
      clearTimeout(done);
      resolve();
    };
    ws.close(1000, 'client closing');
  });
}
