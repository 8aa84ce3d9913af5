/**
 * `uvfio trace`'s human lines, one per event: time since the trace began
 * (seconds), the client, the direction (`>` client to device, `<` device
 * to client), then what happened.
 *
 *     0.012345 c3 > REGION_WRITE BAR0+0x3/1 port0 LCR = 0x80  ok 4.1us
 *     0.012400 c3 > REGION_READ config+0x4/2 COMMAND -> 0x0107  ok 2.0us
 *     0.013002 c3 < interrupt MSI[0]
 *     0.013100 c3 < DMA write 0x7f000/512
 */
import type { TraceEvent, TraceHeader, TraceMessage } from '../daemon/trace-record.js';

/** The line saying what is traced (for stderr). */
export function traceHeaderLine(h: TraceHeader): string {
  return `tracing ${h.uuid} (${h.parent}/${h.mdevType}) since ${h.startedAt}; Ctrl-C ends`;
}

/** One event as a line, without its newline. */
export function traceLine(e: TraceEvent): string {
  const t = (e.t / 1000).toFixed(6).padStart(11);
  switch (e.type) {
    case 'message':
      return `${t} c${e.client} > ${messageText(e)}`;
    case 'interrupt':
      return `${t} c${e.client} < interrupt ${e.irq}[${e.vector}]`;
    case 'session': {
      const what =
        e.event === 'opened'
          ? `connected (pid ${e.pid}, uid ${e.uid})`
          : e.event === 'bound'
            ? 'VERSION done: bound to the device'
            : `gone: ${e.reason}`;
      return `${t} c${e.client} ${what}`;
    }
    case 'dma':
      return `${t} c${e.client} < DMA ${e.op} ${e.iova}/${e.length}`;
    case 'dropped':
      return `${t} -- ${e.count} event${e.count === 1 ? '' : 's'} dropped: this reader fell behind`;
  }
}

function messageText(m: TraceMessage): string {
  const f = m.fields;
  const parts = [m.cmd];
  if ((m.cmd === 'REGION_READ' || m.cmd === 'REGION_WRITE') && typeof f.offset === 'number') {
    parts.push(`${String(f.regionName)}+0x${f.offset.toString(16)}/${String(f.count)}`);
    if (m.register !== undefined) parts.push(m.register);
    if (typeof f.data === 'string') parts.push(`${m.cmd === 'REGION_WRITE' ? '=' : '->'} ${valueText(f.data)}`);
  } else {
    for (const [k, v] of Object.entries(f)) parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    if (m.fds > 0) parts.push(`fds=${m.fds}`);
  }
  const outcome = m.errno === 0 ? 'ok' : (m.error ?? `errno ${m.errno}`);
  return `${parts.join(' ')}  ${m.posted ? 'posted ' : ''}${outcome} ${m.latencyUs}us`;
}

/** Hex bytes in address order: a 1, 2, 4 or 8-byte one as its little-endian value, the rest as bytes. */
function valueText(hex: string): string {
  const n = hex.length / 2;
  if (![1, 2, 4, 8].includes(n)) return hex;
  const bytes = hex.match(/../g)!;
  return `0x${bytes.reverse().join('')}`;
}
