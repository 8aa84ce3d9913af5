/**
 * `uvfio replay`: a recorded trace (`uvfio trace --json`) sent again, in
 * order, to a fresh device of the same type made in this process (its
 * parent's driver, the mdev bus, the vfio-user server on a socket in a
 * temporary directory), each recorded client over a socket of its own;
 * every reply compared with the recorded one until the first that
 * differs. A bug report is a file.
 *
 * What is compared: each command's errno, and its reply's bytes (or their
 * SHA-256, for replies recorded by digest). Posted commands (NO_REPLY)
 * have no reply to compare. A recorded client's end closes its socket at
 * the same point, so close_device runs where it ran.
 *
 * What is not, and why:
 * - fds are not in a trace. Replay makes its own: a fresh eventfd for each
 *   one a DEVICE_SET_IRQS carried, a fresh sealed memfd of the mapping's
 *   size for a DMA_MAP's (its file offset made 0). The client's memory is
 *   therefore zeros: what a device reads by DMA is not what it read then.
 * - Interrupts: when the device raised them depends on timing and on
 *   what the guest did meanwhile; replay counts those it sees on its
 *   eventfds and reports both numbers, but does not compare them.
 * - DMA the device does by DMA_READ/DMA_WRITE messages is answered with
 *   zeros (reads) and accepted (writes), not compared.
 * - A request recorded by digest only (over 64 KiB) cannot be sent
 *   again: replay stops there and says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VfioError, errnoName } from '../base/errors.js';
import { VfioCore } from '../core/vfio-core.js';
import { MdevBus, type MdevType } from '../mdev/index.js';
import { EventFd, closeFds, memfdCreate, sealSize } from '../native/index.js';
import { ClientChannel } from '../vfio-user/client/channel.js';
import type { Frame } from '../vfio-user/framer.js';
import { HEADER_SIZE, hasErrorFlag, writeHeader } from '../vfio-user/header.js';
import { Command, HeaderFlags, maxMessageSizeFor } from '../vfio-user/protocol.js';
import { VfioUserServer } from '../vfio-user/server.js';
import { SocketTransport } from '../vfio-user/transport/socket-transport.js';
import { UnixSocket } from '../vfio-user/transport/unix-socket.js';
import { u32 } from '../vfio-user/buffer-reader.js';
import { attrsToRecord } from './definition.js';
import { builtinParents } from './parents.js';
import { TRACE_FORMAT, payloadBytes, payloadMatches, type TraceHeader, type TraceLine, type TraceMessage } from './trace-record.js';

/** The first reply that is not what was recorded. */
export interface ReplayDifference {
  /** 1-based, among the trace's messages */
  index: number;
  /** 1-based line of the trace file */
  line: number;
  client: number;
  cmd: string;
  register?: string;
  expected: string;
  got: string;
}

export interface ReplayResult {
  /** `parent/type` of the device replayed against */
  device: string;
  /** messages sent */
  messages: number;
  /** replies compared (and equal, up to `difference`) */
  replies: number;
  difference?: ReplayDifference;
  /** Interrupts in the trace, and those the fresh device raised on replay's eventfds. */
  interrupts: { recorded: number; raised: number };
  /** What replay changed or could not do, one sentence each. */
  notes: string[];
}

/** Replies larger than this are not awaited longer: a device that stalls is a difference too. */
const REPLY_TIMEOUT_MS = 10_000;
/** The largest request a trace can hold whole, with room for the header. */
const MAX_MESSAGE = maxMessageSizeFor(1024 * 1024);

/** Parses a trace file's text: one JSON object per line, the header first. */
export function parseTrace(text: string, source: string): { header: TraceHeader; lines: Array<{ line: number; event: TraceLine }> } {
  const lines: Array<{ line: number; event: TraceLine }> = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let event: TraceLine;
    try {
      event = JSON.parse(raw) as TraceLine;
    } catch {
      throw new VfioError('EINVAL', `${source}:${i + 1}: not a JSON line (record the trace with "uvfio trace --json")`);
    }
    if (event === null || typeof event !== 'object' || typeof event.type !== 'string') {
      throw new VfioError('EINVAL', `${source}:${i + 1}: not a trace event`);
    }
    lines.push({ line: i + 1, event });
  });
  const first = lines[0]?.event;
  if (first?.type !== 'trace') throw new VfioError('EINVAL', `${source}: the first line is not a trace header (record it with "uvfio trace --json")`);
  if (first.format !== TRACE_FORMAT)
    throw new VfioError('EINVAL', `${source}: trace format ${String(first.format)}, this uvfio reads ${TRACE_FORMAT}`);
  return { header: first, lines: lines.slice(1) };
}

