/**
 * The format of uvfio's device migration streams, shared by every driver so
 * that each refuses a foreign, damaged or incomplete stream the same way.
 * A stream is opaque to the client (it only moves the bytes, in order); a
 * driver writes records and reads them back on the destination.
 *
 *     magic  8 bytes "uvfioMIG"
 *     record*        tag u16 | reserved u16 | length u32 | payload | crc32 u32
 *
 * The first record is the header (tag 1): format major u16, minor u16, the
 * device kind (u8 length + ASCII, e.g. "mtty") and the kind's parameters
 * (e.g. its port count): a stream loads only into a device of the same kind
 * and parameters. The last is the end record (tag 0xffff) holding the
 * number of records between the two (a writer that wrote only the header
 * in an earlier stage counts the same). Each record carries the CRC-32 of its tag,
 * length and payload, so records can be written at different times (a
 * PRE_COPY stage, then STOP_COPY) and every one is checked on its own.
 *
 * What a reader refuses, and with which errno:
 * - EBADMSG: no magic, a bad CRC, an unknown or repeated record, bytes
 *   after the end, fields that do not fit their record (damage);
 * - ENODATA: the stream stops before its end record (truncated);
 * - EPROTO: another major version, or a newer minor (a version this
 *   device cannot read);
 * - EINVAL: a stream of another kind of device or other parameters (a
 *   type this device is not).
 */
import { crc32 } from 'node:zlib';
import { VfioError } from '../base/errors.js';

/** "uvfioMIG" */
export const MIG_STREAM_MAGIC = Uint8Array.from([0x75, 0x76, 0x66, 0x69, 0x6f, 0x4d, 0x49, 0x47]);
const HEADER_TAG = 1;
const END_TAG = 0xffff;
const RECORD_HEAD = 8;
const RECORD_TAIL = 4;

/** What a stream says it is; a reader states what it expects. */
export interface MigStreamHeader {
  /** the device kind, 1..255 ASCII characters ("mtty") */
  kind: string;
  major: number;
  minor: number;
  /** the kind's parameters (a type's size): must match byte for byte */
  params: Uint8Array;
}

/** Bytes a lazy record copies out of its source per piece. */
export const LAZY_PIECE = 1 << 20;

/** A record written later, piece by piece, from memory it reads then. */
interface LazyRecord {
  tag: number;
  source: Uint8Array;
}

/** Builds stream bytes: the magic and header, then records, then the end. */
export class MigStreamWriter {
  readonly #parts: Array<Uint8Array | LazyRecord> = [];
  #records = 0;

  /** The magic and the header record: the first bytes of a stream. */
  begin(header: MigStreamHeader): this {
    const kind = new TextEncoder().encode(header.kind);
    if (kind.length === 0 || kind.length > 255) throw new VfioError('EINVAL', `a stream kind has 1..255 bytes, not ${kind.length}`);
    const w = new FieldWriter().u16(header.major).u16(header.minor).u8(kind.length).bytes(kind).bytes(header.params);
    this.#parts.push(MIG_STREAM_MAGIC.slice());
    return this.record(HEADER_TAG, w.take());
  }

  /**
   * One record of the driver's (tags 2..0xfffe). The payload is kept by
   * reference until take() or pieces() copies it: a view of live memory
   * is read there, not here.
   */
  record(tag: number, payload: Uint8Array): this {
    const head = recordHead(tag, payload.length);
    const tail = new Uint8Array(RECORD_TAIL);
    new DataView(tail.buffer).setUint32(0, crc32(payload, crc32(head)), true);
    this.#parts.push(head, payload, tail);
    if (tag !== END_TAG && tag !== HEADER_TAG) this.#records++;
    return this;
  }

  /**
   * A record of a large memory (video memory): with pieces(), `source` is
   * copied and checksummed LAZY_PIECE bytes at a time as the stream is
   * read, so no step costs more than a piece; take() copies it whole.
   */
  lazyRecord(tag: number, source: Uint8Array): this {
    recordHead(tag, source.length);
    this.#parts.push({ tag, source });
    this.#records++;
    return this;
  }

