/**
 * The bus seen the way sysfs shows it, with the kernel's names, read and
 * written the way the files are: write a UUID to a type's `create`, `1` to
 * a device's `remove`. Paths are relative to a root standing for /sys:
 *
 *   class/mdev_bus/<parent>/mdev_supported_types/<type>/
 *       name  description  device_api  available_instances   (read-only)
 *       create                                                (write-only)
 *       devices/<uuid> -> ../../../<uuid>
 *   class/mdev_bus/<parent>/<uuid>/
 *       remove                                                (write-only)
 *       mdev_type -> ../mdev_supported_types/<type>
 *   bus/mdev/devices/<uuid> -> ../../../class/mdev_bus/<parent>/<uuid>
 *
 * so a tool written for /sys/class/mdev_bus and /sys/bus/mdev/devices
 * (mdevctl's two roots) finds what it expects. Every call looks at the bus
 * as it is at that moment; nothing is cached. Reads end with a newline, as
 * sysfs_emit's do. Errors: ENOENT for a path that does not exist, EACCES for
 * reading a write-only file or writing a read-only one, EINVAL for a value
 * the file does not take or for reading a directory, and whatever the bus
 * answers to a create or remove.
 */
import { VfioError } from '../base/errors.js';
import type { MdevBus } from './mdev-bus.js';
import type { MdevParent } from './mdev-parent.js';
import type { MdevType } from './mdev-type.js';
import type { MdevDevice } from './mdev-device.js';
import { normalizeUuid } from './uuid.js';
import { SysfsMirror } from './sysfs-mirror.js';

/** What is at a path: a directory, an attribute file, or a symbolic link. */
export type SysfsStat = { kind: 'dir' } | { kind: 'file'; readable: boolean; writable: boolean } | { kind: 'link'; target: string };

interface DirNode {
  kind: 'dir';
  list(): string[];
  child(name: string): SysNode | undefined;
}
interface FileNode {
  kind: 'file';
  read?: () => string;
  write?: (value: string) => Promise<void>;
}
interface LinkNode {
  kind: 'link';
  /** relative to the directory holding the link, like a sysfs symlink */
  target: string;
}
type SysNode = DirNode | FileNode | LinkNode;

const MAX_LINK_HOPS = 8;

/** A directory whose entries are computed at each look (an entry may say it is absent by giving undefined). */
function dir(entries: () => Record<string, () => SysNode | undefined>): DirNode {
  return {
    kind: 'dir',
    list: () => {
      const e = entries();
      return Object.keys(e)
        .filter((n) => e[n]!() !== undefined)
        .sort();
    },
    child: (name) => {
      const e = entries();
      return Object.hasOwn(e, name) ? e[name]!() : undefined;
    },
  };
}

/** A read-only attribute: the value and a newline. */
function attr(value: () => string | number): FileNode {
  return { kind: 'file', read: () => `${value()}\n` };
}

/** `echo VALUE > file` drops one trailing newline; sysfs stores see it too. */
function chompOne(value: string): string {
  return value.endsWith('\n') ? value.slice(0, -1) : value;
}

/** kstrtoul with base 0: decimal, 0x hex or 0 octal, nothing else. */
function parseUnsigned(value: string): number {
  const s = chompOne(value);
  if (/^[0-9]+$/.test(s) && !(s.length > 1 && s.startsWith('0'))) return Number(s);
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return Number.parseInt(s.slice(2), 16);
  if (/^0[0-7]*$/.test(s)) return Number.parseInt(s, 8);
  throw new VfioError('EINVAL', `${JSON.stringify(value)} is not a number`);
}

export class SysfsView {
  private readonly root: DirNode;

  constructor(readonly bus: MdevBus) {
    this.root = dir(() => ({
      class: () => dir(() => ({ mdev_bus: () => this.parentsDir() })),
      bus: () => dir(() => ({ mdev: () => dir(() => ({ devices: () => this.busDevicesDir() })) })),
    }));
  }

  /** Reads an attribute file. */
  read(path: string): string {
    const node = this.resolve(path, true);
    if (node.kind === 'dir') throw new VfioError('EINVAL', `${path} is a directory`);
    if (node.kind !== 'file' || !node.read) throw new VfioError('EACCES', `${path} cannot be read`);
    return node.read();
  }

  /** Writes an attribute file: `create` takes a UUID, `remove` a number (non-zero removes). */
  async write(path: string, value: string): Promise<void> {
    const node = this.resolve(path, true);
    if (node.kind === 'dir') throw new VfioError('EINVAL', `${path} is a directory`);
    if (node.kind !== 'file' || !node.write) throw new VfioError('EACCES', `${path} cannot be written`);
    if (typeof value !== 'string') throw new VfioError('EINVAL', `${path}: write a string`);
    await node.write(value);
  }

  /** Names in a directory, sorted (links followed on the way, like ls). */
  list(path = ''): string[] {
    const node = this.resolve(path, true);
    if (node.kind !== 'dir') throw new VfioError('EINVAL', `${path} is not a directory`);
    return node.list();
  }

