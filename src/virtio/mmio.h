/*
 * virtio-mmio transport (virtio 1.x, register layout version 2). Each device owns a
 * 4 KiB MMIO window and one level-triggered IOAPIC pin; the guest finds it through
 * the ACPI DSDT (LNRO0005) or `virtio_mmio.device=` on its command line.
 */
#ifndef TERN_VIRTIO_MMIO_H
#define TERN_VIRTIO_MMIO_H

#include <stdint.h>

#include "bus/bus.h"
#include "virtio/device.h"

struct aml;

struct virtio_mmio {
	struct virtio_dev *dev;
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
/* The MMIO window handler (exposed for unit tests and fuzzing). */
void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Writes Device(VRTn) with _HID "LNRO0005", its window and interrupt into the DSDT. */
void virtio_mmio_dsdt(struct aml *a, const struct virtio_mmio *t, unsigned int index);

#endif
