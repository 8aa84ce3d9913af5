/**
 * The one error class of uvfio. Every failure a caller can cause carries a
 * POSIX errno name and a sentence saying what was wrong; the transport turns
 * it into a vfio-user error reply with the matching number.
 */

/** The errno names uvfio uses, with their Linux numbers (asm-generic/errno). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EUSERS: 87,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const NAME_BY_NUMBER = new Map<number, ErrnoName>(Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoName]));

/** Errno name for a number, or undefined when uvfio does not know it. */
export function errnoName(errno: number): ErrnoName | undefined {
  return NAME_BY_NUMBER.get(errno);
}

/**
 * A failure with a stable errno name (`code`), its number (`errno`) and a
 * sentence. `code` follows Node's convention for system errors, so callers
 * can switch on it the same way they switch on fs errors.
 */
export class VfioError extends Error {
  override readonly name = 'VfioError';
  readonly code: ErrnoName;
  readonly errno: number;

  constructor(code: ErrnoName, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.errno = ERRNO[code];
  }

  /** Builds an error from a number received from a peer (e.g. a vfio-user error reply). */
  static fromErrno(errno: number, message: string): VfioError {
    return new VfioError(errnoName(errno) ?? 'EIO', message);
  }
}

/** True when `name` is an errno name uvfio knows (one received from a peer, say). */
export function isErrnoName(name: unknown): name is ErrnoName {
  return typeof name === 'string' && Object.hasOwn(ERRNO, name);
}

/** True when `err` is a VfioError with the given code (or any code when omitted). */
export function isVfioError(err: unknown, code?: ErrnoName): err is VfioError {
  return err instanceof VfioError && (code === undefined || err.code === code);
}

/**
 * The errno to report for any thrown value: a VfioError's own, a Node system
 * error's code when uvfio knows it, EIO otherwise (a driver bug must not look
 * like a caller's mistake, nor crash the server).
 */
export function toVfioError(err: unknown): VfioError {
  if (err instanceof VfioError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in ERRNO) {
    return new VfioError(code as ErrnoName, (err as Error).message, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new VfioError('EIO', `internal error: ${msg}`, { cause: err });
}
