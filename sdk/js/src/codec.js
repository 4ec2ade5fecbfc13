/** How frames travel (PROTOCOL.md "Encoding"): JSON text frames, or msgpack binary frames
 * under subprotocol `rthub.msgpack.v1` (smaller and cheaper to parse on a phone). Both carry
 * the same envelope; the hub answers in the encoding the socket chose. */
import { decode as unpack, encode as pack } from './msgpack.js';

const text = new TextDecoder();

export const CODECS = {
  json: {
    subprotocol: 'rthub.json.v1',
    encode: (frame) => JSON.stringify(frame),
    decode: (data) => JSON.parse(typeof data === 'string' ? data : text.decode(data)),
  },
  msgpack: {
    subprotocol: 'rthub.msgpack.v1',
    encode: (frame) => pack(frame),
    decode: (data) => {
      if (typeof data === 'string') throw new TypeError('a text frame on a msgpack socket');
      return unpack(data);
    },
  },
};

/** The codec named `encoding` ('json' or 'msgpack'); a TypeError for anything else. */
export function codecFor(encoding) {
  const codec = Object.hasOwn(CODECS, encoding) ? CODECS[encoding] : null;
  if (!codec) throw new TypeError(`encoding must be 'json' or 'msgpack', not ${JSON.stringify(encoding)}`);
  return codec;
}
