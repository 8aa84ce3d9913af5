/**
 * A TestDevice that migrates: it records every migration hook the core
 * calls, checks that stop and start alternate (never stopped twice, never
 * started while running), saves `saved` (a few bytes) and loads it back,
 * and can be told to fail a hook. Like TestDevice, its hooks park at
 * scheduler points when given one, under the set monitor.
 */
import { MigrationFlags, VfioError } from '../../src/core/index.js';
import type { MigrationInfo } from '../../src/core/index.js';
import { TestDevice, type TestDeviceOptions } from './test-device.js';

export interface MigDeviceOptions extends TestDeviceOptions {
  /** default STOP_COPY | P2P | PRE_COPY */
  flags?: number;
  maxStreamBytes?: number;
}

/** Which hook fails next, and how. */
export type Failure = { hook: 'save' | 'load' | 'stop' | 'start'; error: Error };

export class MigDevice extends TestDevice {
  readonly hooks: string[] = [];
  readonly loaded: Uint8Array[] = [];
  /** what stop-copy saves (precopy saves `header`) */
  saved = Uint8Array.of(1, 2, 3, 4);
  header = Uint8Array.of(0xaa);
  running = true;
  fail: Failure | null = null;
  readonly #flags: number;
  readonly #max: number;

  constructor(options: MigDeviceOptions) {
    super(options);
    this.#flags = options.flags ?? MigrationFlags.STOP_COPY | MigrationFlags.P2P | MigrationFlags.PRE_COPY;
    this.#max = options.maxStreamBytes ?? 64;
  }

  override migrationInfo(): MigrationInfo {
    return { flags: this.#flags, maxStreamBytes: this.#max };
  }

  #failing(hook: Failure['hook']): void {
    if (this.fail?.hook !== hook) return;
    const err = this.fail.error;
    this.fail = null;
    throw err;
  }

  override migrationStop(): void | Promise<void> {
    return this.guarded('migStop', () => {
      this.hooks.push('stop');
      this.#failing('stop');
      if (!this.running) this.violations.push('stopped while stopped');
      this.running = false;
    });
  }

  override migrationStart(): void | Promise<void> {
    return this.guarded('migStart', () => {
      this.hooks.push('start');
      this.#failing('start');
      if (this.running) this.violations.push('started while running');
      this.running = true;
    });
  }

  override migrationSave(stage: 'precopy' | 'stop-copy', precopied: boolean): Uint8Array | Iterable<Uint8Array> | Promise<Uint8Array> {
    return this.guarded('migSave', () => {
      this.hooks.push(`save:${stage}:${precopied}`);
      this.#failing('save');
      if (stage === 'stop-copy' && this.running) this.violations.push('stop-copy saved while running');
      if (stage === 'precopy') return this.header.slice();
      return precopied ? this.saved.slice() : Uint8Array.from([...this.header, ...this.saved]);
    });
  }

  override migrationLoad(stream: Uint8Array): void | Promise<void> {
    return this.guarded('migLoad', () => {
      this.hooks.push(`load:${stream.length}`);
      this.#failing('load');
      if (this.running) this.violations.push('loaded while running');
      if (stream[0] !== this.header[0]) throw new VfioError('EBADMSG', 'the stream has no header');
      this.loaded.push(stream.slice());
      this.saved = stream.slice(1);
    });
  }
}
