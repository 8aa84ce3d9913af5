/**
 * A real directory tree that mirrors a SysfsView, so `ls`, `cat` and tools
 * that read /sys-shaped trees see the bus. It reflects and takes no
 * writes: files are read-only (0444), `create`/`remove` write-only (0200)
 * and empty; use SysfsView.write() to act.
 *
 * Every bus event schedules a sync: the view is snapshotted in one
 * synchronous pass (so a sync never mixes two moments), then the disk is
 * brought in line with it — changed files are replaced by rename, so a
 * reader never sees half a file. Syncs never overlap; events arriving
 * during one coalesce into the next. The mirror owns `<dir>/class` and
 * `<dir>/bus` and clears them when it starts.
 */
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SysfsView } from './sysfs-view.js';
import type { MdevBusEvents } from './mdev-bus.js';

const EVENTS: readonly (keyof MdevBusEvents)[] = [
  'parentRegistered',
  'parentUnregistering',
  'parentUnregistered',
  'created',
  'removing',
  'restored',
  'removed',
];

/** What a path holds, as a comparable signature: kind, mode and content. */
type Snapshot = Map<string, string>;

export class SysfsMirror {
  /** what is on disk, as last written by this mirror; null when unknown (the next sync starts afresh) */
  private written: Snapshot | null = null;
  private syncing: Promise<void> | null = null;
  private dirty = false;
  private closed = false;
  private readonly onChange = (): void => this.schedule();

  private constructor(
    readonly view: SysfsView,
    /** the directory standing for /sys */
    readonly dir: string,
  ) {}

  /** Builds the tree under `dir` (created if needed) and starts tracking the bus. */
  static async start(view: SysfsView, dir: string): Promise<SysfsMirror> {
    const mirror = new SysfsMirror(view, dir);
    await mkdir(dir, { recursive: true });
    for (const event of EVENTS) view.bus.on(event, mirror.onChange);
    mirror.schedule();
    await mirror.flush();
    return mirror;
  }

  /** Resolves once the tree reflects every bus change seen so far. */
  async flush(): Promise<void> {
    while (this.syncing) await this.syncing;
  }

  /** Stops tracking (after a last sync); the tree stays as it is. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const event of EVENTS) this.view.bus.off(event, this.onChange);
    }
    await this.flush();
  }

  private schedule(): void {
    if (this.closed) return;
    this.dirty = true;
    this.syncing ??= this.syncLoop();
  }

  private async syncLoop(): Promise<void> {
    try {
      while (this.dirty) {
        this.dirty = false;
        try {
          await this.apply(this.snapshot());
        } catch (err) {
          // What the failed sync left on disk is unknown, so the next one
          // (at the next event) clears the tree and writes it whole: an empty
          // map instead would leave whatever it cannot see there for good.
          process.emitWarning(`sysfs mirror ${this.dir}: ${(err as Error).message}`);
          this.written = null;
        }
      }
    } finally {
      this.syncing = null;
    }
  }

  /** The whole view, path → signature, parents before children. */
  private snapshot(): Snapshot {
    const out: Snapshot = new Map();
    const visit = (path: string): void => {
      for (const name of this.view.list(path)) {
        const child = path === '' ? name : `${path}/${name}`;
        const st = this.view.stat(child);
        if (st.kind === 'dir') {
          out.set(child, 'd');
          visit(child);
        } else if (st.kind === 'link') {
          out.set(child, `l${st.target}`);
        } else {
          const mode = (st.readable ? 0o444 : 0) | (st.writable ? 0o200 : 0);
          let content = '';
          try {
            if (st.readable) content = this.view.read(child);
          } catch {
            // an attribute that cannot be read now shows empty, as a failed show() would
          }
          out.set(child, `f${mode.toString(8)}:${content}`);
        }
      }
    };
    visit('');
    return out;
  }

  private async apply(next: Snapshot): Promise<void> {
    if (this.written === null) {
      await rm(join(this.dir, 'class'), { recursive: true, force: true });
      await rm(join(this.dir, 'bus'), { recursive: true, force: true });
      this.written = new Map();
    }
    const written = this.written;
    // Removals first, topmost only (rm is recursive), then creations and
    // updates in snapshot order, which puts directories before their contents.
    const gone = [...written.keys()].filter((p) => !next.has(p) || kindOf(next.get(p)!) !== kindOf(written.get(p)!));
    for (const path of gone) {
      if (gone.some((g) => path.startsWith(`${g}/`))) continue;
      await rm(join(this.dir, path), { recursive: true, force: true });
    }
    const kept = new Map([...written].filter(([p]) => !gone.some((g) => p === g || p.startsWith(`${g}/`))));
    for (const [path, sig] of next) {
      if (kept.get(path) === sig) continue;
      const abs = join(this.dir, path);
      if (sig === 'd') {
        await mkdir(abs, { recursive: true, mode: 0o755 });
      } else if (sig.startsWith('l')) {
        await rm(abs, { force: true });
        await symlink(sig.slice(1), abs);
      } else {
        const colon = sig.indexOf(':');
        const mode = Number.parseInt(sig.slice(1, colon), 8);
        const tmp = `${abs}.mirror-tmp`;
        await writeFile(tmp, sig.slice(colon + 1), { mode });
        await rename(tmp, abs);
      }
      kept.set(path, sig);
    }
    this.written = kept;
  }
}

function kindOf(sig: string): string {
  return sig[0]!;
}
