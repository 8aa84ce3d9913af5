/**
 * A takeover's own device file on each device: bound to an empty iommufd
 * context (it maps no client memory), used to drive the device's migration
 * state in handover mode (VfioDevice.handover) on both sides: save (the
 * daemon handing over) and load (the one taking over).
 */
import { VfioError } from '../base/errors.js';
import { MigState } from '../base/uapi.js';
import type { DeviceFile } from '../core/device-file.js';
import type { VfioDevice } from '../core/device.js';
import { IommufdContext } from '../iommufd/context.js';

/** Bytes asked for per read of the saving stream. */
const CHUNK = 1 << 20;

export class HandoverFile {
  private constructor(
    readonly device: VfioDevice,
    private readonly file: DeviceFile,
    private readonly ctx: IommufdContext,
  ) {}

  static async open(device: VfioDevice): Promise<HandoverFile> {
    const file = device.openFile();
    const ctx = new IommufdContext({ maxMappings: 0 });
    try {
      await file.bindIommufd(ctx);
    } catch (err) {
      await file.close();
      ctx.destroy();
      throw err;
    }
    return new HandoverFile(device, file, ctx);
  }

  /**
   * Stops the device (STOP_COPY, handover mode) and reads its whole stream.
   * EBUSY when a client is migrating it (not RUNNING); the device's errno
   * when it cannot migrate. The device stays stopped: resume() undoes it.
   */
  async save(): Promise<Uint8Array> {
    let state: number;
    try {
      state = await this.file.migrationState();
    } catch (err) {
      throw new VfioError('EOPNOTSUPP', `${this.device.name} cannot be handed over: it has no migration state (${(err as Error).message})`);
    }
    if (state !== MigState.RUNNING) {
      throw new VfioError('EBUSY', `${this.device.name} is not RUNNING (migration state ${state}): a client is migrating it; try again later`);
    }
    this.device.handover = true;
    try {
      await this.file.setMigrationState(MigState.STOP_COPY);
      const parts: Uint8Array[] = [];
      for (;;) {
        const c = await this.file.migrationDataRead(CHUNK);
        parts.push(c);
        if (c.length < CHUNK) break;
      }
      return Buffer.concat(parts);
    } finally {
      this.device.handover = false;
    }
  }

  /** Loads a stream save() made elsewhere; the device is left stopped (STOP) until resume(). */
  async load(stream: Uint8Array): Promise<void> {
    this.device.handover = true;
    try {
      await this.file.setMigrationState(MigState.RESUMING);
      await this.file.migrationDataWrite(stream);
      await this.file.setMigrationState(MigState.STOP);
    } finally {
      this.device.handover = false;
    }
  }

  /** Back to RUNNING (the core walks the arcs from wherever it is). */
  async resume(): Promise<void> {
    await this.file.setMigrationState(MigState.RUNNING);
  }

  async close(): Promise<void> {
    await this.file.close();
    this.ctx.destroy();
  }
}