  /** The end record: nothing may follow it. */
  end(): this {
    return this.record(END_TAG, new FieldWriter().u32(this.#records).take());
  }

  /** The bytes written so far, as one array; the writer starts over. */
  take(): Uint8Array {
    const pieces = [...this.pieces()];
    const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * The bytes written so far, as pieces made when they are asked for (a
   * lazy record's, from its source as it is then); the writer starts over.
   */
  *pieces(): Generator<Uint8Array> {
    const parts = this.#parts.splice(0);
    for (const part of parts) {
      if (part instanceof Uint8Array) {
        yield part;
        continue;
      }
      const head = recordHead(part.tag, part.source.length);
      let crc = crc32(head);
      yield head;
      for (let at = 0; at < part.source.length; at += LAZY_PIECE) {
        const piece = part.source.slice(at, at + LAZY_PIECE);
        crc = crc32(piece, crc);
        yield piece;
      }
      const tail = new Uint8Array(RECORD_TAIL);
      new DataView(tail.buffer).setUint32(0, crc, true);
      yield tail;
    }
  }
}

function recordHead(tag: number, length: number): Uint8Array {
  if (!Number.isInteger(tag) || tag < HEADER_TAG || tag > END_TAG) throw new RangeError(`record tag ${tag} is out of range`);
  const head = new Uint8Array(RECORD_HEAD);
  const view = new DataView(head.buffer);
  view.setUint16(0, tag, true);
  view.setUint32(4, length, true);
  return head;
}

/** What the reader expects: the kind, the version it reads, the parameters. */
export interface MigStreamExpectation {
  kind: string;
  major: number;
  /** the newest minor version this device reads */
  minor: number;
  params: Uint8Array;
  /** the tags a stream may hold besides header and end (each at most once) */
  tags: readonly number[];
}

/**
 * Checks a whole stream (see the module comment for the errnos) and
 * returns its records by tag. Nothing is applied: the caller decodes the
 * records, and changes its device only once all of them decoded.
 */
export function readMigStream(stream: Uint8Array, expect: MigStreamExpectation): Map<number, Uint8Array> {
  const walk = parseMigStream(stream, expect);
  for (let r = walk.next(); ; r = walk.next()) if (r.done === true) return r.value;
}

/**
 * readMigStream for a large stream: the same checks, giving the event loop
 * a turn after each YIELD_EVERY bytes checksummed, so a 64 MiB stream does
 * not hold the daemon for the whole of its check.
 */
export async function readMigStreamInTurns(stream: Uint8Array, expect: MigStreamExpectation): Promise<Map<number, Uint8Array>> {
  const walk = parseMigStream(stream, expect);
  for (let r = walk.next(); ; r = walk.next()) {
    if (r.done === true) return r.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Bytes checksummed (or copied) between two turns of the event loop. */
export const YIELD_EVERY = 4 << 20;

/**
 * Copies `src` into `dest` (same length), giving the event loop a turn
 * after each YIELD_EVERY bytes: how a load puts back video memory.
 */
export async function copyInTurns(dest: Uint8Array, src: Uint8Array): Promise<void> {
  for (let at = 0; at < src.length; at += YIELD_EVERY) {
    if (at > 0) await new Promise((resolve) => setImmediate(resolve));
    dest.set(src.subarray(at, at + YIELD_EVERY), at);
  }
}

/** The parse, yielding where a turn may be given (after each YIELD_EVERY bytes checksummed). */
function* parseMigStream(stream: Uint8Array, expect: MigStreamExpectation): Generator<void, Map<number, Uint8Array>> {
  const what = `${expect.kind} migration stream`;
  if (stream.length < MIG_STREAM_MAGIC.length) {
    if (stream.every((b, i) => b === MIG_STREAM_MAGIC[i])) {
      throw new VfioError('ENODATA', `the ${what} is truncated: ${stream.length} bytes, not even its magic`);
    }
    throw new VfioError('EBADMSG', `not a uvfio migration stream (bad magic)`);
  }
  if (!MIG_STREAM_MAGIC.every((b, i) => stream[i] === b)) throw new VfioError('EBADMSG', 'not a uvfio migration stream (bad magic)');
  const records = new Map<number, Uint8Array>();
  let at = MIG_STREAM_MAGIC.length;
  let count = 0;
  for (;;) {
    if (stream.length - at < RECORD_HEAD) {
      throw new VfioError('ENODATA', `the ${what} is truncated: it stops after ${stream.length} bytes, before its end record`);
    }
    const view = new DataView(stream.buffer, stream.byteOffset + at);
    const tag = view.getUint16(0, true);
    const length = view.getUint32(4, true);
    if (view.getUint16(2, true) !== 0) throw new VfioError('EBADMSG', `the ${what} is damaged: record ${count} has reserved bits set`);
    if (stream.length - at - RECORD_HEAD < length + RECORD_TAIL) {
      throw new VfioError('ENODATA', `the ${what} is truncated: record ${count} (tag ${tag}) needs ${length} bytes, the stream stops first`);
    }
    const payload = stream.subarray(at + RECORD_HEAD, at + RECORD_HEAD + length);
    const crc = new DataView(stream.buffer, stream.byteOffset + at + RECORD_HEAD + length).getUint32(0, true);
    let sum = crc32(stream.subarray(at, at + RECORD_HEAD));
    for (let p = 0; p < length; p += YIELD_EVERY) {
      sum = crc32(payload.subarray(p, p + YIELD_EVERY), sum);
      if (p + YIELD_EVERY < length) yield;
    }
    if (sum !== crc) {
      throw new VfioError('EBADMSG', `the ${what} is damaged: record ${count} (tag ${tag}) fails its checksum`);
    }
    at += RECORD_HEAD + length + RECORD_TAIL;
    if (count === 0) {
      if (tag !== HEADER_TAG) throw new VfioError('EBADMSG', `the ${what} is damaged: it does not start with a header`);
      checkHeader(payload, expect);
    } else if (tag === END_TAG) {
      const n = new FieldReader(payload, 'end record').u32();
      if (n !== count - 1) throw new VfioError('EBADMSG', `the ${what} is damaged: its end counts ${n} records, ${count - 1} came`);
      if (at !== stream.length) throw new VfioError('EBADMSG', `the ${what} is damaged: ${stream.length - at} bytes follow its end`);
      return records;
    } else {
      if (!expect.tags.includes(tag) || records.has(tag)) {
        throw new VfioError('EBADMSG', `the ${what} is damaged: record tag ${tag} is ${records.has(tag) ? 'repeated' : 'unknown'}`);
      }
      records.set(tag, payload);
    }
    count++;
  }
}

/**
 * An early look at the start of a stream being written: false while the
 * magic and header are not all there yet, true once they are and fit
 * `expect`; the errnos of readMigStream otherwise. Lets a device refuse a
 * foreign stream at its first bytes rather than at its end.
 */
export function checkMigStreamStart(head: Uint8Array, expect: Omit<MigStreamExpectation, 'tags'>): boolean {
  const what = `${expect.kind} migration stream`;
  const magic = Math.min(head.length, MIG_STREAM_MAGIC.length);
  if (!MIG_STREAM_MAGIC.subarray(0, magic).every((b, i) => head[i] === b)) throw new VfioError('EBADMSG', 'not a uvfio migration stream (bad magic)');
  const at = MIG_STREAM_MAGIC.length;
  if (head.length < at + RECORD_HEAD) return false;
  const view = new DataView(head.buffer, head.byteOffset + at);
  const length = view.getUint32(4, true);
  if (head.length < at + RECORD_HEAD + length + RECORD_TAIL) return false;
  const payload = head.subarray(at + RECORD_HEAD, at + RECORD_HEAD + length);
  const crc = new DataView(head.buffer, head.byteOffset + at + RECORD_HEAD + length).getUint32(0, true);
  if (view.getUint16(0, true) !== HEADER_TAG || view.getUint16(2, true) !== 0 || crc32(payload, crc32(head.subarray(at, at + RECORD_HEAD))) !== crc) {
    throw new VfioError('EBADMSG', `the ${what} is damaged: its header is not one`);
  }
  checkHeader(payload, expect);
  return true;
}

function checkHeader(payload: Uint8Array, expect: Omit<MigStreamExpectation, 'tags'>): void {
  const r = new FieldReader(payload, 'header');
  const major = r.u16();
  const minor = r.u16();
  const kind = new TextDecoder().decode(r.bytes(r.u8()));
  const params = r.rest();
  if (kind !== expect.kind) {
    throw new VfioError('EINVAL', `a ${JSON.stringify(kind)} migration stream cannot load into a ${expect.kind} device`);
  }
  if (major !== expect.major || minor > expect.minor) {
    throw new VfioError(
      'EPROTO',
      `${expect.kind} migration stream version ${major}.${minor}: this device reads ${expect.major}.0 to ${expect.major}.${expect.minor}`,
    );
  }
  if (params.length !== expect.params.length || !params.every((b, i) => b === expect.params[i])) {
    throw new VfioError(
      'EINVAL',
      `the ${expect.kind} migration stream is for another type of ${expect.kind} device (${hex(params)}, this one is ${hex(expect.params)})`,
    );
  }
}

function hex(b: Uint8Array): string {
  return b.length === 0 ? 'none' : Buffer.from(b).toString('hex');
}

/** Little-endian fields into a growing buffer. */
export class FieldWriter {
  #buf = new Uint8Array(64);
  #view = new DataView(this.#buf.buffer);
  #at = 0;

  u8(v: number): this {
    this.#room(1).setUint8(this.#at, v);
    this.#at += 1;
    return this;
  }
  u16(v: number): this {
    this.#room(2).setUint16(this.#at, v, true);
    this.#at += 2;
    return this;
  }
  u32(v: number): this {
    this.#room(4).setUint32(this.#at, v, true);
    this.#at += 4;
    return this;
  }
  u64(v: number): this {
    this.#room(8).setBigUint64(this.#at, BigInt(v), true);
    this.#at += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#at);
    this.#at += b.length;
    return this;
  }
  /** The fields written, as a new array. */
  take(): Uint8Array {
    return this.#buf.slice(0, this.#at);
  }

  #room(n: number): DataView {
    if (this.#at + n > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#at + n));
      bigger.set(this.#buf.subarray(0, this.#at));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    return this.#view;
  }
}

/**
 * Little-endian fields out of one record. Reading past its end, or leaving
 * bytes unread (done()), is EBADMSG: a checksummed record of the right
 * version that does not hold its fields is damaged.
 */
export class FieldReader {
  readonly #view: DataView;
  #at = 0;

  constructor(
    readonly data: Uint8Array,
    /** what the record is, for the error sentence */
    readonly what: string,
  ) {
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }
  u64(): number {
    const v = this.#view.getBigUint64(this.#take(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VfioError('EBADMSG', `the ${this.what} record holds a value beyond 2^53`);
    return Number(v);
  }
  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.data.subarray(at, at + n);
  }
  /** Whatever is left. */
  rest(): Uint8Array {
    return this.bytes(this.data.length - this.#at);
  }
  /** Throws unless every byte was read. */
  done(): void {
    if (this.#at !== this.data.length) {
      throw new VfioError('EBADMSG', `the ${this.what} record has ${this.data.length - this.#at} bytes more than its fields`);
    }
  }

  #take(n: number): number {
    if (this.data.length - this.#at < n) throw new VfioError('EBADMSG', `the ${this.what} record is shorter than its fields`);
    const at = this.#at;
    this.#at += n;
    return at;
  }
}
