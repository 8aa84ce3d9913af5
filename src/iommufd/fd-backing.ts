/**
 * Client memory behind a file descriptor (vfio-user's DMA_MAP with an fd),
 * reached so that nothing the client does to the file afterwards can kill
 * or stall this process:
 *
 *  - a memfd sealed against shrinking (F_SEAL_SHRINK; QEMU's memfd backend
 *    seals by default) is mapped here, once, whatever its size: its pages
 *    cannot vanish (a hole punched in it reads as zeros), so a touch can
 *    never be SIGBUS. Reads and writes are copies; views are made on demand.
 *    One fd of each such file is kept while something of it is mapped
 *    (KeptFiles; counted like the next kind's fds), so that a daemon
 *    takeover can hand the same memory to the next process.
 *  - any other file on tmpfs (a memfd without that seal, a file in
 *    /dev/shm) is reached with pread/pwrite on the fd, kept open: a page
 *    the client truncated away is an EFAULT for that one access. tmpfs
 *    reads and writes never wait for a disk.
 *  - anything else that is a regular file (hugetlbfs, whose pages a hole
 *    punch can make unfaultable; a disk or network file, whose pread could
 *    stall the event loop for as long as the disk or the server likes) is
 *    not reached through the fd at all: the caller falls back to its
 *    slowest safe path (vfio-user: DMA_READ/DMA_WRITE messages).
 *  - something that is not a regular file (a pipe, a socket, a device) is
 *    refused with EINVAL.
 */
import { fstatSync, readSync, writeSync } from 'node:fs';
import type { Budget } from '../base/budget.js';
import { toVfioError, VfioError } from '../base/errors.js';
import { ClientMemory, closeFds, F_SEAL_SHRINK, memoryFdInfo, TMPFS_MAGIC } from '../native/index.js';
import type { DmaBacking } from './dma-backing.js';

/** What reaching client memory may hold; unbounded where absent. */
export interface FdBackingBudgets {
  /** bytes of client memory mapped into this process */
  mappedBytes?: Budget;
  /** fds kept open to reach client memory (pread/pwrite, and one per mapped file) */
  fds?: Budget;
  /** the client's files kept for its mapped memory; one of its own per call when absent */
  files?: KeptFiles;
}

/** A file KeptFiles keeps: shared by the mappings of it. */
export class KeptFile {
  /** mappings that hold it */
  refs = 0;

  constructor(
    readonly dev: number,
    readonly ino: number,
    /** an fd of the file: the writable one if ever one came */
    public fd: number,
    public writable: boolean,
  ) {}
}

/**
 * The files of one client's mapped memory, one fd kept per file (by device
 * and inode): QEMU sends its RAM's memfd with every DMA_MAP, and a takeover
 * needs one fd of each file, not one per mapping. Each file kept counts as
 * one fd in `budget`, from its first mapping to the release of its last.
 */
export class KeptFiles {
  /** by inode; files of one inode number on several devices share a list */
  readonly #byIno = new Map<number, KeptFile[]>();
  #size = 0;

  constructor(private readonly budget?: Budget) {}

  /** Files kept. */
  get size(): number {
    return this.#size;
  }

  /**
   * Runs `map` (which maps memory of `fd`, of `file` as memoryFdInfo
   * names it, and says whether the mapping could be writable) and keeps
   * the fd for it: `fd` becomes the registry's once `map` succeeded
   * (closed at once when its file is kept already through an fd as good).
   * The budget is checked before `map` runs; when either throws, `fd`
   * stays the caller's. release() the file once per successful keep().
   */
  keep<T>(fd: number, file: { dev: number; ino: number }, map: () => { made: T; writable: boolean }): { made: T; kept: KeptFile } {
    const same = this.#byIno.get(file.ino);
    const known = same?.find((k) => k.dev === file.dev);
    if (known === undefined) this.budget?.take(1, 'DMA map: client memory fds');
    let result: { made: T; writable: boolean };
    try {
      result = map();
    } catch (err) {
      if (known === undefined) this.budget?.release(1);
      throw err;
    }
    let kept = known;
    if (kept === undefined) {
      kept = new KeptFile(file.dev, file.ino, fd, result.writable);
      if (same === undefined) this.#byIno.set(file.ino, [kept]);
      else same.push(kept);
      this.#size++;
    } else if (result.writable && !kept.writable) {
      closeFds([kept.fd]);
      kept.fd = fd;
      kept.writable = true;
    } else {
      closeFds([fd]);
    }
    kept.refs++;
    return { made: result.made, kept };
  }

