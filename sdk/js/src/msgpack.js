/** msgpack for subprotocol `rthub.msgpack.v1`, with no dependency: what the protocol carries
 * and JSON can carry too (nil, booleans, integers to 64 bits, floats, strings, arrays,
 * string-keyed maps), plus `bin` as Uint8Array. No ext types: the hub refuses them.
 * Values are written as JSON.stringify would see them (undefined fields left out, undefined
 * in an array and non-finite numbers as nil, `toJSON` honoured) so both encodings say the
 * same; integers past 2^53 travel as BigInt, and decode as one. */

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  room(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  put(setter, size, value) {
    this.room(size);
    this.view[setter](this.pos, value);
    this.pos += size;
  }

  byte(b) {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  bytes(data) {
    this.room(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }
}

/** A header with a length: fix form below `fixMax`, then 8 (strings and bin only), 16, 32 bits. */
function sized(out, n, fix, fixMax, codes) {
  if (fix !== null && n < fixMax) return out.byte(fix | n);
  if (codes[0] !== null && n <= 0xff) return (out.byte(codes[0]), out.byte(n));
  if (n <= 0xffff) return (out.byte(codes[1]), out.put('setUint16', 2, n));
  if (n <= 0xffffffff) return (out.byte(codes[2]), out.put('setUint32', 4, n));
  throw new RangeError(`msgpack: ${n} is too long`);
}

function writeInt(out, v) {
  if (v >= 0) {
    if (v < 0x80) return out.byte(v);
    if (v <= 0xff) return (out.byte(0xcc), out.byte(v));
    if (v <= 0xffff) return (out.byte(0xcd), out.put('setUint16', 2, v));
    if (v <= 0xffffffff) return (out.byte(0xce), out.put('setUint32', 4, v));
    return (out.byte(0xcf), out.put('setBigUint64', 8, BigInt(v)));
  }
  if (v >= -32) return out.byte(v & 0xff);
  if (v >= -0x80) return (out.byte(0xd0), out.put('setInt8', 1, v));
  if (v >= -0x8000) return (out.byte(0xd1), out.put('setInt16', 2, v));
  if (v >= -0x80000000) return (out.byte(0xd2), out.put('setInt32', 4, v));
  return (out.byte(0xd3), out.put('setBigInt64', 8, BigInt(v)));
}

function writeBigInt(out, v) {
  if (v >= -(2n ** 63n) && v < 0n) return v >= -0x80000000n ? writeInt(out, Number(v)) : (out.byte(0xd3), out.put('setBigInt64', 8, v));
  if (v >= 0n && v < 2n ** 64n) return v <= 0xffffffffn ? writeInt(out, Number(v)) : (out.byte(0xcf), out.put('setBigUint64', 8, v));
  throw new RangeError(`msgpack: ${v} does not fit in 64 bits`);
}

function writeString(out, s) {
  const data = utf8.encode(s);
  sized(out, data.length, 0xa0, 32, [0xd9, 0xda, 0xdb]);
  out.bytes(data);
}

function write(out, v, inArray) {
  if (v === null) return out.byte(0xc0);
  switch (typeof v) {
    case 'undefined':
      return out.byte(0xc0);
    case 'boolean':
      return out.byte(v ? 0xc3 : 0xc2);
    case 'number':
      if (!Number.isFinite(v)) return out.byte(0xc0);
      if (Number.isSafeInteger(v)) return writeInt(out, v);
      return (out.byte(0xcb), out.put('setFloat64', 8, v));
    case 'bigint':
      return writeBigInt(out, v);
    case 'string':
      return writeString(out, v);
    case 'object':
      break;
    default:
      throw new TypeError(`msgpack: cannot encode a ${typeof v}${inArray ? ' in an array' : ''}`);
  }
  if (v instanceof Uint8Array || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const data = v instanceof Uint8Array ? v : ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(v);
    sized(out, data.length, null, 0, [0xc4, 0xc5, 0xc6]);
    return out.bytes(data);
  }
  if (typeof v.toJSON === 'function') return write(out, v.toJSON(), inArray);
  if (Array.isArray(v)) {
    sized(out, v.length, 0x90, 16, [null, 0xdc, 0xdd]);
    for (const item of v) write(out, item, true);
    return undefined;
  }
  const entries = Object.entries(v).filter(([, item]) => item !== undefined && typeof item !== 'function');
  sized(out, entries.length, 0x80, 16, [null, 0xde, 0xdf]);
  for (const [key, item] of entries) {
    writeString(out, key);
    write(out, item, false);
  }
  return undefined;
}

/** One value as msgpack bytes. */
export function encode(value) {
  const out = new Writer();
  write(out, value, false);
  return out.buf.slice(0, out.pos);
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.bytes.length) throw new RangeError('msgpack: truncated');
  }

  get(getter, size) {
    this.need(size);
    const value = this.view[getter](this.pos);
    this.pos += size;
    return value;
  }

  take(n) {
    this.need(n);
    const part = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return part;
  }

  string(n) {
    return fromUtf8.decode(this.take(n));
  }

  array(n) {
    const items = [];
    for (let i = 0; i < n; i++) items.push(this.read());
    return items;
  }

  map(n) {
    const object = {};
    for (let i = 0; i < n; i++) {
      const key = this.read();
      if (typeof key !== 'string') throw new TypeError('msgpack: map keys must be strings');
      const value = this.read();
      // as JSON.parse: "__proto__" is an own field, never the prototype
      if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
      else object[key] = value;
    }
    return object;
  }

  big(getter) {
    const value = this.get(getter, 8);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  read() {
    const b = this.get('getUint8', 1);
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b < 0x90) return this.map(b & 0x0f);
    if (b < 0xa0) return this.array(b & 0x0f);
    if (b < 0xc0) return this.string(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.take(this.get('getUint8', 1)).slice();
      case 0xc5: return this.take(this.get('getUint16', 2)).slice();
      case 0xc6: return this.take(this.get('getUint32', 4)).slice();
      case 0xca: return this.get('getFloat32', 4);
      case 0xcb: return this.get('getFloat64', 8);
      case 0xcc: return this.get('getUint8', 1);
      case 0xcd: return this.get('getUint16', 2);
      case 0xce: return this.get('getUint32', 4);
      case 0xcf: return this.big('getBigUint64');
      case 0xd0: return this.get('getInt8', 1);
      case 0xd1: return this.get('getInt16', 2);
      case 0xd2: return this.get('getInt32', 4);
      case 0xd3: return this.big('getBigInt64');
      case 0xd9: return this.string(this.get('getUint8', 1));
      case 0xda: return this.string(this.get('getUint16', 2));
      case 0xdb: return this.string(this.get('getUint32', 4));
      case 0xdc: return this.array(this.get('getUint16', 2));
      case 0xdd: return this.array(this.get('getUint32', 4));
      case 0xde: return this.map(this.get('getUint16', 2));
      case 0xdf: return this.map(this.get('getUint32', 4));
      default:
        throw new TypeError(`msgpack: type 0x${b.toString(16)} is not part of the protocol`);
    }
  }
}

/** One value from msgpack bytes (a Uint8Array, Buffer or ArrayBuffer); throws on trailing
 * or missing bytes, ext types and non-string map keys. */
export function decode(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const reader = new Reader(bytes);
  const value = reader.read();
  if (reader.pos !== bytes.length) throw new RangeError(`msgpack: ${bytes.length - reader.pos} bytes after the value`);
  return value;
}
