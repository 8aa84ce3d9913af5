/**
 * The legacy container (/dev/vfio/vfio): groups attached to it share one
 * address space. Underneath it is an iommufd context, as the kernel's
 * iommufd compat layer does, so both paths reach memory the same way.
 */
import { VfioError } from '../base/errors.js';
import type { VfioGroup } from './group.js';
import { IommufdContext } from '../iommufd/context.js';
import type { DmaBacking } from '../iommufd/dma-backing.js';
import type { MapOptions } from '../iommufd/address-space.js';

export class VfioContainer {
  /** The address space of every device opened through this container's groups. */
  readonly context = new IommufdContext();
  private readonly attachedGroups = new Set<VfioGroup>();
  private iommu = false;

  get groups(): readonly VfioGroup[] {
    return [...this.attachedGroups];
  }

  /** VFIO_SET_IOMMU has been done. */
  get iommuSet(): boolean {
    return this.iommu;
  }

  /** VFIO_SET_IOMMU: needs at least one group; once only (EBUSY). */
  setIommu(): void {
    if (this.attachedGroups.size === 0) throw new VfioError('EINVAL', 'set a group on the container before its IOMMU');
    if (this.iommu) throw new VfioError('EBUSY', 'the container IOMMU is already set');
    this.iommu = true;
  }

  /** VFIO_IOMMU_MAP_DMA */
  map(iova: number, length: number, backing: DmaBacking, options?: MapOptions): void {
    this.assertIommu();
    this.context.ioas.map(iova, length, backing, options);
  }

  /** VFIO_IOMMU_UNMAP_DMA; returns the bytes unmapped. */
  unmap(iova: number, length: number): number {
    this.assertIommu();
    return this.context.ioas.unmap(iova, length);
  }

  /** VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL. */
  unmapAll(): number {
    this.assertIommu();
    return this.context.ioas.unmapAll();
  }

  /** @internal VfioGroup.setContainer() */
  attachGroup(group: VfioGroup): void {
    this.attachedGroups.add(group);
  }

  /** @internal VfioGroup.unsetContainer(): the last group out resets the container. */
  detachGroup(group: VfioGroup): void {
    this.attachedGroups.delete(group);
    if (this.attachedGroups.size === 0 && this.iommu) {
      this.context.ioas.unmapAll();
      this.iommu = false;
    }
  }

  private assertIommu(): void {
    if (!this.iommu) throw new VfioError('EINVAL', 'the container has no IOMMU set');
  }
}
