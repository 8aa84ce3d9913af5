/**
 * Reply buffers too large for a session to keep for itself. A session that
 * answers a large read (a display BAR, 1 MiB at a time) borrows one for
 * that reply and gives it back once the reply left; the process keeps at
 * most KEPT of them between replies, whatever the number of clients, so an
 * idle client that once read 1 MiB holds nothing for it.
 */

/** Large buffers kept between replies, for the whole process. */
const KEPT = 2;

const free: Uint8Array[] = [];

/** A buffer of at least `size` bytes, the caller's until it gives it back. */
export function borrowReplyBuffer(size: number): Uint8Array {
  for (let i = 0; i < free.length; i++) {
    if (free[i]!.length >= size) return free.splice(i, 1)[0]!;
  }
  return new Uint8Array(size);
}

/** Gives back a borrowed buffer; the caller must not touch it again. The largest KEPT are kept. */
export function returnReplyBuffer(buf: Uint8Array): void {
  if (free.length < KEPT) {
    free.push(buf);
    return;
  }
  let smallest = 0;
  for (let i = 1; i < free.length; i++) if (free[i]!.length < free[smallest]!.length) smallest = i;
  if (free[smallest]!.length < buf.length) free[smallest] = buf;
}
