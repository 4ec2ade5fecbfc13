/** msgpack for subprotocol `rthub.msgpack.v1`, with no dependency: what the protocol carries
 * and JSON can carry too (nil, booleans, integers to 64 bits, floats, strings, arrays,
 * string-keyed maps), plus `bin` as Uint8Array. No ext types: the hub refuses them.
 * Values are written as JSON.stringify would see them (undefined fields left out, undefined
 * in an array and non-finite numbers as nil, `toJSON` honoured) so both encodings say the
 * same; integers past 2^53 travel as BigInt, and decode as one. */

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });


// One buffer reused by every encode (a frame is copied out at the end): no allocation per
// value, and DataView calls made directly (a frame is encoded in about a microsecond).
let buf = new Uint8Array(4096);
let view = new DataView(buf.buffer);
let pos = 0;

function room(n) {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const grown = new Uint8Array(size);
  grown.set(buf.subarray(0, pos));
  buf = grown;
  view = new DataView(grown.buffer);
}

function byte(b) {
  room(1);
  buf[pos++] = b;
}

function u16(code, n) {
  room(3);
  buf[pos] = code;
  view.setUint16(pos + 1, n);
  pos += 3;
}

function u32(code, n) {
  room(5);
  buf[pos] = code;
  view.setUint32(pos + 1, n);
  pos += 5;
}

/** A header with a length: fix form below `fixMax`, then 8 (strings and bin only), 16, 32 bits. */
function sized(n, fix, fixMax, codes) {
  if (fix !== null && n < fixMax) return byte(fix | n);
  if (codes[0] !== null && n <= 0xff) {
    room(2);
    buf[pos] = codes[0];
    buf[pos + 1] = n;
    pos += 2;
    return undefined;
  }
  if (n <= 0xffff) return u16(codes[1], n);
  if (n <= 0xffffffff) return u32(codes[2], n);
  throw new RangeError(`msgpack: ${n} is too long`);
}

function writeInt(v) {
  if (v >= 0) {
    if (v < 0x80) return byte(v);
    if (v <= 0xff) return (byte(0xcc), byte(v));
    if (v <= 0xffff) return u16(0xcd, v);
    if (v <= 0xffffffff) return u32(0xce, v);
    room(9);
    buf[pos] = 0xcf;
    view.setBigUint64(pos + 1, BigInt(v));
    pos += 9;
    return undefined;
  }
  if (v >= -32) return byte(v & 0xff);
  if (v >= -0x80) return (byte(0xd0), byte(v & 0xff));
  if (v >= -0x8000) return u16(0xd1, v & 0xffff);
  if (v >= -0x80000000) return u32(0xd2, v >>> 0);
  room(9);
  buf[pos] = 0xd3;
  view.setBigInt64(pos + 1, BigInt(v));
  pos += 9;
  return undefined;
}

function writeBigInt(v) {
  if (v >= -0x80000000n && v <= 0xffffffffn) return writeInt(Number(v));
  if (v < -(2n ** 63n) || v >= 2n ** 64n) throw new RangeError(`msgpack: ${v} does not fit in 64 bits`);
  room(9);
  buf[pos] = v < 0n ? 0xd3 : 0xcf;
  if (v < 0n) view.setBigInt64(pos + 1, v);
  else view.setBigUint64(pos + 1, v);
  pos += 9;
  return undefined;
}

function writeString(s) {
  const n = s.length;
  if (n < 32) { // short, and ASCII (most keys and ids): written in place
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      room(1 + n);
      buf[pos++] = 0xa0 | n;
      for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
      return;
    }
  }
  // at most 3 bytes per UTF-16 unit: encode after the widest header, then fix the header
  const most = n * 3;
  const header = most < 32 ? 1 : most <= 0xff ? 2 : most <= 0xffff ? 3 : 5;
  room(header + most);
  const { written } = utf8.encodeInto(s, buf.subarray(pos + header));
  const fits = written < 32 ? 1 : written <= 0xff ? 2 : written <= 0xffff ? 3 : 5;
  if (fits !== header) buf.copyWithin(pos + fits, pos + header, pos + header + written);
  if (fits === 1) buf[pos] = 0xa0 | written;
  else if (fits === 2) (buf[pos] = 0xd9), (buf[pos + 1] = written);
  else if (fits === 3) (buf[pos] = 0xda), view.setUint16(pos + 1, written);
  else (buf[pos] = 0xdb), view.setUint32(pos + 1, written);
  pos += fits + written;
}

function write(v, inArray) {
  if (v === null) return byte(0xc0);
  switch (typeof v) {
    case 'undefined':
      return byte(0xc0);
    case 'boolean':
      return byte(v ? 0xc3 : 0xc2);
    case 'number':
      if (Number.isSafeInteger(v)) return writeInt(v);
      if (!Number.isFinite(v)) return byte(0xc0);
      room(9);
      buf[pos] = 0xcb;
      view.setFloat64(pos + 1, v);
      pos += 9;
      return undefined;
    case 'bigint':
      return writeBigInt(v);
    case 'string':
      return writeString(v);
    case 'object':
      break;
    default:
      throw new TypeError(`msgpack: cannot encode a ${typeof v}${inArray ? ' in an array' : ''}`);
  }
  if (Array.isArray(v)) {
    sized(v.length, 0x90, 16, [null, 0xdc, 0xdd]);
    for (let i = 0; i < v.length; i++) write(v[i], true);
    return undefined;
  }
  if (v instanceof Uint8Array || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const data = v instanceof Uint8Array ? v : ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(v);
    sized(data.length, null, 0, [0xc4, 0xc5, 0xc6]);
    room(data.length);
    buf.set(data, pos);
    pos += data.length;
    return undefined;
  }
  if (typeof v.toJSON === 'function') return write(v.toJSON(), inArray);
  let count = 0; // the fields JSON.stringify would keep
  for (const key in v) {
    if (Object.hasOwn(v, key) && v[key] !== undefined && typeof v[key] !== 'function') count++;
  }
  sized(count, 0x80, 16, [null, 0xde, 0xdf]);
  for (const key in v) {
    if (!Object.hasOwn(v, key)) continue;
    const item = v[key];
    if (item === undefined || typeof item === 'function') continue;
    writeString(key);
    write(item, false);
  }
  return undefined;
}

