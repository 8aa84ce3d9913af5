/**
 * File reads that never wait for a disk (preadv2 with RWF_NOWAIT): what the
 * page cache holds is copied at once, on the caller's thread; for the rest
 * the caller goes to a thread of its own (fs.promises).
 */
import { addon } from './addon.js';

/**
 * Reads into `dest` at byte `position` of `fd` what can be read without
 * waiting: the bytes read (0 at the end of the file), or -1 when none
 * could be (not cached, or a file system without RWF_NOWAIT). Other
 * failures throw VfioError. Undefined when the addon was built before it:
 * callers then take the thread path for everything.
 */
export const preadNoWait: ((fd: number, dest: ArrayBufferView, position: number) => number) | undefined = addon.preadNoWait;
