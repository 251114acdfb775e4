/*
 * VM Generation ID (Microsoft's "Virtual Machine Generation ID" spec, which Linux's
 * drivers/virt/vmgenid.c follows): a random 128-bit ID in guest RAM that changes whenever
 * the VM may have been duplicated (a snapshot restored as a clone), so the guest can
 * reseed its RNG and drop anything else that must not be shared between copies.
 *
 * The ID lives at LAYOUT_VMGENID_ADDR, in the e820-reserved ROM area. The DSDT carries a
 * VGEN device whose ADDR method returns that address; a change is signalled as the
 * Generic Event Device's GED_EVT_VMGENID event (devices/ged.h), on which the GED's _EVT
 * notifies VGEN (0x80). Nothing is saved in snapshots: the ID is in guest RAM, the rest is
 * fixed, and an event the guest has not read yet is the GED's state.
 */
#ifndef TERN_DEVICES_VMGENID_H
#define TERN_DEVICES_VMGENID_H

#include <stdint.h>

#include "devices/ged.h"
#include "kvm/guest_mem.h"

struct aml;

#define VMGENID_LEN 16
#define VMGENID_NOTIFY_CHANGED 0x80 /* the Notify value the spec and Linux expect */

struct vmgenid {
	const struct guest_mem *mem;
	struct ged *ged; /* signals changes */
	uint64_t addr;	 /* guest-physical address of the 16-byte ID */
};

void vmgenid_init(struct vmgenid *g, const struct guest_mem *mem, struct ged *ged);
/*
 * Writes a fresh random ID (getrandom) into guest RAM, different from the one there.
 * For boot, before the guest runs. 0, or -errno (-EFAULT: the address is not in RAM).
 */
int vmgenid_write_new(struct vmgenid *g);
/*
 * The VM has been duplicated: writes a new ID and raises the GED's event so the guest
 * rereads it. Call once the VM's memory and irqchip state are in place (after a
 * restore has loaded them: loading the IOAPIC afterwards would not lose the ID, but
 * could lose the edge). Failures are logged; the guest then keeps its old ID.
 */
void vmgenid_changed(struct vmgenid *g);
/*
 * Emits Device(VGEN). Must be called inside Scope(\_SB), which is where
 * acpi_config.dsdt_devices runs, since the GED notifies \_SB.VGEN by its full path.
 */
void vmgenid_dsdt(struct aml *a, const struct vmgenid *g);

#endif