  /** What is at a path, not following a final link (lstat). ENOENT when nothing is. */
  stat(path: string): SysfsStat {
    const node = this.resolve(path, false);
    if (node.kind === 'dir') return { kind: 'dir' };
    if (node.kind === 'link') return { kind: 'link', target: node.target };
    return { kind: 'file', readable: node.read !== undefined, writable: node.write !== undefined };
  }

  /** True when something is at the path. */
  exists(path: string): boolean {
    try {
      this.resolve(path, false);
      return true;
    } catch {
      return false;
    }
  }

  /** The target of a symbolic link, relative to its directory. EINVAL when the path is not a link. */
  readlink(path: string): string {
    const node = this.resolve(path, false);
    if (node.kind !== 'link') throw new VfioError('EINVAL', `${path} is not a link`);
    return node.target;
  }

  /**
   * Writes the view as a real, read-only directory tree under `dir` (files,
   * directories and symlinks) and keeps it in step with the bus until the
   * mirror is closed. Writing to the mirror's files does nothing: use write().
   */
  mirrorTo(dir: string): Promise<SysfsMirror> {
    return SysfsMirror.start(this, dir);
  }

  // ---- the tree ---------------------------------------------------------------

  private parentsDir(): DirNode {
    return dir(() => Object.fromEntries(this.bus.parents().map((p) => [p.name, () => this.parentDir(p)])));
  }

  private parentDir(parent: MdevParent): DirNode {
    return dir(() => {
      const entries: Record<string, () => SysNode | undefined> = {
        mdev_supported_types: () => dir(() => Object.fromEntries(parent.types.map((t) => [t.id, () => this.typeDir(t)]))),
      };
      for (const d of parent.devices()) entries[d.uuid] = () => this.deviceDir(d);
      return entries;
    });
  }

  private typeDir(type: MdevType): DirNode {
    return dir(() => ({
      name: () => attr(() => type.name),
      description: () => (type.description === undefined ? undefined : attr(() => type.description!)),
      device_api: () => attr(() => type.deviceApi),
      available_instances: () => attr(() => type.availableInstances),
      create: () => ({ kind: 'file', write: (value: string) => this.create(type, value) }),
      devices: () =>
        dir(() =>
          Object.fromEntries(
            type.parent
              .devices()
              .filter((d) => d.type === type)
              .map((d) => [d.uuid, (): SysNode => ({ kind: 'link', target: `../../../${d.uuid}` })]),
          ),
        ),
    }));
  }

  private deviceDir(mdev: MdevDevice): DirNode {
    return dir(() => ({
      remove: () => ({ kind: 'file', write: (value: string) => this.remove(mdev, value) }),
      mdev_type: () => ({ kind: 'link', target: `../mdev_supported_types/${mdev.type.id}` }),
    }));
  }

  private busDevicesDir(): DirNode {
    return dir(() =>
      Object.fromEntries(
        this.bus.devices().map((d) => [d.uuid, (): SysNode => ({ kind: 'link', target: `../../../class/mdev_bus/${d.parent.name}/${d.uuid}` })]),
      ),
    );
  }

  private async create(type: MdevType, value: string): Promise<void> {
    await this.bus.create(normalizeUuid(chompOne(value)), type);
  }

  private async remove(mdev: MdevDevice, value: string): Promise<void> {
    if (parseUnsigned(value) !== 0) await this.bus.remove(mdev.uuid);
  }

  // ---- paths ------------------------------------------------------------------

  /** Walks a path from the root, following links on the way (and the last one when asked). */
  private resolve(path: string, followLast: boolean): SysNode {
    if (typeof path !== 'string') throw new VfioError('EINVAL', 'a path is a string');
    let todo = split(path);
    const done: string[] = [];
    let node: SysNode = this.root;
    let hops = 0;
    while (todo.length > 0) {
      const name = todo.shift()!;
      if (name === '..') {
        done.pop();
        node = this.walk(done, path);
        continue;
      }
      if (node.kind !== 'dir') throw new VfioError('ENOENT', `${path}: ${done.join('/')} is not a directory`);
      const child = node.child(name);
      if (!child) throw new VfioError('ENOENT', `${path}: no such file or directory`);
      if (child.kind === 'link' && (todo.length > 0 || followLast)) {
        if (++hops > MAX_LINK_HOPS) throw new VfioError('EINVAL', `${path}: too many levels of links`);
        todo = [...split(child.target), ...todo];
        continue; // the target is relative to the directory holding the link: `done`
      }
      done.push(name);
      node = child;
    }
    return node;
  }

  /** The node at a path of plain names (no links, no '..'). */
  private walk(names: readonly string[], path: string): SysNode {
    let node: SysNode = this.root;
    for (const name of names) {
      const child: SysNode | undefined = node.kind === 'dir' ? node.child(name) : undefined;
      if (!child) throw new VfioError('ENOENT', `${path}: no such file or directory`);
      node = child;
    }
    return node;
  }
}

function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}
