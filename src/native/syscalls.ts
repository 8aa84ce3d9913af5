/**
 * The thin, synchronous system calls of the addon, typed. They are the
 * addon's own functions (no JS wrapper), so the hot path pays one N-API
 * call each. Every failure throws VfioError naming the syscall; "try
 * again later" is a return value (-1 or null), never an exception.
 */
import { addon, type ClientMemoryHandle } from './addon.js';

/**
 * A listening UNIX stream socket at `path` (nonblocking, CLOEXEC, mode
 * 0600). Throws EADDRINUSE when the path exists; UnixServer.listen adds
 * stale-socket handling on top.
 */
export const listenUnix: (path: string, backlog?: number) => number = addon.listenUnix;

/** Accepts one connection (nonblocking, CLOEXEC); -1 when none is waiting. */
export const acceptUnix: (listenFd: number) => number = addon.acceptUnix;

/**
 * A connected nonblocking CLOEXEC socket. The connect itself never blocks:
 * a listener whose backlog is full yields EAGAIN, nobody listening
 * ECONNREFUSED, no such file ENOENT.
 */
export const connectUnix: (path: string) => number = addon.connectUnix;

/**
 * A connected pair of nonblocking CLOEXEC UNIX stream sockets (vfio-user's
 * twin socket: the server keeps one end and sends the other).
 */
export const socketPair: () => [number, number] = addon.socketPair;

/**
 * Sets SO_SNDBUF of a socket and returns the size in effect (Linux doubles
 * the request and caps it at twice net.core.wmem_max).
 */
export const setSendBufferSize: (fd: number, size: number) => number = addon.setSendBufferSize;

/**
 * [pid, uid, gid] of the process at the other end of a connected UNIX
 * socket (SO_PEERCRED), as they were when it connected. The pid is 0 when
 * the peer lives in a pid namespace this process cannot see into.
 */
export const peerCredentials: (fd: number) => [pid: number, uid: number, gid: number] = addon.peerCredentials;

/**
 * Sends `data` (MSG_NOSIGNAL); returns the bytes sent, which may be fewer
 * than asked, or -1 when the socket is full. `fds` (at most 253) travel with
 * the first byte and stay owned by the caller; they need at least one byte.
 */
export const sendmsg: (fd: number, data: ArrayBufferView, fds?: readonly number[]) => number = addon.sendmsg;

/** sendmsg of `head` then `body` in one call (two iovecs, no concatenation). */
export const sendmsg2: (fd: number, head: ArrayBufferView, body: ArrayBufferView, fds?: readonly number[]) => number = addon.sendmsg2;

/**
 * sendmsg of `head` then `body` as a blocking sendmsg sends them: the
 * kernel hands each piece over as the peer reads the one before, which
 * for a large write costs less than a send buffer that holds it all or a
 * poll per piece. The fd is blocking only for the call, which sends in
 * 256 KiB pieces and starts none once `budgetUs` microseconds are spent:
 * it holds the thread for the budget, plus the time the peer takes to
 * read the piece under way while it keeps reading, plus a scheduler tick.
 * Returns the bytes sent, fewer once the budget ran out, or -1 when none
 * went. No fds: they went with the first part of the write.
 */
export const sendmsgWait: (fd: number, head: ArrayBufferView, body: ArrayBufferView, budgetUs: number) => number = addon.sendmsgWait;

/**
 * Fills `into` as a blocking recvmsg with MSG_WAITALL would, the peer
 * writing it piece by piece, for at most `budgetUs` of waiting (counted in
 * scheduler ticks, as sendmsgWait's). Stops early at fds (pushed onto
 * `fdsOut`, the caller's to close) or EOF. The bytes read, 0 at EOF with
 * none, -1 when none came in time; the fd is nonblocking again after.
 */
export const recvmsgWait: (fd: number, into: ArrayBufferView, budgetUs: number, fdsOut: number[]) => number = addon.recvmsgWait;

/**
 * Reads into `into`: the byte count, 0 at end of stream, -1 when nothing is
 * waiting. Received fds (CLOEXEC) are pushed onto `fdsOut` and belong to the
 * caller; without `fdsOut` they are closed. If the kernel had to drop fds
 * (MSG_CTRUNC, e.g. this process is out of fds) the ones that arrived are
 * closed and it throws EMSGSIZE: the bytes of that read are lost with them,
 * so the connection is out of step and must be closed.
 */
export const recvmsg: (fd: number, into: ArrayBufferView, fdsOut?: number[]) => number = addon.recvmsg;

/** Closes `fd`; throws EBADF if it was not open (other errors still close it). */
export const close: (fd: number) => void = addon.close;

/** A CLOEXEC duplicate of `fd`. */
export const dup: (fd: number) => number = addon.dup;

/** Options of eventfd(). */
export interface EventfdFlags {
  /** EFD_NONBLOCK: eventfdRead returns null instead of blocking. */
  nonblock?: boolean;
  /** EFD_SEMAPHORE: each read takes 1 from the counter instead of all of it. */
  semaphore?: boolean;
}

/** An eventfd (always CLOEXEC) whose counter starts at `initval`. */
export const eventfd: (initval?: number, flags?: EventfdFlags) => number = addon.eventfd;

/** Adds `value` (default 1) to the counter; throws EAGAIN if it would overflow. */
export const eventfdWrite: (fd: number, value?: bigint | number) => void = addon.eventfdWrite;

