/**
 * The VERSION handshake: the body (major, minor, NUL-terminated JSON), the
 * capabilities JSON in both directions, the defaults a silent peer implies,
 * and the server's choice of reply.
 */
import { VfioError } from '../base/errors.js';
import { need, u16 } from './buffer-reader.js';
import { put16 } from './buffer-writer.js';
import type { PeerCapabilities, VersionMessage } from './messages.js';
import { CapabilityDefault, CapabilityName as N, MAX_MSG_FDS_LIMIT, PROTOCOL_MAJOR, PROTOCOL_MINOR, Size } from './protocol.js';

/** Capabilities with every default filled in: what a peer can be relied on for. */
export interface Capabilities {
  maxMsgFds: number;
  maxDataXferSize: number;
  maxDmaMaps: number;
  pgsizes: bigint;
  twinSocket: boolean;
  writeMultiple: boolean;
  migration: { pgsize: number; maxBitmapSize: number } | undefined;
}

/** What a peer supports, its silence read as the spec's defaults. */
export function withDefaults(caps: PeerCapabilities | undefined): Capabilities {
  return {
    maxMsgFds: caps?.maxMsgFds ?? CapabilityDefault.MAX_MSG_FDS,
    maxDataXferSize: caps?.maxDataXferSize ?? CapabilityDefault.MAX_DATA_XFER_SIZE,
    maxDmaMaps: caps?.maxDmaMaps ?? CapabilityDefault.MAX_DMA_MAPS,
    pgsizes: caps?.pgsizes ?? CapabilityDefault.PGSIZES,
    twinSocket: caps?.twinSocket?.supported ?? CapabilityDefault.TWIN_SOCKET,
    writeMultiple: caps?.writeMultiple ?? CapabilityDefault.WRITE_MULTIPLE,
    migration:
      caps?.migration === undefined
        ? undefined
        : {
            pgsize: caps.migration.pgsize ?? CapabilityDefault.MIGRATION_PGSIZE,
            maxBitmapSize: caps.migration.maxBitmapSize ?? CapabilityDefault.MIGRATION_MAX_BITMAP_SIZE,
          },
  };
}

// ---------------------------------------------------------------- JSON in

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function bad(what: string): VfioError {
  return new VfioError('EINVAL', `VERSION capabilities: ${what}`);
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intIn(v: Json | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(`"${name}" must be an integer in [${min}, ${max}]`);
  }
  return v;
}

function bool(v: Json | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(`"${name}" must be a boolean`);
  return v;
}

