/*
 * virtio-mmio transport (virtio 1.x, register layout version 2). Each device owns a
 * 4 KiB MMIO window and one level-triggered IOAPIC pin; the guest finds it through
 * the ACPI DSDT (LNRO0005) or `virtio_mmio.device=` on its command line. A queue's kick
 * (its index written to QueueNotify) arrives on a KVM ioeventfd where the VMM set one up
 * (src/vmm/virtio_setup.c), else as an exit that virtio_mmio_io() serves.
 */
#ifndef TERN_VIRTIO_MMIO_H
#define TERN_VIRTIO_MMIO_H

#include <stdint.h>

#include "bus/bus.h"
#include "virtio/device.h"

struct aml;
struct vmstate_cursor;
struct vmstate_writer;

#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050 /* the register a driver writes a queue's index to */

struct virtio_mmio;

/* A queue's kick on an eventfd a KVM ioeventfd signals (virtio_mmio_kick_ready reads it). */
struct virtio_mmio_kick {
	struct virtio_mmio *t;
	unsigned int q;
	int fd; /* -1: this queue's kicks exit to the vCPU thread */
};

struct virtio_mmio {
	struct virtio_dev *dev;
	struct virtio_mmio_kick kick[VIRTIO_MAX_QUEUES];
	uint64_t base;
	uint32_t gsi;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t isr;
	int irq_level;
	void (*set_irq)(void *ctx, unsigned int gsi, int level);
	void *irq_ctx;
};

/*
 * Attaches d at base with interrupt gsi: registers the window on the MMIO bus and
 * sets d's interrupt hooks. set_irq raises/lowers the (level) interrupt line.
 */
int virtio_mmio_attach(struct virtio_mmio *t, struct virtio_dev *d, struct bus *mmio, uint64_t base,
		       uint32_t gsi, void (*set_irq)(void *ctx, unsigned int gsi, int level),
		       void *irq_ctx);
/*
 * The event loop's handler for a kick's eventfd: the same notify a QueueNotify write
 * makes, without the exit to the vCPU thread (the caller registered the ioeventfd).
 */
void virtio_mmio_kick_ready(void *opaque, uint32_t events);
/* The MMIO window handler (exposed for unit tests and fuzzing). */
void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Writes Device(VRTn) with _HID "LNRO0005", its window and interrupt into the DSDT. */
void virtio_mmio_dsdt(struct aml *a, const struct virtio_mmio *t, unsigned int index);

/*
 * Snapshot state: the payload of d's VMSTATE_TAG_VIRTIO section (virtio/device.h), the
 * core part then u32 device and driver feature selects, u32 queue select, u32 interrupt
 * status. Save takes the device lock; 0, or -EBUSY while requests are in flight.
 */
int virtio_mmio_save(struct virtio_mmio *t, struct vmstate_writer *w);
/*
 * Loads a virtio_mmio_save() payload into a transport and device set up as at boot from
 * the same configuration: everything is checked first (-EINVAL, err naming the device
 * and field, nothing changed), then committed, and the level interrupt line raised again
 * when the interrupt status is not clear (KVM keeps a line's level outside the IOAPIC
 * state, so the line is driven again whichever order the irqchip is restored in).
 */
int virtio_mmio_restore(struct virtio_mmio *t, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
