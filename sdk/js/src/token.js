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