function own(o: { [k: string]: Json }, k: string): Json | undefined {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

/**
 * Parses the JSON text of a VERSION message. Unknown names are ignored (a
 * newer peer may add some); a known name of the wrong type or range, or text
 * that is not a JSON object, is EINVAL.
 *
 * pgsizes is a 64-bit mask; JSON numbers above 2^53 reach us as doubles, so
 * a mask is exact only when its set bits span at most 53 bits — true of every
 * real page-size mask (e.g. 0xfffffffffffff000).
 */
export function parseCapabilitiesJson(text: string): PeerCapabilities | undefined {
  let top: Json;
  try {
    top = JSON.parse(text) as Json;
  } catch {
    throw bad('not valid JSON');
  }
  if (!isObject(top)) throw bad('the JSON must be an object');
  const c = own(top, N.ROOT);
  if (c === undefined) return undefined;
  if (!isObject(c)) throw bad(`"${N.ROOT}" must be an object`);

  const out: PeerCapabilities = {};
  const maxMsgFds = intIn(own(c, N.MAX_MSG_FDS), N.MAX_MSG_FDS, 0, MAX_MSG_FDS_LIMIT);
  if (maxMsgFds !== undefined) out.maxMsgFds = maxMsgFds;
  const xfer = intIn(own(c, N.MAX_DATA_XFER_SIZE), N.MAX_DATA_XFER_SIZE, 1, 0xffff_ffff);
  if (xfer !== undefined) out.maxDataXferSize = xfer;
  const maps = intIn(own(c, N.MAX_DMA_MAPS), N.MAX_DMA_MAPS, 0, 0xffff_ffff);
  if (maps !== undefined) out.maxDmaMaps = maps;

  const pg = own(c, N.PGSIZES);
  if (pg !== undefined) {
    if (typeof pg !== 'number' || !Number.isInteger(pg) || pg <= 0 || pg >= 2 ** 64) {
      throw bad(`"${N.PGSIZES}" must be a non-zero 64-bit mask`);
    }
    out.pgsizes = BigInt(pg);
  }

  const ts = own(c, N.TWIN_SOCKET);
  if (ts !== undefined) {
    if (!isObject(ts)) throw bad(`"${N.TWIN_SOCKET}" must be an object`);
    const t: { supported?: boolean; fdIndex?: number } = {};
    const supported = bool(own(ts, N.TWIN_SOCKET_SUPPORTED), `${N.TWIN_SOCKET}.${N.TWIN_SOCKET_SUPPORTED}`);
    if (supported !== undefined) t.supported = supported;
    const fdIndex = intIn(own(ts, N.TWIN_SOCKET_FD_INDEX), `${N.TWIN_SOCKET}.${N.TWIN_SOCKET_FD_INDEX}`, 0, MAX_MSG_FDS_LIMIT - 1);
    if (fdIndex !== undefined) t.fdIndex = fdIndex;
    out.twinSocket = t;
  }

  const wm = bool(own(c, N.WRITE_MULTIPLE), N.WRITE_MULTIPLE);
  if (wm !== undefined) out.writeMultiple = wm;

  const mig = own(c, N.MIGRATION);
  if (mig !== undefined) {
    if (!isObject(mig)) throw bad(`"${N.MIGRATION}" must be an object`);
    const m: { pgsize?: number; maxBitmapSize?: number } = {};
    const pgsize = intIn(own(mig, N.MIGRATION_PGSIZE), `${N.MIGRATION}.${N.MIGRATION_PGSIZE}`, 1, 2 ** 52);
    if (pgsize !== undefined) {
      // A page size is a power of two of at least 4 KiB (libvfio-user refuses 4095).
      if (pgsize < 4096 || (pgsize & (pgsize - 1)) !== 0) {
        throw bad(`"${N.MIGRATION}.${N.MIGRATION_PGSIZE}" must be a power of two ≥ 4096`);
      }
      m.pgsize = pgsize;
    }
    const mbs = intIn(own(mig, N.MIGRATION_MAX_BITMAP_SIZE), `${N.MIGRATION}.${N.MIGRATION_MAX_BITMAP_SIZE}`, 0, Number.MAX_SAFE_INTEGER);
    if (mbs !== undefined) m.maxBitmapSize = mbs;
    out.migration = m;
  }
  return out;
}

// ---------------------------------------------------------------- JSON out

/** Formats capabilities as the JSON text of a VERSION message (without the NUL). */
function formatCapabilitiesJson(caps: PeerCapabilities): string {
  const c: Record<string, unknown> = {};
  if (caps.maxMsgFds !== undefined) c[N.MAX_MSG_FDS] = caps.maxMsgFds;
  if (caps.maxDataXferSize !== undefined) c[N.MAX_DATA_XFER_SIZE] = caps.maxDataXferSize;
  if (caps.maxDmaMaps !== undefined) c[N.MAX_DMA_MAPS] = caps.maxDmaMaps;
  if (caps.pgsizes !== undefined) c[N.PGSIZES] = caps.pgsizes;
  if (caps.twinSocket !== undefined) {
    const t: Record<string, unknown> = {};
    if (caps.twinSocket.supported !== undefined) t[N.TWIN_SOCKET_SUPPORTED] = caps.twinSocket.supported;
    if (caps.twinSocket.fdIndex !== undefined) t[N.TWIN_SOCKET_FD_INDEX] = caps.twinSocket.fdIndex;
    c[N.TWIN_SOCKET] = t;
  }
  if (caps.writeMultiple !== undefined) c[N.WRITE_MULTIPLE] = caps.writeMultiple;
  if (caps.migration !== undefined) {
    const m: Record<string, unknown> = {};
    if (caps.migration.pgsize !== undefined) m[N.MIGRATION_PGSIZE] = caps.migration.pgsize;
    if (caps.migration.maxBitmapSize !== undefined) m[N.MIGRATION_MAX_BITMAP_SIZE] = caps.migration.maxBitmapSize;
    c[N.MIGRATION] = m;
  }
  // bigints (pgsizes) are written as exact JSON integers.
  return JSON.stringify({ [N.ROOT]: c }, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000big:${v.toString()}` : v)).replace(
    /"\\u0000big:(\d+)"/g,
    '$1',
  );
}

// ---------------------------------------------------------------- body

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Decodes a VERSION body (request or reply). A request must carry no fds; a
 * reply may carry the twin socket, and then `twin_socket.fd_index` must name
 * one of the fds it carried (the spec's "inconsistent reply" otherwise).
 */
export function decodeVersion(body: Uint8Array, fds: readonly number[], role: 'command' | 'reply'): VersionMessage {
  need(body, 0, Size.VERSION, 'VFIO_USER_VERSION');
  const major = u16(body, 0);
  const minor = u16(body, 2);
  let capabilities: PeerCapabilities | undefined;
  if (body.length > Size.VERSION) {
    if (body[body.length - 1] !== 0) {
      throw new VfioError('EINVAL', 'VFIO_USER_VERSION: the capabilities JSON is not NUL-terminated');
    }
    const end = body.indexOf(0, Size.VERSION);
    let text: string;
    try {
      text = utf8.decode(body.subarray(Size.VERSION, end));
    } catch {
      throw new VfioError('EINVAL', 'VFIO_USER_VERSION: the capabilities JSON is not UTF-8');
    }
    capabilities = parseCapabilitiesJson(text);
  }
  const ts = capabilities?.twinSocket;
  if (role === 'command') {
    if (fds.length !== 0) throw new VfioError('EINVAL', `VFIO_USER_VERSION: a request may carry no fds, it carried ${fds.length}`);
  } else if (ts?.supported === true && ts.fdIndex !== undefined) {
    if (ts.fdIndex >= fds.length) {
      throw new VfioError('EINVAL', `VFIO_USER_VERSION: twin_socket.fd_index ${ts.fdIndex} but the reply carried ${fds.length} fds`);
    }
  } else if (fds.length !== 0) {
    throw new VfioError('EINVAL', `VFIO_USER_VERSION: the reply carried ${fds.length} fds but no twin socket`);
  }
  return { major, minor, capabilities };
}

/** The bytes of a VERSION body: major, minor and, when capabilities are given, JSON + NUL. */
export function versionBody(v: VersionMessage): Uint8Array {
  const json = v.capabilities === undefined ? null : utf8Encoder.encode(formatCapabilitiesJson(v.capabilities));
  const b = new Uint8Array(Size.VERSION + (json === null ? 0 : json.length + 1));
  put16(b, 0, v.major);
  put16(b, 2, v.minor);
  if (json !== null) b.set(json, Size.VERSION); // the trailing NUL is already 0
  return b;
}

/**
 * The server's side of the handshake: checks the client's proposal and
 * returns the version to answer with. EINVAL when the major differs (the
 * spec has the server close the connection; libvfio-user replies EINVAL
 * first). The minor is the lower of the two.
 */
export function chooseVersion(
  client: VersionMessage,
  ours: { major: number; minor: number } = { major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR },
): { major: number; minor: number } {
  if (client.major !== ours.major) {
    throw new VfioError('EINVAL', `VFIO_USER_VERSION: client major ${client.major}, this server speaks ${ours.major}`);
  }
  return { major: ours.major, minor: Math.min(client.minor, ours.minor) };
}
