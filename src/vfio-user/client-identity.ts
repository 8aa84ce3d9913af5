/**
 * Who a client is: the process at the other end of its socket, as the
 * kernel saw it connect (SO_PEERCRED), and that process's command line.
 * The command is informational only: a process may rewrite its own
 * argv, and the pid may be gone (or reused) by the time it is read.
 */
import { open } from 'node:fs/promises';
import { peerCredentials } from '../native/index.js';

/** The process behind a client connection. */
export interface ClientIdentity {
  /** -1 when the kernel would not say; 0 for a process outside our pid namespace */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /**
   * /proc/PID/cmdline, arguments joined by spaces, at most COMMAND_MAX
   * bytes; null until read, or when the process was already gone.
   */
  command: string | null;
}

/** Bytes of /proc/PID/cmdline read at most. */
const COMMAND_MAX = 4096;

/** The credentials of the peer of connected socket `fd` (command not read yet). */
export function peerIdentity(fd: number): ClientIdentity {
  try {
    const [pid, uid, gid] = peerCredentials(fd);
    return { pid, uid, gid, command: null };
  } catch {
    return { pid: -1, uid: -1, gid: -1, command: null };
  }
}

/**
 * Reads the command of `identity.pid` once, off the event loop (reading
 * another process's argv takes its memory lock, which that process could
 * hold), and fills `identity.command` in. Never rejects.
 */
export async function readCommand(identity: ClientIdentity): Promise<void> {
  if (identity.pid <= 0) return;
  try {
    const file = await open(`/proc/${identity.pid}/cmdline`, 'r');
    try {
      const buf = Buffer.alloc(COMMAND_MAX);
      const { bytesRead } = await file.read(buf, 0, COMMAND_MAX, 0);
      identity.command = commandLine(buf.subarray(0, bytesRead));
    } finally {
      await file.close();
    }
  } catch {
    // Gone already (or a kernel thread): the command stays unknown.
  }
}

/** argv as /proc has it (each argument NUL-terminated) → one line. */
function commandLine(raw: Uint8Array): string {
  let end = raw.length;
  while (end > 0 && raw[end - 1] === 0) end--;
  return new TextDecoder().decode(raw.subarray(0, end)).replaceAll('\0', ' ');
}
