/**
 * An interrupt doorbell a client passed in VFIO_USER_DEVICE_SET_IRQS: the
 * core's EventNotifier over an eventfd this process now owns. Signalling
 * writes 8 bytes to it; closing closes the fd exactly once, after which a
 * device still holding the notifier signals nothing (never a reused fd).
 */
import { readlinkSync } from 'node:fs';
import type { EventNotifier } from '../base/uapi.js';
import { closeFds, eventfdWrite } from '../native/index.js';

/**
 * True when `fd` is an eventfd. Signalling writes to the fd synchronously:
 * a client passing a full blocking pipe instead would stall the server.
 */
export function isEventfd(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]';
  } catch {
    return false;
  }
}

/** Told of every signal of a notifier it watches: its IRQ index and vector. */
export type SignalObserver = (index: number, vector: number) => void;

export class EventfdNotifier implements EventNotifier {
  #fd: number;
  #observer: SignalObserver | null = null;
  #index = -1;
  #vector = -1;

  /** Takes ownership of `fd`. */
  constructor(fd: number) {
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** From now on, each signal() tells `observer` (counters, tracing) it was vector `vector` of `index`. */
  observe(observer: SignalObserver, index: number, vector: number): void {
    this.#observer = observer;
    this.#index = index;
    this.#vector = vector;
  }

  signal(): void {
    if (this.#fd < 0) return;
    try {
      eventfdWrite(this.#fd, 1);
    } catch {
      // EAGAIN: the counter is full, the client has not read it for 2^64
      // signals; EINVAL: not an eventfd after all. Neither may hurt the device.
    }
    if (this.#observer !== null) this.#observer(this.#index, this.#vector);
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    closeFds([fd]);
  }
}
