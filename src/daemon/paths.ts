/**
 * Where the daemon keeps things. Two directories, as systemd would name
 * them: the runtime directory (sockets; gone at reboot) and the state
 * directory (the definitions database; kept). Each is chosen by flag, then
 * environment variable, then a default that depends on whether we run as
 * root (system-wide) or as a user (per-user, like `systemctl --user`).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { VfioError } from '../base/errors.js';

/** The files and sockets of one daemon instance. */
export interface DaemonPaths {
  runtimeDir: string;
  stateDir: string;
  /** The command line's socket (mode 0600). */
  controlSocket: string;
  /** Where a daemon taking over reaches the one serving (mode 0600). */
  takeoverSocket: string;
  /** One vfio-user socket per device lives here, named `<uuid>.sock`. */
  socketDir: string;
  /** The definitions database. */
  dbFile: string;
}

export interface PathOptions {
  /** `--runtime-dir` */
  runtimeDir?: string | undefined;
  /** `--state-dir` */
  stateDir?: string | undefined;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to process.getuid(). */
  uid?: number;
}

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const SUN_PATH_MAX = 107;
/** `devices/` + a UUID + `.sock`: the longest name under the runtime dir. */
const LONGEST_SOCKET_TAIL = '/devices/00000000-0000-0000-0000-000000000000.sock';

/**
 * Where a daemon (or a command talking to one) keeps things: flags, then
 * UVFIO_RUNTIME_DIR / UVFIO_STATE_DIR, then the root or per-user default.
 * EINVAL for a runtime directory too long to hold a device's socket path.
 */
export function resolvePaths(options: PathOptions = {}): DaemonPaths {
  const env = options.env ?? process.env;
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const root = uid === 0;
  const runtimeDir = resolve(
    nonEmpty(options.runtimeDir) ?? nonEmpty(env.UVFIO_RUNTIME_DIR) ?? (root ? '/run/uvfio' : defaultUserRuntimeDir(env, uid)),
  );
  const stateDir = resolve(
    nonEmpty(options.stateDir) ??
      nonEmpty(env.UVFIO_STATE_DIR) ??
      (root ? '/var/lib/uvfio' : join(nonEmpty(env.XDG_STATE_HOME) ?? join(env.HOME || homedir(), '.local', 'state'), 'uvfio')),
  );
  if (Buffer.byteLength(runtimeDir + LONGEST_SOCKET_TAIL) > SUN_PATH_MAX) {
    throw new VfioError(
      'EINVAL',
      `runtime directory ${runtimeDir} is too long for UNIX socket paths (at most ${SUN_PATH_MAX - LONGEST_SOCKET_TAIL.length} bytes)`,
    );
  }
  return {
    runtimeDir,
    stateDir,
    controlSocket: join(runtimeDir, 'control.sock'),
    takeoverSocket: join(runtimeDir, 'takeover.sock'),
    socketDir: join(runtimeDir, 'devices'),
    dbFile: join(stateDir, 'uvfio.db'),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** `$XDG_RUNTIME_DIR/uvfio`; without a login session, a directory of our own under /tmp. */
function defaultUserRuntimeDir(env: NodeJS.ProcessEnv, uid: number): string {
  const xdg = nonEmpty(env.XDG_RUNTIME_DIR);
  return xdg ? join(xdg, 'uvfio') : join('/tmp', `uvfio-${uid}`);
}
