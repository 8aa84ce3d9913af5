/**
 * A block device's backing store: a raw image file, read and written with
 * asynchronous I/O (fs.promises FileHandle: the work runs on libuv's
 * thread pool, never on the event loop). Opened read-only for a read-only
 * device, read-write otherwise.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { toVfioError, VfioError } from '../../base/errors.js';
import { preadNoWait } from '../../native/file-io.js';

/** Bytes of a virtio-blk sector: capacity and request positions count in them. */
export const SECTOR_SIZE = 512;

export class FileBackend {
  #closing: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    /** The file's handle: I/O goes through it. */
    readonly handle: FileHandle,
    /** Bytes the device exposes: the file's size rounded down to whole sectors. */
    readonly size: number,
    readonly readOnly: boolean,
    /** Identity of the file (device, inode), for refusing a second writer. */
    readonly id: string,
  ) {}

  /**
   * Opens `path`: ENOENT when missing, EACCES when the daemon may not open
   * it as asked, EINVAL for something not a regular file or smaller than a
   * sector.
   */
  static async open(path: string, readOnly: boolean): Promise<FileBackend> {
    let handle: FileHandle;
    try {
      handle = await open(path, readOnly ? 'r' : 'r+');
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const how = readOnly ? 'for reading' : 'for reading and writing';
      if (code === 'EISDIR') throw new VfioError('EINVAL', `virtio-blk: ${path} is a directory, not a regular file`, { cause: err });
      if (code === 'ENOENT') throw new VfioError('ENOENT', `virtio-blk: ${path} does not exist`, { cause: err });
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new VfioError('EACCES', `virtio-blk: the daemon may not open ${path} ${how}`, { cause: err });
      }
      const e = toVfioError(err);
      throw new VfioError(e.code, `virtio-blk: cannot open ${path} ${how}: ${e.message}`, { cause: err });
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new VfioError('EINVAL', `virtio-blk: ${path} is not a regular file`);
      const size = Math.floor(st.size / SECTOR_SIZE) * SECTOR_SIZE;
      if (size === 0) throw new VfioError('EINVAL', `virtio-blk: ${path} has ${st.size} bytes, less than one ${SECTOR_SIZE}-byte sector`);
      return new FileBackend(path, handle, size, readOnly, `${st.dev}:${st.ino}`);
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Fills `buf` from byte `position`; EIO when the file ends first. What
   * the page cache holds is copied at once (no trip to a libuv thread and
   * back, which costs a request most of its latency on a busy host); the
   * rest is read on a thread, so the event loop never waits for a disk.
   */
  async read(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    if (preadNoWait !== undefined) {
      const n = preadNoWait(this.handle.fd, buf, position);
      if (n > 0) done = n;
    }
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, position + done);
      if (bytesRead === 0) throw new VfioError('EIO', `virtio-blk: ${this.path} ends before byte ${position + buf.length}`);
      done += bytesRead;
    }
  }

  /** Writes all of `buf` at byte `position`. */
  async write(buf: Uint8Array, position: number): Promise<void> {
    if (this.readOnly) throw new VfioError('EPERM', `virtio-blk: ${this.path} is read-only`);
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, position + done);
      done += bytesWritten;
    }
  }

  /** Makes written data durable (fdatasync). */
  async flush(): Promise<void> {
    if (!this.readOnly) await this.handle.datasync();
  }

  /** Closes the file once the I/O under way has finished; idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.handle.close().catch(() => {});
    return this.#closing;
  }
}
