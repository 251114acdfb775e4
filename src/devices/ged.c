/* Generic Event Device: the event selector register, its interrupt and its DSDT devices. */
#include "devices/ged.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "core/log.h"
#include "core/util.h"
#include "devices/vmgenid.h"
#include "vmstate/vmstate.h"

/* Who _EVT notifies for each selector bit, and with what. */
static const struct {
	uint32_t bit;
	const char *path;
	uint8_t value;
} targets[] = {
	{ GED_EVT_VMGENID, "\\_SB.VGEN", VMGENID_NOTIFY_CHANGED },
	{ GED_EVT_POWER_BUTTON, "\\_SB.PWRB", GED_NOTIFY_POWER_BUTTON },
};

void ged_init(struct ged *g, const struct machine *m, unsigned int gsi, uint16_t port)
{
	g->machine = m;
	g->gsi = gsi;
	g->port = port;
	atomic_init(&g->pending, 0);
}

void ged_raise(struct ged *g, uint32_t events)
{
	atomic_fetch_or(&g->pending, events);
	/*
	 * An edge, as the GED's _CRS says: it reaches the LAPIC as it is raised and stays
	 * pending there (IRR) even while the guest still runs _EVT for an earlier one, where a
	 * level pulse this short would be dropped while the pin's remote IRR is set. The line
	 * is left low for the next. The bit is set before the ioctl that raises the line, so
	 * the _EVT the edge starts reads it; two events before one _EVT run are both read by
	 * it, and the second edge's run then reads nothing and notifies nobody.
	 */
	machine_set_irq(g->machine, g->gsi, 1);
	machine_set_irq(g->machine, g->gsi, 0);
}

void ged_power_button(struct ged *g)
{
	ged_raise(g, GED_EVT_POWER_BUTTON);
	log_info("power button pressed: guest notified on GSI %u", g->gsi);
}

void ged_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct ged *g = opaque;
	uint32_t mask = 0, got;

	if (is_write)
		return; /* read-only: reading is what acknowledges an event */
	memset(data, 0xff, len);
	if (offset >= GED_REG_LEN)
		return;
	/*
	 * Only the bytes read are cleared, in one atomic step with the read, so a guest that
	 * reads byte by byte loses nothing and an event raised meanwhile stays pending.
	 */
	for (uint32_t i = 0; i < len && offset + i < GED_REG_LEN; i++)
		mask |= 0xffu << (8 * (offset + i));
	got = atomic_fetch_and(&g->pending, ~mask) & mask;
	for (uint32_t i = 0; i < len && offset + i < GED_REG_LEN; i++)
		data[i] = (uint8_t)(got >> (8 * (offset + i)));
}

void ged_dsdt(struct aml *a, const struct ged *g)
{
	size_t dev, crs, field, m, cond;

	/*
	 * Linux's evged requests the _CRS interrupt and runs _EVT(GSI) from its threaded
	 * handler; the one interrupt carries every event, so _EVT ignores its argument:
	 *
	 *   Store (ESEL, Local0)
	 *   If (And (Local0, bit, Zero)) { Notify (target, value) }   for each bit
	 */
	dev = aml_device_open(a, "GED0");
	aml_name_string(a, "_HID", "ACPI0013");
	aml_name(a, "_CRS");
	crs = aml_restemplate_open(a);
	aml_res_interrupt(a, g->gsi, AML_INT_EDGE);
	aml_restemplate_close(a, crs);
	aml_operation_region(a, "EREG", AML_REGION_SYSTEM_IO, g->port, GED_REG_LEN);
	/* One 32-bit access: the read that returns the events is the one that clears them. */
	field = aml_field_open(a, "EREG", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(a, "ESEL", 8 * GED_REG_LEN);
	aml_close(a, field);
	m = aml_method_open(a, "_EVT", 1, false);
	aml_store(a);
	aml_namestring(a, "ESEL");
	aml_local(a, 0);
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		cond = aml_if_open(a);
		aml_and(a);
		aml_local(a, 0);
		aml_integer(a, targets[i].bit);
		aml_null_name(a);
		aml_notify(a, targets[i].path, targets[i].value);
		aml_close(a, cond);
	}
	aml_close(a, m);
	aml_close(a, dev);

	/* Linux's button driver binds PNP0C0C and reports each 0x80 notify as KEY_POWER. */
	dev = aml_device_open(a, "PWRB");
	aml_name_eisaid(a, "_HID", "PNP0C0C");
	aml_name_integer(a, "_UID", 0);
	aml_close(a, dev);
}

int ged_save(struct ged *g, struct vmstate_writer *w)
{
	vmstate_put_u32(w, atomic_load(&g->pending));
	return 0;
}

int ged_restore(struct ged *g, struct vmstate_cursor *c, char *err, size_t errlen)
{
	uint32_t pending = vmstate_get_u32(c);

	if (vmstate_cursor_done(c))
		return vmstate_cursor_size_error(c, "ged", err, errlen);
	if (pending & ~GED_EVT_ALL)
		return fail_msg(err, errlen, -EINVAL,
				"ged: pending events 0x%x: only 0x%x are events this tern-vmm has",
				pending, GED_EVT_ALL);
	atomic_store(&g->pending, pending);
	return 0;
}
