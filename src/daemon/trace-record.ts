/**
 * What `uvfio trace` records, one JSON object per line (`--json`), and what
 * `uvfio replay` reads back: a header naming the device and its type, then
 * every command each client sent with its decoded fields, the register it
 * touched where the driver names it, the reply and its errno, the
 * server-side latency; sessions opening and closing; interrupts the device
 * raised and DMA it did; events dropped because the reader fell behind.
 *
 * Payloads are base64 up to PAYLOAD_INLINE_MAX bytes, so a recorded
 * session can be sent again byte for byte; a larger one is only its size
 * and SHA-256 (replay compares the reply's digest, and cannot send such a
 * request again).
 */
import { createHash } from 'node:crypto';
import { errnoName } from '../base/errors.js';
import { IrqSetFlags } from '../base/uapi.js';
import type { VfioDevice } from '../core/device.js';
import type { DmaTrace } from '../iommufd/dma-trace.js';
import { u32, u64, u64n } from '../vfio-user/buffer-reader.js';
import { Command, Size } from '../vfio-user/protocol.js';
import type { InterruptTrace, MessageTrace, SessionTrace } from '../vfio-user/trace.js';
import type { MdevAttr } from './definition.js';

/** The version of the line format; replay refuses another. */
export const TRACE_FORMAT = 1;

/** Payloads up to this many bytes are recorded whole; larger ones by digest. */
export const PAYLOAD_INLINE_MAX = 64 * 1024;

/** The first line: which device, of which type, since when. */
export interface TraceHeader {
  type: 'trace';
  format: number;
  uuid: string;
  parent: string;
  mdevType: string;
  attrs: MdevAttr[];
  /** ISO time the trace began; every `t` counts ms from it */
  startedAt: string;
  /** bytes of events the daemon holds for a slow reader before it drops them */
  backlogLimit: number;
}

/** A recorded payload: base64, or only its size and digest when too large. */
export interface Payload {
  size: number;
  base64?: string;
  sha256?: string;
}

/** One command a client sent, and what came of it. */
export interface TraceMessage {
  type: 'message';
  t: number;
  client: number;
  /** who sent the command (client: every command a device serves) */
  from: 'client';
  msgId: number;
  /** as the spec spells it: REGION_READ */
  cmd: string;
  cmdId: number;
  flags: number;
  /** NO_REPLY: no reply was sent */
  posted: boolean;
  /** fds the request carried (not recorded: replay makes its own) */
  fds: number;
  /** decoded request (and, for reads, reply) fields */
  fields: Record<string, unknown>;
  /** what the access touched, in the driver's words (`port0 LCR`) */
  register?: string;
  request: Payload;
  /** 0, or the errno of the failure */
  errno: number;
  error?: string;
  /** the reply's body; absent when none was sent */
  reply?: Payload;
  /** server-side, from the start of its work to its reply */
  latencyUs: number;
}

export interface TraceSession {
  type: 'session';
  t: number;
  client: number;
  event: 'opened' | 'bound' | 'closed';
  pid?: number;
  uid?: number;
  reason?: string;
}

export interface TraceInterrupt {
  type: 'interrupt';
  t: number;
  client: number;
  from: 'server';
  index: number;
  irq: string;
  vector: number;
}

/** DMA the device did to the client's memory (a view: a window it keeps on it). */
export interface TraceDma {
  type: 'dma';
  t: number;
  client: number;
  from: 'server';
  op: 'read' | 'write' | 'view';
  iova: string;
  length: number;
}

/** Events the daemon dropped because the reader did not keep up. */
export interface TraceDropped {
  type: 'dropped';
  t: number;
  count: number;
}

export type TraceEvent = TraceMessage | TraceSession | TraceInterrupt | TraceDma | TraceDropped;
export type TraceLine = TraceHeader | TraceEvent;

/** How a trace ended (the `trace` request's result). */
export interface TraceSummary {
  events: number;
  dropped: number;
  /** a sentence: why it ended */
  reason: string;
}

/** The spec's spelling of a command id: REGION_READ. */
export function commandSpelling(cmd: number): string {
  return COMMAND_SPELLING.get(cmd) ?? `COMMAND_${cmd}`;
}

const COMMAND_SPELLING = new Map<number, string>(Object.entries(Command).map(([name, id]) => [id, name]));

