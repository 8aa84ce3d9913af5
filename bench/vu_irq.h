/*
 * VFIO_USER_DEVICE_SET_IRQS on the wire, beside ../shared/bench/vu_wire.h:
 * what irq_client sends and raw_irq_server answers (vfio-user spec 0.9.x,
 * host-endian, packed).
 */
#ifndef VU_IRQ_H
#define VU_IRQ_H

#include <stdint.h>

#define CMD_SET_IRQS 8
#define IRQ_INTX 0
#define IRQ_DATA_NONE (1u << 0)
#define IRQ_DATA_EVENTFD (1u << 2)
#define IRQ_ACTION_UNMASK (1u << 4)
#define IRQ_ACTION_TRIGGER (1u << 5)

struct irq_set {
    uint32_t argsz, flags, index, start, count;
} __attribute__((packed));

_Static_assert(sizeof(struct irq_set) == 20, "irq_set size");

#endif
