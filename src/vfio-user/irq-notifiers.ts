/**
 * The interrupt eventfds one client handed to its device, by IRQ index,
 * action and sub-index. A device keeps the notifiers it is given and never
 * closes them (the core's EventNotifier rule); the connection does: when a
 * later SET_IRQS replaces or de-assigns a slot, when an index is disabled,
 * and all of them when the client goes. QEMU re-sends MSI-X eventfds each
 * time vectors change, so without this a long session would pile up fds.
 */
import { VfioError } from '../base/errors.js';
import { closeFds } from '../native/index.js';
import { EventfdNotifier, isEventfd, type SignalObserver } from './eventfd-notifier.js';

type Action = 'mask' | 'unmask' | 'trigger';

export class IrqNotifiers {
  readonly #slots = new Map<string, EventfdNotifier>();
  readonly #onTrigger: SignalObserver | null;
  #closed = false;

  /** `onTrigger` hears of every signal of a trigger notifier (the session's counters and trace). */
  constructor(onTrigger?: SignalObserver) {
    this.#onTrigger = onTrigger ?? null;
  }

  /** Notifiers held for the device. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Wraps received fds as notifiers, taking ownership of every fd even when
   * it throws: EINVAL (and all of them closed) unless each is an eventfd.
   */
  adopt(fds: readonly number[]): EventfdNotifier[] {
    for (const fd of fds) {
      if (!isEventfd(fd)) {
        closeFds(fds);
        throw new VfioError('EINVAL', 'VFIO_USER_DEVICE_SET_IRQS: a file descriptor passed is not an eventfd');
      }
    }
    return fds.map((fd) => new EventfdNotifier(fd));
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
    for (const n of this.#slots.values()) n.close();
    this.#slots.clear();
  }
}

function slot(index: number, action: Action, sub: number): string {
  return `${index}/${action}/${sub}`;
}
