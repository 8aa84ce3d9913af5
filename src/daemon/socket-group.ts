/**
 * Sharing the daemon's sockets with one group, e.g. the group libvirt runs
 * QEMU in (`--socket-group`): the runtime directory becomes 0710 (the group
 * may pass through, not list), its devices/ directory 0750 and each device
 * socket 0660, all of that group; nothing is opened to anyone else. The
 * control socket stays 0600 unless the operator shares it too
 * (`--share-control`), because whoever can reach it can start and stop
 * devices. The state directory is never shared.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { VfioError, toVfioError } from '../base/errors.js';
import { ensurePrivateDir } from './private-dir.js';

/** A group sockets are shared with. */
export interface SocketGroup {
  /** As the operator named it (a name, or a number). */
  name: string;
  gid: number;
}

/** Mode of the runtime directory: the group may reach what is inside, not list it. */
export const SHARED_RUNTIME_DIR_MODE = 0o710;
/** Mode of devices/: the group may list the device sockets. */
export const SHARED_SOCKET_DIR_MODE = 0o750;
/** Mode of a shared socket: the group may connect. */
export const SHARED_SOCKET_MODE = 0o660;

/**
 * The group `spec` names: a number is taken as a gid; a name is looked up
 * in /etc/group, then through the system's name service (getent), so
 * LDAP/sssd groups work too. EINVAL for a group that does not exist.
 */
export function resolveGroup(spec: string): SocketGroup {
  if (/^\d+$/.test(spec)) return { name: spec, gid: Number(spec) };
  const found = lookup(readText('/etc/group'), spec) ?? lookup(getent(spec), spec);
  if (found === undefined) throw new VfioError('EINVAL', `--socket-group: no group ${JSON.stringify(spec)}`);
  return { name: spec, gid: found };
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function getent(name: string): string {
  try {
    return execFileSync('getent', ['group', name], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

/** The gid of `name` in group(5) lines `name:x:gid:members`. */
function lookup(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/** Creates `dir` as ensurePrivateDir does, then gives it to `group` with `mode`. */
export function ensureSharedDir(dir: string, group: SocketGroup, mode: number): void {
  ensurePrivateDir(dir);
  share(dir, group, mode);
}

/** Gives the socket at `path` to `group`, mode 0660. */
export function shareSocket(path: string, group: SocketGroup): void {
  share(path, group, SHARED_SOCKET_MODE);
}

function share(path: string, group: SocketGroup, mode: number): void {
  try {
    chownSync(path, -1, group.gid);
    chmodSync(path, mode);
  } catch (err) {
    const e = toVfioError(err);
    const hint = e.code === 'EPERM' ? `: the daemon's user must be a member of group ${group.name} (systemd: SupplementaryGroups=${group.name})` : '';
    throw new VfioError(e.code, `cannot give ${path} to group ${group.name}: ${(err as Error).message}${hint}`, { cause: err });
  }
}

/**
 * The first directory above `dir` that members of `group` cannot pass
 * through (no search permission for them), if any: sockets below it are
 * out of their reach whatever their own modes. Only the mode bits are
 * read: an ACL may still let them in.
 */
export function blockingAncestor(dir: string, group: SocketGroup): { dir: string; mode: number } | undefined {
  for (let d = dirname(dir); ; d = dirname(d)) {
    const st = statSync(d);
    const passes = (st.mode & 0o001) !== 0 || (st.gid === group.gid && (st.mode & 0o010) !== 0);
    if (!passes) return { dir: d, mode: st.mode & 0o7777 };
    if (d === dirname(d)) return undefined;
  }
}
