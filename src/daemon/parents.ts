/**
 * The parents a daemon serves: one per driver uvfio ships, named as the
 * kernel's samples name theirs. Each names a default type, of which a fresh
 * store gets one auto-started definition.
 */
import { MbochsDriver } from '../drivers/mbochs/index.js';
import { MdpyDriver } from '../drivers/mdpy/index.js';
import { MttyDriver } from '../drivers/mtty/index.js';
import { VirtioBlkDriver } from '../drivers/virtio-blk/index.js';
import type { MdevParentOptions } from '../mdev/index.js';

export interface BuiltinParent extends MdevParentOptions {
  /** Seeded as one auto-start definition when the store is created. */
  defaultType?: string;
}

/** What the parents are built with (the kernel samples' module parameters). */
export interface ParentParams {
  /** mbochs's video memory pool, bytes (mbochs.ko's `mem`); default 256 MiB. */
  mbochsPoolBytes?: number | undefined;
}

/** Every parent uvfio ships, freshly built (drivers keep per-parent state: mtty's ports, mbochs's memory). */
export function builtinParents(params: ParentParams = {}): BuiltinParent[] {
  return [
    { name: 'mtty', driver: new MttyDriver(), defaultType: 'mtty-1' },
    // The defaults are usable desktops: 1024x768, and up to 1920x1440 in 16 MiB.
    { name: 'mdpy', driver: new MdpyDriver(), defaultType: 'mdpy-xga' },
    {
      name: 'mbochs',
      driver: new MbochsDriver(params.mbochsPoolBytes === undefined ? {} : { poolBytes: params.mbochsPoolBytes }),
      defaultType: 'mbochs-medium',
    },
    // No default device: each needs the image it serves (attribute path).
    { name: 'virtio-blk', driver: new VirtioBlkDriver() },
  ];
}
