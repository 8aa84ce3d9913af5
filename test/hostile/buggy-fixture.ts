/**
 * The attacker device of server-process.ts: a test fixture device with a
 * bug a client can reach (a read of BAR0 at THROW_AT throws a TypeError).
 */
import { PciRegion } from '../../src/core/index.js';
import { FixtureDevice } from '../vfio-user/fixture-device.js';

/** A read of the attacker's BAR0 at this offset throws a TypeError: a driver bug. */
export const THROW_AT = 0xf00;

export class BuggyFixture extends FixtureDevice {
  override regionRead(index: number, offset: number, dest: Uint8Array): void | Promise<void> {
    if (index === PciRegion.BAR0 && offset === THROW_AT) throw new TypeError('a driver bug');
    return super.regionRead(index, offset, dest);
  }
}