/** One value as msgpack bytes. */
export function encode(value) {
  pos = 0;
  write(value, false);
  return buf.slice(0, pos);
}

// The decoder's state: one value is read at a time, start to end, so it lives here too.
let bytes = new Uint8Array(0);
let data = new DataView(bytes.buffer);
let at = 0;

function need(n) {
  if (at + n > bytes.length) throw new RangeError('msgpack: truncated');
}

function u8() {
  need(1);
  return bytes[at++];
}

function u16at() {
  need(2);
  const n = data.getUint16(at);
  at += 2;
  return n;
}

function u32at() {
  need(4);
  const n = data.getUint32(at);
  at += 4;
  return n;
}

function take(n) {
  need(n);
  const part = bytes.subarray(at, at + n);
  at += n;
  return part;
}

function readString(n) {
  need(n);
  if (n < 48) { // short ASCII (keys, ids, types, times) without a call into TextDecoder
    let s = '';
    for (let i = at; i < at + n; i++) {
      const c = bytes[i];
      if (c > 0x7f) return fromUtf8.decode(take(n));
      s += String.fromCharCode(c);
    }
    at += n;
    return s;
  }
  return fromUtf8.decode(take(n));
}

function readArray(n) {
  const items = [];
  for (let i = 0; i < n; i++) items.push(read());
  return items;
}

// Map keys repeat in every frame ("type", "content", "room"...): the strings of short ones
// are kept, by length, and found again by comparing bytes, which costs less than a new string.
const KEY_MAX = 16;
const KEYS_PER_LENGTH = 32;
const keys = Array.from({ length: KEY_MAX + 1 }, () => []); // [bytes, string] per length

function readKey(n) {
  if (n === 0 || n > KEY_MAX) return readString(n);
  need(n);
  const seen = keys[n];
  search: for (let k = 0; k < seen.length; k++) {
    const known = seen[k][0];
    for (let i = 0; i < n; i++) if (known[i] !== bytes[at + i]) continue search;
    at += n;
    return seen[k][1];
  }
  const raw = bytes.slice(at, at + n);
  const key = readString(n);
  if (seen.length < KEYS_PER_LENGTH) seen.push([raw, key]);
  return key;
}

function readMap(n) {
  const object = {};
  for (let i = 0; i < n; i++) {
    const b = bytes[at];
    const key = b >= 0xa0 && b < 0xc0 ? (at++, readKey(b & 0x1f)) : read();
    if (typeof key !== 'string') throw new TypeError('msgpack: map keys must be strings');
    const value = read();
    // as JSON.parse: "__proto__" is an own field, never the prototype
    if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
    else object[key] = value;
  }
  return object;
}

function big(signed) {
  need(8);
  const value = signed ? data.getBigInt64(at) : data.getBigUint64(at);
  at += 8;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function fixed(size, get) {
  need(size);
  const value = get(at);
  at += size;
  return value;
}

function read() {
  const b = u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b < 0x90) return readMap(b & 0x0f);
  if (b < 0xa0) return readArray(b & 0x0f);
  if (b < 0xc0) return readString(b & 0x1f);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return take(u8()).slice();
    case 0xc5: return take(u16at()).slice();
    case 0xc6: return take(u32at()).slice();
    case 0xca: return fixed(4, (i) => data.getFloat32(i));
    case 0xcb: return fixed(8, (i) => data.getFloat64(i));
    case 0xcc: return u8();
    case 0xcd: return u16at();
    case 0xce: return u32at();
    case 0xcf: return big(false);
    case 0xd0: return fixed(1, (i) => data.getInt8(i));
    case 0xd1: return fixed(2, (i) => data.getInt16(i));
    case 0xd2: return fixed(4, (i) => data.getInt32(i));
    case 0xd3: return big(true);
    case 0xd9: return readString(u8());
    case 0xda: return readString(u16at());
    case 0xdb: return readString(u32at());
    case 0xdc: return readArray(u16at());
    case 0xdd: return readArray(u32at());
    case 0xde: return readMap(u16at());
    case 0xdf: return readMap(u32at());
    default:
      throw new TypeError(`msgpack: type 0x${b.toString(16)} is not part of the protocol`);
  }
}

/** One value from msgpack bytes (a Uint8Array, Buffer or ArrayBuffer); throws on trailing
 * or missing bytes, ext types and non-string map keys. */
export function decode(input) {
  bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  at = 0;
  try {
    const value = read();
    if (at !== bytes.length) throw new RangeError(`msgpack: ${bytes.length - at} bytes after the value`);
    return value;
  } finally {
    bytes = new Uint8Array(0); // hold no frame past its decode
  }
}