/** One recorded client, replayed over its own socket. */
interface Peer {
  channel: ClientChannel;
  /** eventfds made for its SET_IRQS */
  irqs: EventFd[];
}

/**
 * Replays `lines` (after `header`) against a fresh device of the header's
 * type, or of `typeId` (a type of the header's parent, else of any).
 */
export async function replayTrace(header: TraceHeader, lines: Array<{ line: number; event: TraceLine }>, typeId?: string): Promise<ReplayResult> {
  const notes: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'uvfio-replay-'));
  const core = new VfioCore({ requestBackoffMs: () => 20 });
  const server = new VfioUserServer({ core, socketDir: dir, follow: false });
  const bus = new MdevBus({ core, serve: (d) => server.serve(d) });
  const peers = new Map<number, Peer>();
  let raised = 0;
  try {
    const type = findType(bus, header, typeId ?? header.mdevType);
    const device = `${type.parent.name}/${type.id}`;
    if (typeId !== undefined && device !== `${header.parent}/${header.mdevType}`)
      notes.push(`replayed against ${device}, recorded on ${header.parent}/${header.mdevType}`);
    const mdev = await bus.create(header.uuid, type, attrsToRecord(header.attrs, header.uuid));
    const socket = server.socketPath(mdev.uuid)!;
    const result: ReplayResult = { device, messages: 0, replies: 0, interrupts: { recorded: 0, raised: 0 }, notes };
    let index = 0;
    for (const { line, event } of lines) {
      if (event.type === 'interrupt') result.interrupts.recorded++;
      if (event.type === 'session' && event.event === 'closed') {
        const peer = peers.get(event.client);
        if (peer !== undefined) await hangUp(peer);
        peers.delete(event.client);
      }
      if (event.type !== 'message') continue;
      index++;
      const request = payloadBytes(event.request);
      if (request === undefined) {
        notes.push(`message ${index} (line ${line}, ${event.cmd}) was recorded by digest only (${event.request.size} bytes): replay stops there`);
        break;
      }
      let peer = peers.get(event.client);
      if (peer === undefined) {
        peer = { channel: await connect(socket), irqs: [] };
        peers.set(event.client, peer);
        if (event.cmdId !== Command.VERSION) {
          notes.push(`client ${event.client} was traced after its VERSION: replay negotiated the defaults for it`);
          await negotiate(peer.channel);
        }
      }
      const { body, fds, sentOnly } = prepare(event, request, peer, () => raised++, notes);
      const message = new Uint8Array(HEADER_SIZE + body.length);
      writeHeader(message, 0, event.msgId, event.cmdId, message.length, event.flags & (HeaderFlags.NO_REPLY | HeaderFlags.TYPE_MASK));
      message.set(body, HEADER_SIZE);
      result.messages++;
      if (event.posted) {
        try {
          peer.channel.send(message, fds);
        } finally {
          closeFds(sentOnly);
        }
        continue;
      }
      let reply: Frame;
      try {
        reply = await peer.channel.request(message, fds);
      } catch (err) {
        result.difference = differenceAt(index, line, event, describeRecorded(event), `no reply: ${(err as Error).message}`);
        break;
      } finally {
        closeFds(sentOnly);
      }
      closeFds(reply.fds);
      const got = replyText(reply, event);
      const errno = hasErrorFlag(reply.flags) ? reply.errorNo : 0;
      if (errno !== event.errno || (errno === 0 && event.reply !== undefined && !payloadMatches(event.reply, reply.body))) {
        result.difference = differenceAt(index, line, event, describeRecorded(event), got);
        break;
      }
      result.replies++;
    }
    // Interrupts the last commands raised arrive on the eventfds a moment later.
    await new Promise((resolve) => setTimeout(resolve, 50));
    result.interrupts.raised = raised;
    return result;
  } finally {
    for (const peer of peers.values()) await hangUp(peer);
    await server.close();
    for (const m of bus.devices()) await bus.remove(m.uuid).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

function findType(bus: MdevBus, header: TraceHeader, id: string): MdevType {
  const parents = builtinParents();
  const own = parents.find((p) => p.name === header.parent);
  if (own === undefined) throw new VfioError('ENODEV', `the trace's device is of parent ${header.parent}, which this uvfio does not have`);
  const order = [own, ...parents.filter((p) => p !== own)];
  for (const p of order) {
    const parent = bus.registerParent(p);
    const type = parent.type(id);
    if (type !== undefined) return type;
  }
  throw new VfioError('ENOENT', `no parent has a type ${JSON.stringify(id)}`);
}

async function connect(path: string): Promise<ClientChannel> {
  const transport = new SocketTransport(UnixSocket.connect(path), { maxMessageSize: MAX_MESSAGE });
  const channel = new ClientChannel(transport, { timeoutMs: REPLY_TIMEOUT_MS });
  // The device's DMA by message: reads get zeros, writes are taken (see the file's comment).
  channel.onCommand = (frame) => {
    closeFds(frame.fds);
    const isRead = frame.cmd === Command.DMA_READ;
    const count = frame.body.length >= 16 ? u32(frame.body, 8) : 0;
    const body = new Uint8Array(16 + (isRead ? count : 0));
    body.set(frame.body.subarray(0, Math.min(16, frame.body.length)));
    const reply = new Uint8Array(HEADER_SIZE + body.length);
    writeHeader(reply, 0, frame.msgId, frame.cmd, reply.length, HeaderFlags.TYPE_REPLY);
    reply.set(body, HEADER_SIZE);
    try {
      channel.send(reply);
    } catch {
      // the connection is going: its pending request fails and says so
    }
  };
  return channel;
}

/** VERSION 0.1 with no capabilities: the protocol's defaults. */
async function negotiate(channel: ClientChannel): Promise<void> {
  const message = new Uint8Array(HEADER_SIZE + 4);
  writeHeader(message, 0, 0xffff, Command.VERSION, message.length, 0);
  message.set([0, 0, 1, 0], HEADER_SIZE);
  const reply = await channel.request(message);
  closeFds(reply.fds);
  if (hasErrorFlag(reply.flags)) throw new VfioError('EPROTO', `the fresh device refused a default VERSION (errno ${reply.errorNo})`);
}

/**
 * The request's body and the fds replay makes for it (see the file's
 * comment); `sentOnly`: those to close once sent (the eventfds are kept).
 */
function prepare(
  event: TraceMessage,
  request: Uint8Array,
  peer: Peer,
  onSignal: () => void,
  notes: string[],
): { body: Uint8Array; fds: number[]; sentOnly: number[] } {
  if (event.fds === 0) return { body: request, fds: [], sentOnly: [] };
  if (event.cmdId === Command.DEVICE_SET_IRQS) {
    const fds: number[] = [];
    for (let i = 0; i < event.fds; i++) {
      const e = EventFd.create();
      e.onSignal(() => onSignal());
      peer.irqs.push(e);
      fds.push(e.fd);
    }
    return { body: request, fds, sentOnly: [] };
  }
  if (event.cmdId === Command.DMA_MAP && request.length >= 32) {
    const size = Number(u32(request, 24)) + u32(request, 28) * 0x1_0000_0000;
    const body = request.slice();
    body.fill(0, 8, 16); // the file offset: the fresh memfd starts at the mapping
    const fd = memfdCreate('uvfio-replay-dma', size);
    sealSize(fd);
    if (!notes.some((n) => n.startsWith('DMA_MAP'))) notes.push('DMA_MAP: the client memory is fresh zeroed memory, not what the guest had');
    return { body, fds: [fd], sentOnly: [fd] };
  }
  notes.push(`${event.cmd} carried ${event.fds} fds, which a trace cannot hold: sent without them`);
  return { body: request, fds: [], sentOnly: [] };
}

async function hangUp(peer: Peer): Promise<void> {
  peer.channel.close();
  for (const e of peer.irqs) {
    e.onSignal(null);
    e.close();
  }
  peer.irqs = [];
  // Teardown of the session in the server runs on its own turn.
  await new Promise((resolve) => setImmediate(resolve));
}

function differenceAt(index: number, line: number, event: TraceMessage, expected: string, got: string): ReplayDifference {
  return { index, line, client: event.client, cmd: event.cmd, ...(event.register === undefined ? {} : { register: event.register }), expected, got };
}

function describeRecorded(event: TraceMessage): string {
  if (event.errno !== 0) return `error ${event.error ?? `errno ${event.errno}`}`;
  if (event.reply === undefined) return 'no reply';
  const bytes = payloadBytes(event.reply);
  return bytes === undefined ? `${event.reply.size} bytes, sha256 ${event.reply.sha256}` : bodyText(bytes, event.cmdId);
}

function replyText(reply: Frame, event: TraceMessage): string {
  if (hasErrorFlag(reply.flags)) return `error ${errnoName(reply.errorNo) ?? `errno ${reply.errorNo}`}`;
  return bodyText(reply.body, event.cmdId);
}

/** A reply body for a person: a region read's data, else the bytes (the first 64) in hex. */
function bodyText(body: Uint8Array, cmd: number): string {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, 64)).toString('hex') + (b.length > 64 ? '…' : '');
  if (cmd === Command.REGION_READ && body.length >= 16) return `data ${hex(body.subarray(16))}`;
  return `${body.length} bytes ${hex(body)}`;
}
