/**
 * The interrupt eventfds one client handed to its device, by IRQ index,
 * action and sub-index. A device keeps the notifiers it is given and never
 * closes them (the core's EventNotifier rule); the connection does: when a
 * later SET_IRQS replaces or de-assigns a slot, when an index is disabled,
 * and all of them when the client goes. QEMU re-sends MSI-X eventfds each
 * time vectors change, so without this a long session would pile up fds.
 *
 * Every fd held counts against the client's `irq-fds` budget (inside the
 * daemon's `client-fds`), from adoption to close; the client's notifiers
 * share one NotifierGate, so that a client whose eventfds block is slowed
 * down as a whole (see eventfd-notifier.ts).
 */
import type { Budget } from '../base/budget.js';
import { VfioError } from '../base/errors.js';
import { closeFds, setNonblocking } from '../native/index.js';
import { EventfdNotifier, isEventfd, NotifierGate, type SignalObserver } from './eventfd-notifier.js';

export type Action = 'mask' | 'unmask' | 'trigger';

export interface IrqNotifiersOptions {
  /** Hears of every signal of a trigger notifier (the session's counters and trace). */
  onTrigger?: SignalObserver;
  /** What each held fd counts against; unbounded without. */
  budget?: Budget;
  /** Called once, the first time one of the client's eventfds is found full (to log it). */
  onFull?: () => void;
}

export class IrqNotifiers {
  readonly #slots = new Map<string, EventfdNotifier>();
  readonly #onTrigger: SignalObserver | null;
  readonly #budget: Budget | null;
  /** The client's interrupts as a whole. */
  readonly gate: NotifierGate;
  #closed = false;

  constructor(options: IrqNotifiersOptions = {}) {
    this.#onTrigger = options.onTrigger ?? null;
    this.#budget = options.budget ?? null;
    this.gate = new NotifierGate(options.onFull);
  }

  /** Notifiers held for the device. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Wraps received fds as notifiers (nonblocking from now on, as far as
   * this side can tell), taking ownership of every fd even when it throws:
   * EINVAL unless each is an eventfd, OverBudget (ENOSPC) past the budget,
   * and then all of them closed. `into` names the slots they are meant for:
   * the ones held there now are about to be replaced, so a client at its
   * limit can still replace its eventfds (QEMU re-sends MSI-X ones).
   */
  adopt(fds: readonly number[], into?: { index: number; action: Action; start: number }): EventfdNotifier[] {
    try {
      for (const fd of fds) {
        if (!isEventfd(fd)) throw new VfioError('EINVAL', 'VFIO_USER_DEVICE_SET_IRQS: a file descriptor passed is not an eventfd');
      }
      let replacing = 0;
      if (into !== undefined) {
        for (let i = 0; i < fds.length; i++) if (this.#slots.get(slot(into.index, into.action, into.start + i))?.closed === false) replacing++;
      }
      this.#budget?.take(fds.length, 'VFIO_USER_DEVICE_SET_IRQS: interrupt eventfds', replacing);
    } catch (err) {
      closeFds(fds);
      throw err;
    }
    return fds.map((fd) => {
      try {
        setNonblocking(fd, true);
      } catch {
        // An eventfd always takes the flag; signalling copes either way.
      }
      return new EventfdNotifier(fd, { gate: this.gate, ...(this.#budget === null ? {} : { budget: this.#budget }) });
    });
  }

  /**
   * The device accepted `values` for [start, start+values.length) of
   * index/action: what they replace is closed, null slots are emptied.
   * After closeAll() they are closed at once: a SET_IRQS the device
   * finished after its client went would otherwise keep them for good.
   */
  assigned(index: number, action: Action, start: number, values: readonly (EventfdNotifier | null)[]): void {
    if (this.#closed) {
      for (const n of values) n?.close();
      return;
    }
    for (let i = 0; i < values.length; i++) {
      const key = slot(index, action, start + i);
      const old = this.#slots.get(key);
      const now = values[i] ?? null;
      if (old !== undefined && old !== now) old.close();
      if (now === null) {
        this.#slots.delete(key);
      } else {
        if (action === 'trigger' && this.#onTrigger !== null) now.observe(this.#onTrigger, index, start + i);
        this.#slots.set(key, now);
      }
    }
  }

  /** The device disabled every interrupt of `index` (DATA_NONE|ACTION_TRIGGER, count 0). */
  disabled(index: number): void {
    const prefix = `${index}/trigger/`;
    for (const [key, n] of this.#slots) {
      if (key.startsWith(prefix)) {
        n.close();
        this.#slots.delete(key);
      }
    }
  }

  /** Closes every notifier (the client is gone), and any assigned later. */
  closeAll(): void {
    this.#closed = true;
    this.gate.close();
    for (const n of this.#slots.values()) n.close();
    this.#slots.clear();
  }
}

function slot(index: number, action: Action, sub: number): string {
  return `${index}/${action}/${sub}`;
}
