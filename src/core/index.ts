/** The core device model: what drivers build on and transports drive. */
export * from '../base/errors.js';
export * from '../base/uapi.js';
export { VfioDevice, type DeviceOptions, type RegisterOptions, type RegionMmap, type DeviceState } from './device.js';
export { DeviceFile, type FileState, type HotResetDevice } from './device-file.js';
export { DeviceSet } from './device-set.js';
export { SetLock, SetLockToken } from './set-lock.js';
export { VfioCore, type VfioCoreOptions, type VfioCoreEvents } from './vfio-core.js';
export { VfioGroup } from './group.js';
export { VfioContainer } from './container.js';
export { type MigrationInfo } from './device-migration.js';
export { hasMigState, isMigState, migrationPath, migStateName, nextMigState } from './migration-fsm.js';
export {
  FieldReader,
  FieldWriter,
  MIG_STREAM_MAGIC,
  MigStreamWriter,
  readMigStream,
  type MigStreamExpectation,
  type MigStreamHeader,
} from './migration-stream.js';
