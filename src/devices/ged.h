/*
 * Generic Event Device (GED, ACPI0013; ACPI 6.5 section 5.6.9): how tern signals device
 * events to the guest. Hardware-reduced ACPI has no GPE blocks and no fixed-feature
 * power button, so events go through one edge-triggered interrupt and an event selector
 * register, as QEMU's hw/acpi/generic_event_device.c does:
 *
 *   - tern sets an event's bit in the selector and pulses the GED's interrupt;
 *   - Linux's evged driver runs the GED's _EVT method, which reads the selector (the read
 *     clears the bits it returns) and notifies the device behind each bit that was set:
 *     bit 0 \_SB.VGEN (VM generation ID changed), bit 1 \_SB.PWRB (power button pressed).
 *
 * The selector is a read-only 32-bit register on I/O ports PORT_GED..+3; writes are
 * ignored. The power button is a control-method one (PNP0C0C), which Linux's button
 * driver turns into a KEY_POWER press on its input device for userspace to act on.
 */
#ifndef TERN_DEVICES_GED_H
#define TERN_DEVICES_GED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/machine.h"

struct aml;
struct vmstate_cursor;
struct vmstate_writer;

#define GED_STATE_VERSION 1 /* section version of VMSTATE_TAG_GED */
#define GED_REG_LEN 4	    /* the selector: one 32-bit register */

/* Event bits in the selector: tern's own numbering, which only its _EVT reads. */
#define GED_EVT_VMGENID (1u << 0)
#define GED_EVT_POWER_BUTTON (1u << 1)
#define GED_EVT_ALL (GED_EVT_VMGENID | GED_EVT_POWER_BUTTON)

/*
 * What a control-method power button is notified with when pressed (Linux's button
 * driver: ACPI_BUTTON_NOTIFY_STATUS).
 */
#define GED_NOTIFY_POWER_BUTTON 0x80

struct ged {
	const struct machine *machine;
	unsigned int gsi; /* an IOAPIC pin, edge-triggered, active high */
	uint16_t port;	  /* the selector's first port */
	/*
	 * Events raised and not yet read by the guest. The API and restore raise them on the
	 * main thread while vCPU threads read the register: atomic, so an event raised between
	 * a guest's read and its clear is never lost.
	 */
	_Atomic uint32_t pending;
};

void ged_init(struct ged *g, const struct machine *m, unsigned int gsi, uint16_t port);
/*
 * Sets events (GED_EVT_* bits) in the selector, then pulses the interrupt. Call once
 * whatever the guest reads for the event (a new VM generation ID) is in place.
 */
void ged_raise(struct ged *g, uint32_t events);
/* The power button is pressed (and released): ged_raise(GED_EVT_POWER_BUTTON), logged. */
void ged_power_button(struct ged *g);
/*
 * Handler for ports port..port+GED_REG_LEN-1. A read returns the bytes of the selector it
 * covers and clears their bits; bytes of an access past the register read as 0xff (no
 * device there); writes do nothing.
 */
void ged_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/*
 * Emits Device(GED0) (its interrupt, the selector's OperationRegion and Field, and _EVT)
 * and Device(PWRB), the power button. Call inside Scope(\_SB), as acpi_config.dsdt_devices
 * runs, next to vmgenid_dsdt(): _EVT notifies \_SB.VGEN and \_SB.PWRB by full path.
 */
void ged_dsdt(struct aml *a, const struct ged *g);

/*
 * Snapshot state, inside a section the caller opened (VMSTATE_TAG_GED, version
 * GED_STATE_VERSION): the events the guest has not read yet. Always 0.
 */
int ged_save(struct ged *g, struct vmstate_writer *w);
/*
 * Loads a ged_save() payload. Untrusted: -EINVAL with err, and g unchanged, for a payload
 * of the wrong size or an event bit tern does not have. Raises no interrupt: the edge of
 * an event the guest had not taken yet is in the restored irqchip state.
 */
int ged_restore(struct ged *g, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