export function payload(bytes: Uint8Array): Payload {
  if (bytes.length <= PAYLOAD_INLINE_MAX)
    return { size: bytes.length, base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64') };
  return { size: bytes.length, sha256: digest(bytes) };
}

export function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The bytes of a payload recorded whole; undefined for one recorded by digest. */
export function payloadBytes(p: Payload): Uint8Array | undefined {
  return p.base64 === undefined ? undefined : new Uint8Array(Buffer.from(p.base64, 'base64'));
}

/** True when `bytes` is what `p` recorded. */
export function payloadMatches(p: Payload, bytes: Uint8Array): boolean {
  if (p.size !== bytes.length) return false;
  if (p.base64 !== undefined) return Buffer.from(p.base64, 'base64').equals(bytes);
  return p.sha256 === digest(bytes);
}

/** One served command as a trace line; `device` names its registers (if still there). */
export function messageRecord(m: MessageTrace, t: number, device: VfioDevice | undefined): TraceMessage {
  const fields = decodeFields(m, device);
  const record: TraceMessage = {
    type: 'message',
    t,
    client: m.client,
    from: 'client',
    msgId: m.msgId,
    cmd: commandSpelling(m.cmd),
    cmdId: m.cmd,
    flags: m.flags,
    posted: m.posted,
    fds: m.fds,
    fields,
    request: payload(m.request),
    errno: m.errno,
    latencyUs: Math.round(m.latencyNs / 100) / 10,
  };
  if (m.errno !== 0) record.error = errnoName(m.errno) ?? `errno ${m.errno}`;
  if (m.reply !== null) record.reply = payload(m.reply);
  if (device !== undefined && typeof fields.region === 'number' && typeof fields.offset === 'number' && typeof fields.count === 'number') {
    const name = describe(device, fields.region, fields.offset, fields.count, m.cmd !== Command.REGION_READ);
    if (name !== undefined) record.register = name;
  }
  return record;
}

export function sessionRecord(s: SessionTrace, t: number): TraceSession {
  const record: TraceSession = { type: 'session', t, client: s.client, event: s.event };
  if (s.event === 'opened') Object.assign(record, { pid: s.pid, uid: s.uid });
  if (s.event === 'closed') record.reason = s.reason;
  return record;
}

export function interruptRecord(i: InterruptTrace, t: number, device: VfioDevice | undefined): TraceInterrupt {
  return {
    type: 'interrupt',
    t,
    client: i.client,
    from: 'server',
    index: i.index,
    irq: device?.irqName(i.index) ?? `irq${i.index}`,
    vector: i.vector,
  };
}

export function dmaRecord(d: DmaTrace, client: number, t: number): TraceDma {
  return { type: 'dma', t, client, from: 'server', op: d.op, iova: hex(d.iova), length: d.length };
}

/** A driver's naming hook must not break the trace: a throw is no name. */
function describe(device: VfioDevice, region: number, offset: number, count: number, write: boolean): string | undefined {
  try {
    return device.describeAccess(region, offset, count, write);
  } catch {
    return undefined;
  }
}

/** The request's fields worth reading, by command; what does not parse is said so. */
function decodeFields(m: MessageTrace, device: VfioDevice | undefined): Record<string, unknown> {
  const b = m.request;
  const has = (n: number) => b.length >= n;
  const regionName = (r: number) => device?.regionName(r) ?? `region${r}`;
  switch (m.cmd) {
    case Command.VERSION: {
      if (!has(Size.VERSION)) break;
      const json = b.length > Size.VERSION ? Buffer.from(b.subarray(Size.VERSION)).toString('utf8').replace(/\0+$/, '') : undefined;
      return { major: b[0]! | (b[1]! << 8), minor: b[2]! | (b[3]! << 8), ...(json ? { capabilities: json } : {}) };
    }
    case Command.DMA_MAP:
      if (!has(Size.DMA_MAP)) break;
      return { flags: u32(b, 4), offset: hex(u64(b, 8)), iova: hex(u64(b, 16)), size: hex(u64(b, 24)) };
    case Command.DMA_UNMAP:
      if (!has(Size.DMA_UNMAP)) break;
      return { flags: u32(b, 4), iova: hex(u64(b, 8)), size: hex(u64(b, 16)) };
    case Command.DEVICE_GET_REGION_INFO:
    case Command.DEVICE_GET_REGION_IO_FDS:
      if (!has(12)) break;
      return { index: u32(b, 8), regionName: regionName(u32(b, 8)) };
    case Command.DEVICE_GET_IRQ_INFO:
      if (!has(12)) break;
      return { index: u32(b, 8), irq: device?.irqName(u32(b, 8)) ?? `irq${u32(b, 8)}` };
    case Command.DEVICE_SET_IRQS:
      if (!has(Size.IRQ_SET)) break;
      return {
        action: flagName(u32(b, 4), IrqSetFlags.ACTION_TYPE_MASK, 'ACTION_'),
        data: flagName(u32(b, 4), IrqSetFlags.DATA_TYPE_MASK, 'DATA_'),
        irq: device?.irqName(u32(b, 8)) ?? `irq${u32(b, 8)}`,
        start: u32(b, 12),
        count: u32(b, 16),
      };
    case Command.REGION_READ:
    case Command.REGION_WRITE: {
      if (!has(Size.REGION_ACCESS)) break;
      const region = u32(b, 8);
      const fields: Record<string, unknown> = { region, regionName: regionName(region), offset: u64n(b, 0), count: u32(b, 12) };
      const data = m.cmd === Command.REGION_WRITE ? b.subarray(Size.REGION_ACCESS) : m.reply?.subarray(Size.REGION_ACCESS);
      if (data !== undefined && data.length > 0) fields.data = dataHex(data);
      return fields;
    }
    case Command.REGION_WRITE_MULTI:
      if (!has(Size.WRITE_MULTI_COUNT)) break;
      return { entries: u32(b, 0) };
    case Command.DEVICE_FEATURE:
      if (!has(Size.DEVICE_FEATURE)) break;
      return { argsz: u32(b, 0), flags: hex(BigInt(u32(b, 4))) };
    case Command.MIG_DATA_READ:
    case Command.MIG_DATA_WRITE:
      if (!has(8)) break;
      return { size: u32(b, 4) };
    default:
      return {};
  }
  return { malformed: `${b.length} bytes are too few for ${commandSpelling(m.cmd)}` };
}

/** `unmask` for the ACTION_UNMASK bit of `flags` within `mask`: the uapi's name, lower case. */
function flagName(flags: number, mask: number, prefix: string): string {
  const bits = flags & mask;
  const entry = Object.entries(IrqSetFlags).find(([k, v]) => k.startsWith(prefix) && !k.endsWith('_TYPE_MASK') && v === bits);
  return entry === undefined ? hex(bits) : entry[0].slice(prefix.length).toLowerCase();
}

function hex(n: bigint | number): string {
  return `0x${n.toString(16)}`;
}

/** Bytes in address order as hex, up to 64 of them (the payload has them all). */
function dataHex(data: Uint8Array): string {
  const shown = Buffer.from(data.buffer, data.byteOffset, Math.min(data.length, 64)).toString('hex');
  return data.length > 64 ? `${shown}…` : shown;
}
