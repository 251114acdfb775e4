/*
 * Tests for the Generic Event Device: the event selector register (read-to-clear, byte by
 * byte, bounds), what raising an event signals, the exact AML of Device(GED0) and
 * Device(PWRB) (opcodes from the ACPI 6.5 opcode table, section 20.3), and its snapshot
 * section.
 */
#include <errno.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "core/log.h"
#include "core/util.h"
#include "devices/ged.h"
#include "devstate.h"
#include "unit.h"

struct irq_log {
	unsigned int n;
	unsigned int irq[4];
	int level[4];
};

static void record_irq(void *ctx, unsigned int irq, int level)
{
	struct irq_log *l = ctx;

	if (l->n < 4) {
		l->irq[l->n] = irq;
		l->level[l->n] = level;
	}
	l->n++;
}

static void no_stop(void *ctx, enum machine_stop why, int status)
{
	(void)ctx;
	(void)why;
	(void)status;
	CHECK(!"the GED stopped the machine");
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

/* A read of len bytes at offset, as a vCPU's port access reaches the handler. */
static uint64_t rd(struct ged *g, uint64_t offset, uint32_t len)
{
	uint8_t b[8];
	uint64_t v = 0;

	memset(b, 0x5a, sizeof(b));
	ged_io(g, offset, b, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

TEST(ged_raise_sets_the_bit_then_pulses_an_edge)
{
	struct irq_log log = { 0 };
	struct machine m = { record_irq, no_stop, &log };
	struct ged g;

	ged_init(&g, &m, IRQ_GED, PORT_GED);
	CHECK(atomic_load(&g.pending) == 0 && log.n == 0);
	ged_raise(&g, GED_EVT_VMGENID);
	CHECK(atomic_load(&g.pending) == GED_EVT_VMGENID);
	CHECK(log.n == 2 && log.irq[0] == IRQ_GED && log.level[0] == 1 && log.irq[1] == IRQ_GED &&
	      log.level[1] == 0);

	enum log_level level = log_get_level();
	log_set_level(LOG_WARN); /* the info line on each press */
	ged_power_button(&g);
	log_set_level(level);
	/* Both wait for the guest: one _EVT run reads and acknowledges the two. */
	CHECK(atomic_load(&g.pending) == (GED_EVT_VMGENID | GED_EVT_POWER_BUTTON));
	CHECK(log.n == 4 && log.irq[2] == IRQ_GED && log.level[2] == 1 && log.level[3] == 0);
}

TEST(ged_selector_read_clears_what_it_returns)
{
	struct irq_log log = { 0 };
	struct machine m = { record_irq, no_stop, &log };
	struct ged g;

	ged_init(&g, &m, IRQ_GED, PORT_GED);
	CHECK(rd(&g, 0, 4) == 0);
	ged_raise(&g, GED_EVT_POWER_BUTTON);
	CHECK(rd(&g, 0, 4) == GED_EVT_POWER_BUTTON);
	CHECK(rd(&g, 0, 4) == 0); /* acknowledged */

	/* A press is pending until read, however many presses came. */
	ged_raise(&g, GED_EVT_POWER_BUTTON);
	ged_raise(&g, GED_EVT_POWER_BUTTON);
	ged_raise(&g, GED_EVT_VMGENID);
	CHECK(rd(&g, 0, 4) == GED_EVT_ALL);
	CHECK(rd(&g, 0, 4) == 0);

	/* Writes acknowledge nothing and set nothing. */
	uint8_t ones[4] = { 0xff, 0xff, 0xff, 0xff };
	ged_raise(&g, GED_EVT_VMGENID);
	ged_io(&g, 0, ones, 4, true);
	CHECK(atomic_load(&g.pending) == GED_EVT_VMGENID);
	CHECK(rd(&g, 0, 4) == GED_EVT_VMGENID);
}

TEST(ged_selector_bytes_and_bounds)
{
	struct irq_log log = { 0 };
	struct machine m = { record_irq, no_stop, &log };
	struct ged g;

	ged_init(&g, &m, IRQ_GED, PORT_GED);
	/* Bits above the events are never set: a test value reaches every byte. */
	atomic_store(&g.pending, 0x44332211u);
	/* A byte read returns and clears its own byte only. */
	CHECK(rd(&g, 1, 1) == 0x22);
	CHECK(atomic_load(&g.pending) == 0x44330011u);
	CHECK(rd(&g, 1, 1) == 0);
	CHECK(rd(&g, 2, 2) == 0x4433);
	CHECK(atomic_load(&g.pending) == 0x00000011u);
	/* An access past the register (the bus passes any length from an offset inside it):
	 * the bytes outside read as an unclaimed bus, and nothing outside is cleared. */
	atomic_store(&g.pending, 0x44332211u);
	CHECK(rd(&g, 3, 4) == 0xffffff44u);
	CHECK(atomic_load(&g.pending) == 0x00332211u);
	CHECK(rd(&g, 0, 8) == 0xffffffff00332211ull);
	CHECK(atomic_load(&g.pending) == 0);
	/* An offset past the register (never from the bus) touches nothing. */
	atomic_store(&g.pending, GED_EVT_ALL);
	CHECK(rd(&g, 4, 4) == 0xffffffffu);
	CHECK(rd(&g, UINT64_MAX, 8) == UINT64_MAX);
	CHECK(atomic_load(&g.pending) == GED_EVT_ALL);
	CHECK(log.n == 0);
}

static void dsdt_of(const struct ged *g, uint8_t *out, size_t cap, struct aml *a)
{
	aml_init(a, out, cap);
	ged_dsdt(a, g);
}

TEST(ged_dsdt_bytes)
{
	static const uint8_t hid[] = "\x08_HID\x0d"
				     "ACPI0013";
	/* Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh,
	 * Exclusive) { 23 } }): consumer | edge = 0x03, one GSI; the end tag's checksum is
	 * patched in below. */
	static const uint8_t crs[] = { 0x08, '_',  'C',	 'R',  'S',  0x11, 0x0e, 0x0a, 0x0b, 0x89,
				       0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00, 0x00, 0x79, 0x00 };
	/* OperationRegion (EREG, SystemIO, 0x604, 4) */
	static const uint8_t region[] = { 0x5b, 0x80, 'E',  'R',  'E',	'G',
					  0x01, 0x0b, 0x04, 0x06, 0x0a, 0x04 };
	/* Field (EREG, DWordAcc, NoLock, WriteAsZeros) { ESEL, 32 } */
	static const uint8_t field[] = { 0x5b, 0x81, 0x0b, 'E', 'R', 'E', 'G',
					 0x43, 'E',  'S',  'E', 'L', 0x20 };
	/*
	 * Method (_EVT, 1) {
	 *     Store (ESEL, Local0)
	 *     If (And (Local0, 1, Zero)) { Notify (\_SB.VGEN, 0x80) }
	 *     If (And (Local0, 2, Zero)) { Notify (\_SB.PWRB, 0x80) }
	 * }
	 */
	static const uint8_t evt[] = {
		0x14, 0x33, '_',  'E',	'V',  'T',  0x01, 0x70, 'E',  'S',  'E',  'L',	0x60,
		0xa0, 0x12, 0x7b, 0x60, 0x01, 0x00, 0x86, 0x5c, 0x2e, '_',  'S',  'B',	'_',
		'V',  'G',  'E',  'N',	0x0a, 0x80, 0xa0, 0x13, 0x7b, 0x60, 0x0a, 0x02, 0x00,
		0x86, 0x5c, 0x2e, '_',	'S',  'B',  '_',  'P',	'W',  'R',  'B',  0x0a, 0x80,
	};
	/* Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) } */
	static const uint8_t pwrb[] = { 0x5b, 0x82, 0x15, 'P', 'W',  'R',  'B',	 0x08,
					'_',  'H',  'I',  'D', 0x0c, 0x41, 0xd0, 0x0c,
					0x0c, 0x08, '_',  'U', 'I',  'D',  0x00 };
	uint8_t want_crs[sizeof(crs)], out[512];
	struct ged g;
	struct aml a;

	memcpy(want_crs, crs, sizeof(crs));
	want_crs[sizeof(crs) - 1] = (uint8_t)-acpi_checksum(crs + 9, sizeof(crs) - 10);
	ged_init(&g, NULL, IRQ_GED, PORT_GED);
	CHECK(IRQ_GED == 23 && PORT_GED == 0x604);
	dsdt_of(&g, out, sizeof(out), &a);
	REQUIRE(a.err == 0);

	/* Device (GED0) first, its 2-byte PkgLength running exactly to Device (PWRB). */
	REQUIRE(a.len > 8 && out[0] == 0x5b && out[1] == 0x82 && (out[2] >> 6) == 1);
	CHECK(memcmp(out + 4, "GED0", 4) == 0);
	size_t ged_end = 2 + ((out[2] & 0x0fu) | (size_t)out[3] << 4);
	CHECK(ged_end + sizeof(pwrb) == a.len);
	CHECK(memcmp(out + ged_end - sizeof(evt), evt, sizeof(evt)) == 0);
	CHECK(memcmp(out + ged_end, pwrb, sizeof(pwrb)) == 0);
	CHECK(contains(out, ged_end, hid, sizeof(hid)));
	CHECK(contains(out, ged_end, want_crs, sizeof(want_crs)));
	CHECK(contains(out, ged_end, region, sizeof(region)));
	CHECK(contains(out, ged_end, field, sizeof(field)));

	/* Another pin and port change the _CRS and the region, nothing else. */
	ged_init(&g, NULL, 0x1234, 0x5678);
	dsdt_of(&g, out, sizeof(out), &a);
	REQUIRE(a.err == 0);
	CHECK(contains(out, a.len, "\x89\x06\x00\x03\x01\x34\x12\x00\x00", 9));
	CHECK(contains(out, a.len,
		       "\x5b\x80"
		       "EREG\x01\x0b\x78\x56\x0a\x04",
		       12));
	CHECK(contains(out, a.len, evt, sizeof(evt)) && contains(out, a.len, pwrb, sizeof(pwrb)));
}

TEST(ged_dsdt_fails_cleanly_when_short)
{
	uint8_t full[512], out[512 + 16];
	struct ged g;
	struct aml a;

	ged_init(&g, NULL, IRQ_GED, PORT_GED);
	dsdt_of(&g, full, sizeof(full), &a);
	REQUIRE(a.err == 0);
	size_t whole = a.len;
	for (size_t cap = 0; cap < whole; cap++) {
		memset(out, 0xa5, sizeof(out));
		dsdt_of(&g, out, cap, &a);
		CHECK(a.err == -ENOSPC && a.len <= cap);
		for (size_t i = cap; i < sizeof(out); i++)
			if (out[i] != 0xa5) {
				CHECK(!"ged_dsdt wrote past the cap");
				break;
			}
	}
}

TEST(aml_operation_region_and_field)
{
	uint8_t out[64];
	struct aml a;
	size_t f;

	/* OperationRegion (REG0, SystemMemory, 0xfea00000, 0x10) and a Field with two units,
	 * the second wider than one PkgLength byte holds (64 bits: 0x40 0x04). */
	aml_init(&a, out, sizeof(out));
	aml_operation_region(&a, "REG0", AML_REGION_SYSTEM_MEMORY, 0xfea00000, 0x10);
	f = aml_field_open(&a, "REG0", AML_FIELD_BYTE_ACC | AML_FIELD_LOCK);
	aml_field_unit(&a, "A", 8);
	aml_field_unit(&a, "BIG", 64);
	aml_close(&a, f);
	REQUIRE(a.err == 0);
	static const uint8_t want[] = { 0x5b, 0x80, 'R',  'E',	'G',  '0',  0x00, 0x0c, 0x00,
					0x00, 0xa0, 0xfe, 0x0a, 0x10, 0x5b, 0x81, 0x11, 'R',
					'E',  'G',  '0',  0x11, 'A',  '_',  '_',  '_',	0x08,
					'B',  'I',  'G',  '_',	0x40, 0x04 };
	CHECK(a.len == sizeof(want) && memcmp(out, want, sizeof(want)) == 0);

	/* Unit sizes at each encoding's edges. */
	static const struct {
		uint32_t bits;
		size_t n;
		uint8_t enc[4];
	} sizes[] = {
		{ 1, 1, { 0x01 } },
		{ 0x3f, 1, { 0x3f } },
		{ 0x40, 2, { 0x40, 0x04 } },
		{ 0xfff, 2, { 0x4f, 0xff } },
		{ 0x1000, 3, { 0x80, 0x00, 0x01 } },
		{ 0xfffff, 3, { 0x8f, 0xff, 0xff } },
		{ 0x100000, 4, { 0xc0, 0x00, 0x00, 0x01 } },
		{ 0xfffffff, 4, { 0xcf, 0xff, 0xff, 0xff } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		aml_init(&a, out, sizeof(out));
		aml_field_unit(&a, "X", sizes[i].bits);
		CHECK(a.err == 0 && a.len == 4 + sizes[i].n);
		CHECK(memcmp(out, "X___", 4) == 0 &&
		      memcmp(out + 4, sizes[i].enc, sizes[i].n) == 0);
	}

	/* Refused: a size of 0 or 2^28 bits, anything but one NameSeg, a reserved flag bit. */
	static const struct {
		const char *name;
		uint32_t bits;
	} bad[] = { { "X", 0 },	  { "X", 0x10000000 }, { "", 8 },     { "\\X", 8 },
		    { "A.B", 8 }, { "ABCDE", 8 },      { "1ABC", 8 }, { "esel", 8 } };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		aml_init(&a, out, sizeof(out));
		aml_field_unit(&a, bad[i].name, bad[i].bits);
		CHECK(a.err == -EINVAL && a.len == 0);
	}
	aml_init(&a, out, sizeof(out));
	aml_field_open(&a, "REG0", 0x80);
	CHECK(a.err == -EINVAL);
}

/* ---- snapshot state ---- */

static int ged_snapshot(struct ged *g, struct devstate *d)
{
	if (devstate_begin(d, VMSTATE_TAG_GED, GED_STATE_VERSION))
		return -1;
	ged_save(g, &d->w);
	return devstate_finish(d);
}

static int ged_restore_any(void *dev, struct vmstate_cursor *c, char *err, size_t n)
{
	return ged_restore(dev, c, err, n);
}

TEST(ged_state_round_trip)
{
	struct irq_log log = { 0 }, log2 = { 0 };
	struct machine m = { record_irq, no_stop, &log }, m2 = { record_irq, no_stop, &log2 };
	struct ged g, g2;
	struct devstate d;
	struct vmstate_cursor c;
	char err[128] = "";

	/* A press the guest has not read yet survives the snapshot. */
	ged_init(&g, &m, IRQ_GED, PORT_GED);
	ged_raise(&g, GED_EVT_POWER_BUTTON);
	REQUIRE(ged_snapshot(&g, &d) == 0);
	CHECK(d.s->len == 4);

	ged_init(&g2, &m2, IRQ_GED, PORT_GED);
	devstate_cursor(&d, &c);
	CHECK(ged_restore(&g2, &c, err, sizeof(err)) == 0);
	/* No edge of its own: the one the guest has not taken is in the irqchip section. */
	CHECK(log2.n == 0);
	CHECK(rd(&g2, 0, 4) == GED_EVT_POWER_BUTTON && rd(&g2, 0, 4) == 0);
	devstate_free(&d);

	/* Nothing pending: nothing pending after. */
	ged_init(&g, &m, IRQ_GED, PORT_GED);
	REQUIRE(ged_snapshot(&g, &d) == 0);
	atomic_store(&g2.pending, GED_EVT_VMGENID);
	devstate_cursor(&d, &c);
	CHECK(ged_restore(&g2, &c, err, sizeof(err)) == 0);
	CHECK(atomic_load(&g2.pending) == 0);
	devstate_free(&d);
}

TEST(ged_state_refused)
{
	struct irq_log log = { 0 };
	struct machine m = { record_irq, no_stop, &log };
	struct ged g, g2;
	struct devstate d;
	static const struct devstate_bad bad[] = {
		{ 0, 0x04, "pending events 0x4" },
		{ 0, 0x80, "pending events 0x80" },
		{ 3, 0x80, "pending events 0x80000000" },
	};

	ged_init(&g, &m, IRQ_GED, PORT_GED);
	REQUIRE(ged_snapshot(&g, &d) == 0);
	ged_init(&g2, &m, IRQ_GED, PORT_GED);
	atomic_store(&g2.pending, GED_EVT_VMGENID);
	CHECK(devstate_refusals(&d, ged_restore_any, &g2, "ged: ", bad, ARRAY_SIZE(bad), false) ==
	      0);
	/* Every refusal left the device as it was. */
	CHECK(atomic_load(&g2.pending) == GED_EVT_VMGENID && log.n == 0);
	devstate_free(&d);
}
