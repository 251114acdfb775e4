/* VM Generation ID: the ID in guest RAM, its change notification, and its DSDT device. */
#include "devices/vmgenid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "core/log.h"

_Static_assert(VMGENID_LEN == LAYOUT_VMGENID_SIZE, "layout.h reserves the whole ID");

void vmgenid_init(struct vmgenid *g, const struct guest_mem *mem, struct ged *ged)
{
	g->mem = mem;
	g->ged = ged;
	g->addr = LAYOUT_VMGENID_ADDR;
}

static int random_bytes(uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vmgenid_write_new(struct vmgenid *g)
{
	uint8_t *id = guest_mem_ptr(g->mem, g->addr, VMGENID_LEN);
	uint8_t next[VMGENID_LEN];
	int r;

	if (!id)
		return -EFAULT;
	/*
	 * The guest acts only on a change (Linux compares with the ID it last saw), and all
	 * zeroes would look like memory nobody wrote: neither may come out, however unlikely.
	 */
	static const uint8_t zero[VMGENID_LEN];
	do {
		if ((r = random_bytes(next, sizeof(next))))
			return r;
	} while (!memcmp(next, id, sizeof(next)) || !memcmp(next, zero, sizeof(next)));
	memcpy(id, next, sizeof(next));
	return 0;
}

void vmgenid_changed(struct vmgenid *g)
{
	int r = vmgenid_write_new(g);

	if (r) {
		log_warn("vmgenid: cannot write a new generation ID: %s", strerror(-r));
		return;
	}
	/* The ID is in RAM before the GED raises the event that makes the guest reread it. */
	ged_raise(g->ged, GED_EVT_VMGENID);
	log_info("vmgenid: new generation ID, guest notified through the GED on GSI %u",
		 g->ged->gsi);
}

void vmgenid_dsdt(struct aml *a, const struct vmgenid *g)
{
	size_t dev, m, pkg;

	/*
	 * Linux's driver matches "VMGENCTR" or "VM_GEN_COUNTER"; the spec (and Windows) wants
	 * _CID "VM_Gen_Counter", which ACPICA upper-cases when it reads a _CID, so either
	 * would do for Linux. iasl rejects "VMGENCTR" as a _HID (not hex after four letters);
	 * the interpreter does not care. ADDR returns Package { low 32 bits, high 32 bits }.
	 * The GED's _EVT notifies this device (ged_dsdt()).
	 */
	dev = aml_device_open(a, "VGEN");
	aml_name_string(a, "_HID", "VMGENCTR");
	aml_name_string(a, "_CID", "VM_Gen_Counter");
	aml_name_string(a, "_DDN", "VM_Gen_Counter");
	m = aml_method_open(a, "ADDR", 0, false);
	aml_return(a);
	pkg = aml_package_open(a, 2);
	aml_integer(a, g->addr & 0xffffffffu);
	aml_integer(a, g->addr >> 32);
	aml_close(a, pkg);
	aml_close(a, m);
	aml_close(a, dev);
}