  /** One mapping of `kept` is gone; the fd closes with the last. */
  release(kept: KeptFile): void {
    if (--kept.refs > 0) return;
    const same = this.#byIno.get(kept.ino);
    const at = same?.indexOf(kept) ?? -1;
    if (at < 0) return;
    same!.splice(at, 1);
    if (same!.length === 0) this.#byIno.delete(kept.ino);
    this.#size--;
    closeFds([kept.fd]);
    this.budget?.release(1);
  }
}

/** Where `fdBacking` put a client's fd. */
export type FdReach =
  | { backing: DmaBacking }
  /** Not reachable safely through the fd (it was closed): `why`, for a log line. */
  | { backing: null; why: string };

/** statfs f_type of hugetlbfs, named in the fallback's reason. */
const HUGETLBFS_MAGIC = 0x958458f6;

/**
 * Reaches `size` bytes of the client's `fd` from `offset` (see the file
 * comment), taking ownership of the fd whatever happens: kept by a file
 * backing, closed otherwise. EINVAL for a fd that is not a regular file or
 * a range beyond its end, OverBudget when the budgets say no (checked
 * before anything is mapped), mmap's errors as they come.
 */
export function fdBacking(fd: number, offset: number, size: number, writable: boolean, budgets: FdBackingBudgets = {}): FdReach {
  let kept = false;
  try {
    if (!Number.isSafeInteger(offset + size)) {
      throw new VfioError('EOVERFLOW', `DMA map: file range at ${offset} of ${size} bytes goes beyond 2^53`);
    }
    const info = memoryFdInfo(fd);
    if (!info.regular) {
      throw new VfioError('EINVAL', 'DMA map: the fd is not a regular file (client memory is a memfd or a file)');
    }
    if (offset + size > info.size) {
      throw new VfioError('EINVAL', `DMA map: [${offset}, +${size}) goes beyond the end of the file (${info.size} bytes)`);
    }
    if (info.fsType !== TMPFS_MAGIC) {
      const fs = info.fsType === HUGETLBFS_MAGIC ? 'hugetlbfs' : `a file system of type 0x${info.fsType.toString(16)}`;
      return { backing: null, why: `the memory is on ${fs}, which is not reached through its fd` };
    }
    let backing: DmaBacking;
    if (info.seals >= 0 && (info.seals & F_SEAL_SHRINK) !== 0) {
      backing = MappedFdBacking.map(fd, info, offset, size, writable, budgets);
    } else {
      budgets.fds?.take(1, 'DMA map: client memory fds');
      backing = new FileBacking(fd, offset, size, budgets.fds);
    }
    kept = true;
    return { backing };
  } finally {
    if (!kept) closeFds([fd]);
  }
}

/** A size-sealed memfd mapped here; its file kept (KeptFiles) until release(). */
export class MappedFdBacking implements DmaBacking {
  readonly reach = 'memory';
  readonly #memory: ClientMemory;
  readonly #files: KeptFiles;
  readonly #kept: KeptFile;
  readonly #offset: number;
  readonly #bytes: Budget | undefined;

  private constructor(
    memory: ClientMemory,
    readonly size: number,
    files: KeptFiles,
    kept: KeptFile,
    offset: number,
    bytes: Budget | undefined,
  ) {
    this.#memory = memory;
    this.#files = files;
    this.#kept = kept;
    this.#offset = offset;
    this.#bytes = bytes;
  }

