/**
 * Loads the C++ addon (native/, built by node-gyp into build/Release) and
 * teaches it to throw VfioError. Nothing else in uvfio touches the raw
 * addon; syscalls.ts and fd-watcher.ts give it types.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VfioError } from '../base/errors.js';

/** A uv_poll_t handle as the addon exposes it (see fd-watcher.ts). */
export interface NativeFdWatcher {
  /** The function given to the constructor. */
  readonly callback: FdWatcherCallback;
  /** Watches for `events` (READABLE | WRITABLE); 0 stops. EBADF once closed. */
  start(events: number): void;
  /** Stops watching; start() may follow. */
  stop(): void;
  /** Stops for good and frees the handle; idempotent; the fd stays open. */
  close(): void;
  /** Lets this watcher keep the process alive while active (the default). */
  ref(): void;
  /** Lets the process exit even while this watcher is active. */
  unref(): void;
  /** On each readable event, first reads up to `max` bytes into the read-ahead buffer for the callback; 0: none. */
  readAhead(max: number): void;
  /**
   * From the watcher's own callback only: runs the nextTicks and microtasks
   * left pending (unless `ranPending` is true: the caller has just run
   * them, with runPendingWork), then sleeps until the loop has work: one
   * of its fds ready (this one among them), a timer due, a signal. False
   * when that work is not this fd's bytes, and at once unless watching for
   * READABLE. The fd readable: with read-ahead on, the read-ahead's result
   * as the callback would get it (the byte count, or [count, fds or error]
   * when either came); with it off, true. The instance's own function (not
   * the prototype's): a copy of it stays safe to call after the watcher is
   * gone.
   *
   * With `answerReads` > 0 and answers set (answer()), up to that many
   * reads whose messages are all answerable region accesses are answered
   * in the native layer, the wait beginning again after each; a read that
   * ends in any other message gives that message and the rest to the
   * caller at the read-ahead buffer's start, as above. null: that many
   * reads were answered whole. After any call with answers on, the caller
   * reads the stats and sends the unsent bytes (takeUnsent) first.
   */
  linger(this: void, ranPending?: boolean, answerReads?: number): null | boolean | number | [received: number, extra: number[] | Error];
  /**
   * What the watcher may answer itself: REGION_READ and REGION_WRITE
   * requests (posted or not) of at most `maxCount` bytes wholly inside
   * `regions[index].read` / `.write`, plain memory the watcher keeps alive
   * until replaced: reads of any such size (the rest of a reply over 64 KiB
   * sent as the client reads it, for up to 1 ms, then left unsent), writes
   * of up to 64 KiB in its read, and larger ones whose head it reads alone
   * (their data received in place; see AnswerStat.LANDED). In lingers that allow it
   * (answerReads); with `eventReads` > 0 also at readable events, before
   * any call into JavaScript, while every cell of `blockers` (Int32Arrays
   * of the owner's) reads 0: up to that many reads answered whole, a linger
   * of the watcher's own included (skipped for a while after one found the
   * loop busy). The callback then runs only for what is left to it (a
   * count of -1, "nothing read", when only an unsent rest is). `stats`
   * (Float64Array, AnswerStat order) counts what was answered; the caller
   * zeroes what it has read. null: none.
   */
  answer(
    stats: Float64Array | null,
    maxCount?: number,
    regions?: ReadonlyArray<AnswerRegion | undefined>,
    blockers?: readonly Int32Array[],
    eventReads?: number,
  ): void;
  /** The rest of an answer's reply the kernel did not take: to be sent before anything else. Empty when none. */
  takeUnsent(): Uint8Array;
}

/** One region's plain memory, for FdWatcher.answer: reads are served from `read`, writes stored in `write`. */
export interface AnswerRegion {
  read: Uint8Array | null;
  write: Uint8Array | null;
}

/**
 * Indexes of FdWatcher.answer's stats: reads answered whole, requests and
 * their bytes, replies and theirs, unsent reply bytes, and the data of a
 * placed write that landed before the caller is given its head (LANDED,
 * with its region and offset: the caller's next read is that head; the
 * rest goes after it in place).
 */
