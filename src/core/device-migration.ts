/**
 * One device's migration v2 state, kept by the core (vfio_main.c keeps the
 * FSM rules, a driver like mtty keeps the rest; here the core keeps both,
 * so a driver only saves, loads, stops and starts).
 *
 * - The state: RUNNING at first. SET walks the allowed arcs one at a time
 *   (migration-fsm.ts); each arc that stops or starts the device calls the
 *   driver's migrationStop/Start, entering PRE_COPY or STOP_COPY calls its
 *   migrationSave, leaving RESUMING calls its migrationLoad.
 * - The data session, in place of the kernel's data_fd: entering the
 *   saving group opens a stream that PRE_COPY, PRE_COPY_P2P and STOP_COPY
 *   share, read with read(); leaving it drops the stream. STOP → RESUMING
 *   opens an empty one that write() fills and RESUMING → STOP hands to the
 *   driver whole.
 * - Failures: a driver that throws mid-arc leaves the device in ERROR,
 *   except a load refused with a VfioError (nothing changed: the device
 *   stays RESUMING with the written stream discarded, so a good stream can
 *   be written next). An arc that is not allowed fails with EINVAL before
 *   anything happens; a multi-step transition that fails keeps the steps
 *   already taken (the uAPI allows any state along the path).
 * - Reset (of this device or its set) returns to RUNNING, and so does the
 *   last close: the next user of the device finds it running.
 *
 * Every method runs under the device set's lock, as every op does: the
 * token parameter says so. Transitions are thereby serialised with reset,
 * close and every other op of the set.
 */
import { VfioError } from '../base/errors.js';
import { MigState, type MigStateValue, type PrecopyInfo } from '../base/uapi.js';
import type { VfioDevice } from './device.js';
import { RECORD } from './device-record.js';
import { checkMigrationFlags, isRunningState, isSavingState, migStateName, nextMigState } from './migration-fsm.js';
import { after } from './maybe-async.js';
import type { SetLockToken } from './set-lock.js';

/** What a device declares about its migration (VfioDevice.migrationInfo). */
export interface MigrationInfo {
  /** MigrationFlags: STOP_COPY, plus P2P and PRE_COPY if it has them */
  flags: number;
  /**
   * The most bytes a stream of this device can hold: a client writing more
   * while RESUMING is refused (ENOSPC), so a resuming device never holds
   * more than this of a client's data.
   */
  maxStreamBytes: number;
}

/** How much of a stream's start migrationCheckStart sees at most. */
const START_BYTES = 4096;
/** The first buffer of a resuming stream (it doubles from there, up to maxStreamBytes). */
const MIN_RESUME_BUFFER = 64 * 1024;

function newSession(kind: 'save' | 'resume'): Session {
  return { kind, started: kind === 'save', chunks: [], sources: [], buf: new Uint8Array(0), bytes: 0, precopied: false, initialUnread: 0 };
}

/** A stream being read (saving) or written (resuming). */
interface Session {
  kind: 'save' | 'resume';
  /** resuming: the driver accepted the stream's start (migrationCheckStart) */
  started: boolean;
  /** saving: pieces made and not read yet, in order */
  chunks: Uint8Array[];
  /** saving: what makes the pieces after them, in order (eager stages are one piece) */
  sources: Iterator<Uint8Array>[];
  /** resuming: what was written, in its first `bytes` bytes (grows by doubling) */
  buf: Uint8Array;
  /** resuming: bytes written */
  bytes: number;
  /** saving: whether the precopy stage ran */
  precopied: boolean;
  /** saving: bytes of the precopy stage not read yet */
  initialUnread: number;
}

export class DeviceMigration {
  #state: MigStateValue = MigState.RUNNING;
  #session: Session | null = null;
  /** migrationStop ran and migrationStart has not since */
  #stopped = false;
  readonly #info: MigrationInfo | null;

  /** @internal use migrationOf(device) */
  constructor(readonly device: VfioDevice) {
    const info = device.migrationInfo();
    if (info !== null) {
      checkMigrationFlags(info.flags);
      if (!Number.isSafeInteger(info.maxStreamBytes) || info.maxStreamBytes <= 0) {
        throw new VfioError('EINVAL', `${device.name}: maxStreamBytes must be a positive integer`);
      }
    }
    this.#info = info;
  }

  /** The current state (GET of MIG_DEVICE_STATE). */
  get state(): MigStateValue {
    return this.#state;
  }