  /**
   * Maps it, writable when the fd allows (so a driver's view never faults
   * on a store; the address space enforces what the client allowed),
   * read-only when it does not and no more was asked. The fd becomes the
   * backing's (its KeptFiles') once this returns; it stays the caller's
   * when this throws.
   */
  static map(
    fd: number,
    file: { dev: number; ino: number },
    offset: number,
    size: number,
    writable: boolean,
    budgets: FdBackingBudgets = {},
  ): MappedFdBacking {
    const bytes = budgets.mappedBytes;
    bytes?.take(size, 'DMA map: bytes of client memory mapped');
    try {
      const files = budgets.files ?? new KeptFiles(budgets.fds);
      const { made, kept } = files.keep(fd, file, () => {
        try {
          return { made: ClientMemory.map(fd, offset, size, true), writable: true };
        } catch (err) {
          if (writable) throw err;
          return { made: ClientMemory.map(fd, offset, size, false), writable: false };
        }
      });
      return new MappedFdBacking(made, size, files, kept, offset, bytes);
    } catch (err) {
      bytes?.release(size);
      throw err;
    }
  }

  get file(): { fd: number; offset: number } | undefined {
    return this.#memory.unmapped ? undefined : { fd: this.#kept.fd, offset: this.#offset };
  }

  readSync(offset: number, dest: Uint8Array): void {
    this.#memory.read(offset, dest);
  }

  writeSync(offset: number, src: Uint8Array): void {
    this.#memory.write(offset, src);
  }

  view(offset: number, length: number): Uint8Array {
    return this.#memory.view(offset, length);
  }

  release(): void {
    if (this.#memory.unmapped) return;
    this.#memory.unmap();
    this.#files.release(this.#kept);
    this.#bytes?.release(this.size);
  }
}

/** Client memory reached with pread/pwrite on its fd (owned, closed by release()). */
export class FileBacking implements DmaBacking {
  readonly reach = 'file';
  #fd: number;

  constructor(
    fd: number,
    /** where byte 0 is in the file */
    readonly offset: number,
    readonly size: number,
    private readonly budget?: Budget,
  ) {
    this.#fd = fd;
  }

  readSync(offset: number, dest: Uint8Array): void {
    const at = this.offset + offset;
    try {
      for (let done = 0; done < dest.byteLength;) {
        const n = readSync(this.#live(), dest, done, dest.byteLength - done, at + done);
        if (n === 0) throw gone(at + done);
        done += n;
      }
    } catch (err) {
      throw fault(err);
    }
  }

  writeSync(offset: number, src: Uint8Array): void {
    const at = this.offset + offset;
    try {
      // pwrite past the end would grow a file the client shrank: the bytes are gone.
      if (at + src.byteLength > fstatSync(this.#live()).size) throw gone(at);
      for (let done = 0; done < src.byteLength;) done += writeSync(this.#fd, src, done, src.byteLength - done, at + done);
    } catch (err) {
      throw fault(err);
    }
  }

  get file(): { fd: number; offset: number } | undefined {
    return this.#fd < 0 ? undefined : { fd: this.#fd, offset: this.offset };
  }

  release(): void {
    if (this.#fd < 0) return;
    closeFds([this.#fd]);
    this.#fd = -1;
    this.budget?.release(1);
  }

  #live(): number {
    if (this.#fd < 0) throw new VfioError('EFAULT', 'DMA: the mapping was removed');
    return this.#fd;
  }
}

function gone(at: number): VfioError {
  return new VfioError('EFAULT', `DMA: client memory at file offset ${at} is gone (the file was shrunk)`);
}

/** Any failure to reach client memory is that access's EFAULT, with what happened. */
function fault(err: unknown): VfioError {
  const e = toVfioError(err);
  return e.code === 'EFAULT' ? e : new VfioError('EFAULT', `DMA: client memory cannot be reached: ${e.message}`, { cause: err });
}