export const AnswerStat = {
  READS: 0,
  MESSAGES_IN: 1,
  BYTES_IN: 2,
  REPLIES_OUT: 3,
  BYTES_OUT: 4,
  UNSENT: 5,
  LANDED: 6,
  LANDED_REGION: 7,
  LANDED_OFFSET: 8,
  COUNT: 9,
} as const;

/**
 * What a watcher reports: the events, and after a read-ahead the bytes it
 * read (0 at EOF, -1 when none) and the fds that came with them or the
 * error that stopped the read.
 */
export type FdWatcherCallback = (events: number, received?: number, extra?: number[] | Error) => void;

/** A client's memory mapped by mapClientMemory (an opaque N-API external). */
export interface ClientMemoryHandle {
  readonly __clientMemory: never;
}

/** Everything the addon exports, exactly as native/ defines it. */
export interface NativeAddon {
  setErrorFactory(make: (errno: number, sentence: string) => Error): void;
  listenUnix(path: string, backlog?: number): number;
  acceptUnix(listenFd: number): number;
  connectUnix(path: string): number;
  socketPair(): [number, number];
  setSendBufferSize(fd: number, size: number): number;
  peerCredentials(fd: number): [number, number, number];
  sendmsg(fd: number, data: ArrayBufferView, fds?: readonly number[]): number;
  sendmsg2(fd: number, head: ArrayBufferView, body: ArrayBufferView, fds?: readonly number[]): number;
  sendmsgWait(fd: number, head: ArrayBufferView, body: ArrayBufferView, budgetUs: number): number;
  recvmsgWait(fd: number, into: ArrayBufferView, budgetUs: number, fdsOut: number[]): number;
  recvmsg(fd: number, into: ArrayBufferView, fdsOut?: number[]): number;
  close(fd: number): void;
  dup(fd: number): number;
  eventfd(initval?: number, flags?: { nonblock?: boolean; semaphore?: boolean }): number;
  eventfdWrite(fd: number, value?: bigint | number): void;
  eventfdSignal(fd: number): 0 | 1 | 2;
  eventfdRead(fd: number): bigint | null;
  setNonblocking(fd: number, on: boolean): void;
  memfdCreate(name: string, size?: number): number;
  sealSize(fd: number): void;
  mmap(fd: number, offset: number, length: number, prot: { read: boolean; write: boolean }): ArrayBuffer;
  munmap(buffer: ArrayBuffer): void;
  memoryFdInfo(fd: number): [boolean, number, number, number, number, number];
  mapClientMemory(fd: number, offset: number, length: number, writable: boolean): ClientMemoryHandle;
  clientMemoryRead(handle: ClientMemoryHandle, offset: number, dest: ArrayBufferView): void;
  clientMemoryWrite(handle: ClientMemoryHandle, offset: number, src: ArrayBufferView): void;
  clientMemoryWindow(handle: ClientMemoryHandle, offset: number, length: number): ArrayBuffer;
  unmapClientMemory(handle: ClientMemoryHandle, windows: readonly ArrayBuffer[]): void;
  FdWatcher: new (fd: number, callback: FdWatcherCallback) => NativeFdWatcher;
  setReadAheadBuffer(owner: object, buffer: Uint8Array | null): void;
  notifyDatagram(path: string, message: ArrayBufferView): void;
  /** Absent from an addon built before it (see file-io.ts). */
  preadNoWait?(fd: number, dest: ArrayBufferView, position: number): number;
}

const ADDON_PATH = join('build', 'Release', 'uvfio_native.node');

/**
 * The repo root is the nearest ancestor holding the built addon: two levels
 * up from src/native, three from dist/src/native.
 */
function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, ADDON_PATH);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new VfioError('ENOENT', `the native addon ${ADDON_PATH} is not built; run npm install (it runs node-gyp rebuild)`);
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  const addon = require(findAddon()) as NativeAddon;
  // The sentence already names the syscall and strerror's text, so an errno
  // uvfio has no name for (mapped to EIO) still says what really happened.
  addon.setErrorFactory((errno, sentence) => VfioError.fromErrno(errno, sentence));
  return addon;
}

/** The loaded addon (one per thread: N-API gives each worker its own). */
export const addon: NativeAddon = load();