  /** The device's migration flags; ENOTTY when it cannot migrate. */
  flags(token: SetLockToken): number {
    this.#assertLocked(token);
    return this.#need().flags;
  }

  /**
   * SET of MIG_DEVICE_STATE: walks to `target` through the allowed arcs.
   * Resolves once there; see the module comment for failures.
   */
  async setState(token: SetLockToken, target: number): Promise<void> {
    this.#assertLocked(token);
    const info = this.#need();
    while (this.#state !== target) {
      const next = nextMigState(info.flags, this.#state, target);
      await this.#step(next);
    }
  }

  /**
   * MIG_DATA_READ: up to `size` bytes of the saving stream. Fewer (even
   * none) in PRE_COPY means nothing more for now; in STOP_COPY, the end.
   * EINVAL outside the saving group (and for a device that cannot migrate,
   * as libvfio-user answers).
   */
  read(token: SetLockToken, size: number): Uint8Array {
    this.#assertLocked(token);
    const s = this.#session;
    if (s?.kind !== 'save' || !isSavingState(this.#state)) {
      throw new VfioError('EINVAL', `${this.device.name}: no migration data to read in ${migStateName(this.#state)}`);
    }
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < size) {
      const chunk = s.chunks[0];
      if (chunk === undefined) {
        if (!this.#pull(s)) break;
        continue;
      }
      const take = Math.min(chunk.length, size - got);
      parts.push(chunk.subarray(0, take));
      if (take === chunk.length) s.chunks.shift();
      else s.chunks[0] = chunk.subarray(take);
      got += take;
    }
    s.initialUnread = Math.max(0, s.initialUnread - got);
    // Within one piece: a view, no copy (pieces are never written again).
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(got);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * Makes the next piece of the saving stream (a lazy save produces them
   * as they are read). False at the end. A driver that throws here has
   * failed the save: ERROR.
   */
  #pull(s: Session): boolean {
    for (;;) {
      const source = s.sources[0];
      if (source === undefined) return false;
      let r: IteratorResult<Uint8Array>;
      try {
        r = source.next();
      } catch (err) {
        this.#state = MigState.ERROR;
        this.#session = null;
        throw err;
      }
      if (r.done === true) {
        s.sources.shift();
        continue;
      }
      if (r.value.length > 0) {
        s.chunks.push(r.value);
        return true;
      }
    }
  }

  /**
   * MIG_DATA_WRITE: more of the stream being resumed. EINVAL outside
   * RESUMING (or without migration), ENOSPC past maxStreamBytes; the
   * driver's errno when it refuses the stream's start (the stream written
   * so far is discarded, the device stays RESUMING).
   */
  write(token: SetLockToken, data: Uint8Array): void {
    this.#assertLocked(token);
    const s = this.#session;
    const info = this.#info;
    if (info === null || s?.kind !== 'resume' || this.#state !== MigState.RESUMING) {
      throw new VfioError('EINVAL', `${this.device.name}: migration data is written only while RESUMING, not in ${migStateName(this.#state)}`);
    }
    if (!s.started) this.#checkStart(s, data);
    if (s.bytes + data.length > info.maxStreamBytes) {
      throw new VfioError('ENOSPC', `${this.device.name}: a migration stream of this device holds at most ${info.maxStreamBytes} bytes`);
    }
    const need = s.bytes + data.length;
    if (need > s.buf.length) {
      const bigger = new Uint8Array(Math.min(Math.max(s.buf.length * 2, need, MIN_RESUME_BUFFER), info.maxStreamBytes));
      bigger.set(s.buf.subarray(0, s.bytes));
      s.buf = bigger;
    }
    s.buf.set(data, s.bytes);
    s.bytes = need;
  }

  /** Shows the driver the stream's first bytes (with `data`); a refusal discards the stream. */
  #checkStart(s: Session, data: Uint8Array): void {
    const head = new Uint8Array(Math.min(START_BYTES, s.bytes + data.length));
    head.set(s.buf.subarray(0, Math.min(s.bytes, head.length)));
    if (s.bytes < head.length) head.set(data.subarray(0, head.length - s.bytes), s.bytes);
    try {
      s.started = this.device.migrationCheckStart(head) || head.length === START_BYTES;
    } catch (err) {
      s.buf = new Uint8Array(0);
      s.bytes = 0;
      if (err instanceof VfioError)
        throw new VfioError(err.code, `${this.device.name}: the migration stream was refused: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** VFIO_MIG_GET_PRECOPY_INFO: EINVAL outside PRE_COPY and PRE_COPY_P2P. */
  precopyInfo(token: SetLockToken): PrecopyInfo {
    this.#assertLocked(token);
    this.#need();
    const s = this.#session;
    if ((this.#state !== MigState.PRE_COPY && this.#state !== MigState.PRE_COPY_P2P) || s?.kind !== 'save') {
      throw new VfioError('EINVAL', `${this.device.name}: precopy information exists only in PRE_COPY, not in ${migStateName(this.#state)}`);
    }
    return { initialBytes: s.initialUnread, dirtyBytes: 0 };
  }

  /**
   * Back to RUNNING with no session: after a successful reset, and at the
   * last close. Starts a stopped device again (ERROR if that throws).
   */
  backToRunning(token: SetLockToken): void | Promise<void> {
    this.#assertLocked(token);
    this.#session = null;
    if (!this.#stopped) {
      this.#state = MigState.RUNNING;
      return;
    }
    // A device that cannot be started again is not RUNNING: ERROR.
    this.#state = MigState.ERROR;
    const started = (): void => {
      this.#stopped = false;
      this.#state = MigState.RUNNING;
    };
    return after(this.device.migrationStart(), started);
  }

  // ---- internals --------------------------------------------------------------

  async #step(next: MigStateValue): Promise<void> {
    const cur = this.#state;
    const device = this.device;
    try {
      if (isRunningState(cur) && !isRunningState(next)) {
        await device.migrationStop();
        this.#stopped = true;
      }
      if (cur === MigState.RESUMING) {
        // RESUMING → STOP: the stream is complete; a refused one changes nothing.
        const stream = this.#takeResume();
        try {
          await device.migrationLoad(stream);
        } catch (err) {
          if (err instanceof VfioError) {
            this.#session = newSession('resume');
            throw new VfioError(err.code, `${device.name}: the migration stream was refused: ${err.message}`, { cause: err });
          }
          throw err;
        }
        this.#session = null;
      } else if (next === MigState.RESUMING) {
        this.#session = newSession('resume');
      } else if (isSavingState(next) && !isSavingState(cur)) {
        this.#session = newSession('save');
        if (next !== MigState.STOP_COPY) await this.#save('precopy');
      } else if (isSavingState(cur) && !isSavingState(next)) {
        this.#session = null;
      }
      if (next === MigState.STOP_COPY) await this.#save('stop-copy');
      if (!isRunningState(cur) && isRunningState(next)) {
        await device.migrationStart();
        this.#stopped = false;
      }
      this.#state = next;
    } catch (err) {
      if (!(err instanceof VfioError && cur === MigState.RESUMING && this.#session?.kind === 'resume')) {
        this.#state = MigState.ERROR;
        this.#session = null;
      }
      throw err;
    }
  }

  async #save(stage: 'precopy' | 'stop-copy'): Promise<void> {
    const s = this.#session!;
    const data = await this.device.migrationSave(stage, s.precopied);
    if (data instanceof Uint8Array) s.sources.push([data][Symbol.iterator]());
    else if (data !== null && typeof data === 'object' && Symbol.iterator in data) s.sources.push(data[Symbol.iterator]());
    else throw new TypeError(`${this.device.name}: migrationSave returned no bytes`);
    if (stage === 'precopy') {
      s.precopied = true;
      s.initialUnread = data instanceof Uint8Array ? data.length : 0;
    } else {
      s.initialUnread = 0;
    }
  }

  #takeResume(): Uint8Array {
    const s = this.#session!;
    this.#session = null;
    return s.buf.subarray(0, s.bytes);
  }

  #need(): MigrationInfo {
    if (this.#info === null) throw new VfioError('ENOTTY', `${this.device.name}: this device does not support migration`);
    return this.#info;
  }

  #assertLocked(token: SetLockToken): void {
    const set = this.device[RECORD].set;
    if (!set) throw new VfioError('ENODEV', `${this.device.name}: device has no set (released?)`);
    token.assertHolds(set.lock);
  }
}

/** The migration state of a device, made when first asked for. */
export function migrationOf(device: VfioDevice): DeviceMigration {
  const rec = device[RECORD];
  rec.migration ??= new DeviceMigration(device);
  return rec.migration;
}
