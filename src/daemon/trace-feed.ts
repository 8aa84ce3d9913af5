/**
 * The daemon's side of `uvfio trace`: taps on the vfio-user server's trace
 * channels (trace.ts) and the DMA channel (dma-trace.ts), one per reader,
 * each fed the events of one device as trace lines. The channels are subscribed only while a tap is open, so
 * a daemon nobody traces builds no trace object and names no register.
 *
 * Bounded: a reader that does not keep up must not grow the daemon. Each
 * tap asks its sink how many bytes still wait to be sent; past
 * TRACE_BACKLOG_BYTES it drops events (counting them) and, once the
 * reader caught up, says how many with a `dropped` line. At most
 * MAX_TRACES taps are open at once (EUSERS past it).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { VfioError } from '../base/errors.js';
import type { VfioCore } from '../core/vfio-core.js';
import { DMA_CHANNEL, type DmaTrace } from '../iommufd/dma-trace.js';
import {
  INTERRUPT_CHANNEL,
  MESSAGE_CHANNEL,
  SESSION_CHANNEL,
  type DmaOwner,
  type InterruptTrace,
  type MessageTrace,
  type SessionTrace,
} from '../vfio-user/trace.js';
import { dmaRecord, interruptRecord, messageRecord, sessionRecord, type TraceEvent } from './trace-record.js';

/** Bytes of trace lines one reader may leave unread in the daemon before events are dropped. */
export const TRACE_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Traces open at once, over all devices. */
export const MAX_TRACES = 8;

/** Where a tap's lines go. */
export interface TraceSink {
  /** Sends one event. */
  emit(event: TraceEvent): void;
  /** Bytes sent and not yet taken by the reader. */
  backlog(): number;
}

/** One reader's tap on one device. */
export interface TraceTap {
  /** Events sent so far. */
  readonly events: number;
  /** Events dropped so far (the reader fell behind). */
  readonly dropped: number;
  /** Detaches; idempotent. */
  close(): void;
}

interface Tap extends TraceTap {
  device: string;
  start: number;
  events: number;
  dropped: number;
  /** Dropped since the last `dropped` line. */
  unsaid: number;
  sink: TraceSink;
}

export class TraceFeed {
  readonly #core: VfioCore;
  readonly #taps = new Set<Tap>();
  readonly #onMessage = (m: unknown) =>
    this.#each((m as MessageTrace).device, (tap, t) => messageRecord(m as MessageTrace, t, this.#core.device(tap.device)));
  readonly #onSession = (s: unknown) => this.#each((s as SessionTrace).device, (_tap, t) => sessionRecord(s as SessionTrace, t));
  readonly #onInterrupt = (i: unknown) =>
    this.#each((i as InterruptTrace).device, (tap, t) => interruptRecord(i as InterruptTrace, t, this.#core.device(tap.device)));

  readonly #onDma = (d: unknown) => {
    const owner = (d as DmaTrace).owner as DmaOwner | undefined;
    if (owner?.device !== undefined) this.#each(owner.device, (_tap, t) => dmaRecord(d as DmaTrace, owner.client, t));
  };

  constructor(core: VfioCore) {
    this.#core = core;
  }

  /** Taps open now. */
  get open(): number {
    return this.#taps.size;
  }

  /** Starts feeding `sink` the events of device `name`; `start` (performance.now()) is their time 0. */
  tap(name: string, sink: TraceSink, start = performance.now()): TraceTap {
    if (this.#taps.size >= MAX_TRACES) {
      throw new VfioError('EUSERS', `${MAX_TRACES} traces are running already; stop one first`);
    }
    const tap: Tap = {
      device: name,
      start,
      events: 0,
      dropped: 0,
      unsaid: 0,
      sink,
      close: () => {
        if (!this.#taps.delete(tap) || this.#taps.size > 0) return;
        unsubscribe(MESSAGE_CHANNEL, this.#onMessage);
        unsubscribe(SESSION_CHANNEL, this.#onSession);
        unsubscribe(INTERRUPT_CHANNEL, this.#onInterrupt);
        unsubscribe(DMA_CHANNEL, this.#onDma);
      },
    };
    if (this.#taps.size === 0) {
      subscribe(MESSAGE_CHANNEL, this.#onMessage);
      subscribe(SESSION_CHANNEL, this.#onSession);
      subscribe(INTERRUPT_CHANNEL, this.#onInterrupt);
      subscribe(DMA_CHANNEL, this.#onDma);
    }
    this.#taps.add(tap);
    return tap;
  }

  /** Sends each tap of `device` its record of one event, or counts it dropped. */
  #each(device: string, record: (tap: Tap, t: number) => TraceEvent): void {
    for (const tap of this.#taps) {
      if (tap.device !== device) continue;
      const t = Math.round((performance.now() - tap.start) * 1000) / 1000;
      if (tap.sink.backlog() > TRACE_BACKLOG_BYTES) {
        tap.dropped++;
        tap.unsaid++;
        continue;
      }
      if (tap.unsaid > 0) {
        tap.sink.emit({ type: 'dropped', t, count: tap.unsaid });
        tap.unsaid = 0;
      }
      tap.sink.emit(record(tap, t));
      tap.events++;
    }
  }
}