/** What eventfdSignal did. */
export const EventfdSignal = {
  /** 1 was added to the counter. */
  DELIVERED: 0,
  /** The counter was full (the fd was nonblocking): the reader already has a wakeup pending. */
  FULL: 1,
  /**
   * The counter was full and the fd blocking: the write was cut short after
   * at most 100 µs, and O_NONBLOCK set again. A wakeup is pending, as for FULL.
   */
  BLOCKED: 2,
} as const;
export type EventfdSignal = (typeof EventfdSignal)[keyof typeof EventfdSignal];

/**
 * Adds 1 to the counter of an eventfd someone else may control, without
 * ever blocking for more than 100 µs, whatever its O_NONBLOCK flag says
 * and however the other side races to change it (see native/eventfd.cc).
 * EBADF or EINVAL (not an eventfd) throw.
 */
export const eventfdSignal: (fd: number) => EventfdSignal = addon.eventfdSignal;

/** Sets (`on`) or clears O_NONBLOCK on the file description of `fd`, shared with every duplicate. */
export const setNonblocking: (fd: number, on: boolean) => void = addon.setNonblocking;

/** Takes the counter (or 1 of it in semaphore mode); null when it is 0 (nonblocking fd). */
export const eventfdRead: (fd: number) => bigint | null = addon.eventfdRead;

/** A memfd (CLOEXEC, sealing allowed) of `size` bytes when given. */
export const memfdCreate: (name: string, size?: number) => number = addon.memfdCreate;

/** Seals a memfd's size (no shrinking, no growing), so a peer cannot truncate it under a mapping. */
export const sealSize: (fd: number) => void = addon.sealSize;

/**
 * Maps `length` bytes of `fd` from `offset` (page aligned) MAP_SHARED and
 * returns them as an ArrayBuffer. Refuses with EINVAL an unaligned offset,
 * length 0, a range past the end of a regular file (it would SIGBUS) and
 * `read: false`. A read-only mapping is still a writable ArrayBuffer to JS:
 * writing through it kills the process (SIGSEGV), so guard writes above.
 */
export const mmap: (fd: number, offset: number, length: number, prot: { read: boolean; write: boolean }) => ArrayBuffer = addon.mmap;

/**
 * Detaches `buffer` (every view over it becomes length 0) and unmaps it.
 * A no-op on an already detached buffer; EINVAL for one mmap did not make.
 * A mapping nobody unmaps is unmapped when its ArrayBuffer is collected.
 */
export const munmap: (buffer: ArrayBuffer) => void = addon.munmap;

/** What DMA_MAP needs to know of a client's fd. */
export interface MemoryFdInfo {
  /** S_ISREG */
  regular: boolean;
  /** st_size */
  size: number;
  /** statfs f_type (TMPFS_MAGIC for a memfd, HUGETLBFS_MAGIC for a hugetlb one, ...) */
  fsType: number;
  /** F_GET_SEALS; -1 when the file cannot carry seals (anything but a memfd) */
  seals: number;
  /** st_dev and st_ino: which file it is (two fds of one memfd are one file) */
  dev: number;
  ino: number;
}

/** fstat, fstatfs and F_GET_SEALS of `fd` in one call. */
export function memoryFdInfo(fd: number): MemoryFdInfo {
  const [regular, size, fsType, seals, dev, ino] = addon.memoryFdInfo(fd);
  return { regular, size, fsType, seals, dev, ino };
}

/** statfs f_type of tmpfs and shmem (memfd_create's files). */
export const TMPFS_MAGIC = 0x01021994;
/** F_SEAL_SHRINK: the file can never get shorter. */
export const F_SEAL_SHRINK = 0x0002;
/** F_SEAL_GROW: the file can never get longer. */
export const F_SEAL_GROW = 0x0004;

export type { ClientMemoryHandle } from './addon.js';

/**
 * One MAP_SHARED mapping of `length` bytes of `fd` from `offset` (any
 * offset: an unaligned one is mapped from the page below), as a handle:
 * no ArrayBuffer is made (see native/memory.cc). Only for memory that
 * cannot shrink under it (a size-sealed memfd): a touch past the end of a
 * file is SIGBUS. EINVAL for length 0 or a range past the end of the file.
 */
export const mapClientMemory: (fd: number, offset: number, length: number, writable: boolean) => ClientMemoryHandle = addon.mapClientMemory;

/** Copies dest.byteLength bytes from `offset` of the mapping; EFAULT outside it or once unmapped. */
export const clientMemoryRead: (handle: ClientMemoryHandle, offset: number, dest: ArrayBufferView) => void = addon.clientMemoryRead;

/** Copies `src` to `offset` of the mapping; EFAULT outside it, EPERM for a read-only mapping. */
export const clientMemoryWrite: (handle: ClientMemoryHandle, offset: number, src: ArrayBufferView) => void = addon.clientMemoryWrite;

/**
 * An ArrayBuffer over [offset, offset+length) of a writable mapping. Keep
 * it and pass it to unmapClientMemory, which detaches it. Each one counts
 * its length as V8 external memory: make few (see ClientMemory.view).
 */
export const clientMemoryWindow: (handle: ClientMemoryHandle, offset: number, length: number) => ArrayBuffer = addon.clientMemoryWindow;

/**
 * Detaches `windows` (every one clientMemoryWindow made of this mapping),
 * then unmaps. Idempotent. A forgotten mapping is unmapped once its handle
 * and windows are collected.
 */
export const unmapClientMemory: (handle: ClientMemoryHandle, windows: readonly ArrayBuffer[]) => void = addon.unmapClientMemory;
