/**
 * An interrupt doorbell a client passed in VFIO_USER_DEVICE_SET_IRQS: the
 * core's EventNotifier over an eventfd this process now owns. Signalling
 * adds 1 to the counter; closing closes the fd exactly once, after which a
 * device still holding the notifier signals nothing (never a reused fd).
 *
 * The client shares the eventfd's file description: it can fill the
 * counter (to 2^64 - 2) and clear O_NONBLOCK whenever it likes, racing us.
 * Signalling never blocks the event loop for all that (native
 * eventfdSignal: a write still blocked after a couple of milliseconds is
 * cut short). What becomes of such an interrupt:
 *  - counter full, fd nonblocking: coalesced. The count is already far
 *    above 0, so the reader has a wakeup pending that this one would only
 *    have added to; it is counted in `coalesced`.
 *  - counter full, fd made blocking again (a write had to be cut short,
 *    which costs the event loop that long): coalesced too, and every
 *    interrupt of that client is then deferred for a while (50 ms, doubling
 *    up to 5 s while it keeps happening): each notifier signalled meanwhile,
 *    and the one cut short (its write never reached the counter), is
 *    signalled once when the while ends. So a client can cost the loop
 *    at most one cut-short write per while, however many eventfds it has.
 */
import { readlinkSync } from 'node:fs';
import type { Budget } from '../base/budget.js';
import type { EventNotifier } from '../base/uapi.js';
import { closeFds, eventfdSignal, EventfdSignal } from '../native/index.js';

/**
 * True when `fd` is an eventfd. Signalling writes to the fd synchronously:
 * a client passing a pipe instead could make that write block for good.
 */
export function isEventfd(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]';
  } catch {
    return false;
  }
}

/** How long a client's interrupts are deferred after its eventfd blocked a write, at first and at most. */
export const DEFER_MIN_MS = 50;
export const DEFER_MAX_MS = 5_000;

/**
 * One client's interrupts as a whole: deferred for a while once one of its
 * eventfds blocked a write (see the file comment).
 */
export class NotifierGate {
  readonly #deferred = new Set<EventfdNotifier>();
  #timer: NodeJS.Timeout | undefined;
  #windowMs = 0;
  #closed = false;
  /** Called the first time this client's counter is found full (to log it). */
  readonly #onFull: (() => void) | undefined;
  #toldFull = false;

  constructor(onFull?: () => void) {
    this.#onFull = onFull;
  }

  /** True while the client's interrupts are deferred. */
  get deferring(): boolean {
    return this.#timer !== undefined;
  }

  /** Current deferral window in ms (0 when none has happened yet). */
  get windowMs(): number {
    return this.#windowMs;
  }

  /** Stops deferring for good (the client is gone). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deferred.clear();
  }

  /** @internal A notifier found the counter full. */
  full(): void {
    if (this.#toldFull) return;
    this.#toldFull = true;
    this.#onFull?.();
  }

  /** @internal A notifier's write had to be cut short: defer for a (longer) while. */
  blocked(): void {
    this.full();
    if (this.#closed) return;
    this.#windowMs = Math.min(DEFER_MAX_MS, Math.max(DEFER_MIN_MS, this.#windowMs * 2));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#flush(), this.#windowMs);
    this.#timer.unref();
  }

  /** @internal Signal `n` when the while ends. */
  defer(n: EventfdNotifier): void {
    this.#deferred.add(n);
  }

  #flush(): void {
    this.#timer = undefined;
    const due = [...this.#deferred];
    this.#deferred.clear();
    for (let i = 0; i < due.length; i++) {
      due[i]!.deliver();
      // It blocked again: the rest wait for the next, longer while.
      if (this.deferring) {
        for (let j = i + 1; j < due.length; j++) this.#deferred.add(due[j]!);
        return;
      }
    }
    // A quiet while: the next one starts shorter.
    this.#windowMs = Math.floor(this.#windowMs / 2);
  }
}

/** Told of every signal of a notifier it watches: its IRQ index and vector. */
export type SignalObserver = (index: number, vector: number) => void;

export class EventfdNotifier implements EventNotifier {
  #fd: number;
  readonly #gate: NotifierGate | null;
  readonly #budget: Budget | null;
  #observer: SignalObserver | null = null;
  #index = -1;
  #vector = -1;
  /** Signals that found the client's counter full (see the file comment). */
  coalesced = 0;

  /**
   * Takes ownership of `fd`. With a gate, the client's interrupts are
   * deferred together after one blocks; with a budget, close() gives back
   * the one fd this notifier was counted as.
   */
  constructor(fd: number, options: { gate?: NotifierGate; budget?: Budget } = {}) {
    this.#fd = fd;
    this.#gate = options.gate ?? null;
    this.#budget = options.budget ?? null;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The eventfd, still this notifier's (a takeover sends duplicates on); -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** From now on, each signal() tells `observer` (counters, tracing) it was vector `vector` of `index`. */
  observe(observer: SignalObserver, index: number, vector: number): void {
    this.#observer = observer;
    this.#index = index;
    this.#vector = vector;
  }

  signal(): void {
    if (this.#fd < 0) return;
    if (this.#observer !== null) this.#observer(this.#index, this.#vector);
    if (this.#gate?.deferring === true) {
      this.coalesced++;
      this.#gate.defer(this);
      return;
    }
    this.deliver();
  }

  /** @internal One write to the eventfd, whatever the gate says. */
  deliver(): void {
    if (this.#fd < 0) return;
    let r: EventfdSignal;
    try {
      r = eventfdSignal(this.#fd);
    } catch {
      // EINVAL (not an eventfd after all) or the like: it may not hurt the device.
      return;
    }
    if (r === EventfdSignal.DELIVERED) return;
    this.coalesced++;
    if (r === EventfdSignal.BLOCKED) {
      this.#gate?.blocked();
      // A write cut short never reached the counter: signalled again when the while ends.
      this.#gate?.defer(this);
    } else {
      this.#gate?.full();
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    closeFds([fd]);
    this.#budget?.release(1);
  }
}
