/**
 * EventFd: an eventfd as an object. vfio-user interrupts are eventfds the
 * client passes in (SET_IRQS): the server adopts and signals them.
 */
import { FdWatcher, READABLE } from './fd-watcher.js';
import { close, eventfd, eventfdRead, eventfdWrite } from './syscalls.js';

export class EventFd {
  /** The eventfd (owned by this object). */
  readonly fd: number;
  #watcher: FdWatcher | undefined;
  #closed = false;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** A new nonblocking eventfd; `semaphore` makes each read take 1. */
  static create(initval = 0, options: { semaphore?: boolean } = {}): EventFd {
    return new EventFd(eventfd(initval, { nonblock: true, semaphore: options.semaphore ?? false }));
  }

  /**
   * Takes ownership of an eventfd received from a peer. onSignal() makes it
   * nonblocking; until then read() may block if it is not.
   */
  static adopt(fd: number): EventFd {
    return new EventFd(fd);
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Adds `value` (default 1) to the counter, waking whoever waits on it. */
  signal(value: bigint | number = 1): void {
    eventfdWrite(this.fd, value);
  }

  /** Takes the counter (1 in semaphore mode); null when it is 0. */
  read(): bigint | null {
    return eventfdRead(this.fd);
  }

  /**
   * Calls `handler` with the counter, taken, each time it becomes non-zero;
   * null stops listening. The watcher keeps the process alive while set.
   */
  onSignal(handler: ((count: bigint) => void) | null): void {
    if (handler === null) {
      this.#watcher?.stop();
      return;
    }
    this.#watcher?.close();
    this.#watcher = new FdWatcher(this.fd, () => {
      const count = eventfdRead(this.fd);
      if (count !== null) handler(count);
    });
    this.#watcher.start(READABLE);
  }

  /** Stops listening and closes the fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    close(this.fd);
  }
}
