/*
 * Tests for the VM generation ID device: the AML opcodes it needs (checked against the
 * ACPI 6.5 opcode table, section 20.3), the exact bytes of its DSDT device, where the ID
 * sits in the guest's memory map, and what a change writes and signals (through the
 * Generic Event Device, whose own tests are in test_ged.c).
 */
#include <errno.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "core/log.h"
#include "devices/ged.h"
#include "devices/machine.h"
#include "devices/vmgenid.h"
#include "kvm/guest_mem.h"
#include "unit.h"

#define MEM_SIZE (4ULL << 20)

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

TEST(aml_if_lequal_arg_notify)
{
	/* If (LEqual (Arg0, 0x17)) { Notify (\_SB.VGEN, 0x80) } Else { Return (Local7) } */
	static const uint8_t want[] = { 0xa0, 0x12, 0x93, 0x68, 0x0a, 0x17, 0x86, 0x5c,
					0x2e, '_',  'S',  'B',	'_',  'V',  'G',  'E',
					'N',  0x0a, 0x80, 0xa1, 0x03, 0xa4, 0x67 };
	uint8_t out[64];
	struct aml a;
	size_t m;

	aml_init(&a, out, sizeof(out));
	m = aml_if_open(&a);
	aml_lequal(&a);
	aml_arg(&a, 0);
	aml_integer(&a, 0x17);
	aml_notify(&a, "\\_SB.VGEN", 0x80);
	aml_close(&a, m);
	m = aml_else_open(&a);
	aml_return(&a);
	aml_local(&a, 7);
	aml_close(&a, m);
	REQUIRE(a.err == 0);
	CHECK(a.len == sizeof(want) && memcmp(out, want, sizeof(want)) == 0);
}

TEST(aml_arg_and_local_ranges)
{
	uint8_t out[16];
	struct aml a;

	aml_init(&a, out, sizeof(out));
	aml_arg(&a, 6);
	aml_local(&a, 0);
	CHECK(a.err == 0 && a.len == 2 && out[0] == 0x6e && out[1] == 0x60);
	aml_arg(&a, 7);
	CHECK(a.err == -EINVAL && a.len == 2);

	aml_init(&a, out, sizeof(out));
	aml_local(&a, 8);
	CHECK(a.err == -EINVAL && a.len == 0);

	/* A bad Notify target latches the error like any other bad name. */
	aml_init(&a, out, sizeof(out));
	aml_notify(&a, "vgen", 0x80);
	CHECK(a.err == -EINVAL);
}

static void dsdt_of(const struct vmgenid *g, uint8_t *out, size_t cap, struct aml *a)
{
	aml_init(a, out, cap);
	vmgenid_dsdt(a, g);
}

TEST(vmgenid_dsdt_addr_method_returns_the_address)
{
	/* Method (ADDR, 0) { Return (Package (2) { 0xff000, Zero }) } */
	static const uint8_t addr_low[] = { 0x14, 0x10, 'A',  'D',  'D',  'R',	0x00, 0xa4, 0x12,
					    0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0f, 0x00, 0x00 };
	/* Above 4 GiB the high half is a real integer too: { 0x56789000, 0x1234 }. */
	static const uint8_t addr_high[] = { 0x14, 0x12, 'A',  'D',  'D',  'R',	 0x00,
					     0xa4, 0x12, 0x0a, 0x02, 0x0c, 0x00, 0x90,
					     0x78, 0x56, 0x0b, 0x34, 0x12 };
	static const uint8_t hid[] = "\x08_HID\x0dVMGENCTR";
	static const uint8_t cid[] = "\x08_CID\x0dVM_Gen_Counter";
	static const uint8_t ddn[] = "\x08_DDN\x0dVM_Gen_Counter";
	uint8_t out[512];
	struct vmgenid g;
	struct aml a;

	vmgenid_init(&g, NULL, NULL);
	CHECK(g.addr == LAYOUT_VMGENID_ADDR && LAYOUT_VMGENID_ADDR == 0xff000);
	dsdt_of(&g, out, sizeof(out), &a);
	REQUIRE(a.err == 0);
	/* Device (VGEN) comes first (its body needs a 2-byte PkgLength); the string literals
	 * include their NUL terminator. */
	CHECK(out[0] == 0x5b && out[1] == 0x82 && (out[2] >> 6) == 1 &&
	      memcmp(out + 4, "VGEN", 4) == 0);
	CHECK(contains(out, a.len, hid, sizeof(hid)));
	CHECK(contains(out, a.len, cid, sizeof(cid)));
	CHECK(contains(out, a.len, ddn, sizeof(ddn)));
	CHECK(contains(out, a.len, addr_low, sizeof(addr_low)));

	g.addr = 0x123456789000ULL;
	dsdt_of(&g, out, sizeof(out), &a);
	REQUIRE(a.err == 0);
	CHECK(contains(out, a.len, addr_high, sizeof(addr_high)));
}

TEST(vmgenid_dsdt_is_vgen_alone)
{
	uint8_t out[512];
	struct vmgenid g;
	struct aml a;
	const uint8_t *end;

	/* The GED that notifies VGEN is ged_dsdt()'s: no second GED, no _EVT of its own. */
	vmgenid_init(&g, NULL, NULL);
	dsdt_of(&g, out, sizeof(out), &a);
	REQUIRE(a.err == 0);
	CHECK(!contains(out, a.len, "ACPI0013", 8) && !contains(out, a.len, "_EVT", 4));
	/* One Device(VGEN) whose PkgLength covers everything emitted. */
	REQUIRE(a.len > 4 && out[0] == 0x5b && out[1] == 0x82 && (out[2] >> 6) == 1);
	end = out + 2 + ((out[2] & 0x0f) | out[3] << 4);
	CHECK(end == out + a.len);
}

TEST(vmgenid_dsdt_fails_cleanly_when_short)
{
	uint8_t full[512], out[512 + 16];
	struct vmgenid g;
	struct aml a;

	vmgenid_init(&g, NULL, NULL);
	dsdt_of(&g, full, sizeof(full), &a);
	REQUIRE(a.err == 0);
	size_t whole = a.len;
	for (size_t cap = 0; cap < whole; cap++) {
		memset(out, 0xa5, sizeof(out));
		dsdt_of(&g, out, cap, &a);
		CHECK(a.err == -ENOSPC && a.len <= cap);
		for (size_t i = cap; i < sizeof(out); i++)
			if (out[i] != 0xa5) {
				CHECK(!"vmgenid_dsdt wrote past the cap");
				break;
			}
	}
}

struct devices {
	struct ged ged;
	struct vmgenid vmgenid;
};

static void hook(struct aml *a, void *opaque)
{
	struct devices *d = opaque;

	vmgenid_dsdt(a, &d->vmgenid);
	ged_dsdt(a, &d->ged);
}

TEST(vmgenid_id_is_outside_the_tables_and_reserved)
{
	static uint8_t tables[LAYOUT_ACPI_SIZE];
	struct devices g;
	struct acpi_config cfg = {
		.ncpus = ACPI_MAX_CPUS, /* the largest MADT */
		.ioapic_addr = (uint32_t)LAYOUT_IOAPIC,
		.sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
		.sleep_sts_port = PORT_ACPI_SLEEP_STS,
		.reset_port = PORT_ACPI_RESET,
		.reset_value = ACPI_RESET_VALUE,
		.dsdt_devices = hook,
		.dsdt_opaque = &g,
	};
	struct e820_entry e[E820_MAX];
	struct guest_mem m;
	bool reserved = false;

	ged_init(&g.ged, NULL, IRQ_GED, PORT_GED);
	vmgenid_init(&g.vmgenid, NULL, &g.ged);
	long used = acpi_build(tables, sizeof(tables), LAYOUT_ACPI_BASE, &cfg);
	REQUIRE(used > 0);
	/* acpi_build() is only ever handed the area below the ID. */
	CHECK(LAYOUT_ACPI_BASE + (uint64_t)used <= LAYOUT_VMGENID_ADDR);
	CHECK(LAYOUT_VMGENID_ADDR % 8 == 0);

	guest_mem_layout(&m, 256ULL << 20);
	unsigned int n = e820_build(&m, e);
	for (unsigned int i = 0; i < n; i++) {
		bool covers = e[i].addr <= LAYOUT_VMGENID_ADDR &&
			      e[i].addr + e[i].size >= LAYOUT_VMGENID_ADDR + VMGENID_LEN;
		if (covers)
			reserved = e[i].type == E820_RESERVED;
	}
	CHECK(reserved);
}

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
	CHECK(!"vmgenid stopped the machine");
}

TEST(vmgenid_write_new_and_changed)
{
	static const uint8_t zero[VMGENID_LEN];
	struct irq_log log = { 0 };
	struct machine mach = { record_irq, no_stop, &log };
	uint8_t first[VMGENID_LEN], before[8], after[8];
	struct guest_mem m;
	struct vmgenid g;
	struct ged ged;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	uint8_t *id = m.host + LAYOUT_VMGENID_ADDR;
	memset(id - 8, 0x5a, 8);
	memset(id + VMGENID_LEN, 0x5a, 8);
	memcpy(before, id - 8, 8);

	ged_init(&ged, &mach, IRQ_GED, PORT_GED);
	vmgenid_init(&g, &m, &ged);
	REQUIRE(vmgenid_write_new(&g) == 0);
	CHECK(memcmp(id, zero, VMGENID_LEN) != 0);
	/* Boot: the guest reads it when its driver loads. */
	CHECK(log.n == 0 && atomic_load(&ged.pending) == 0);
	memcpy(first, id, VMGENID_LEN);

	enum log_level level = log_get_level();
	log_set_level(LOG_WARN); /* the info line on each change */
	vmgenid_changed(&g);
	log_set_level(level);
	CHECK(memcmp(id, first, VMGENID_LEN) != 0 && memcmp(id, zero, VMGENID_LEN) != 0);
	/* The GED's VM generation ID event, and one edge on its line, left low. */
	CHECK(atomic_load(&ged.pending) == GED_EVT_VMGENID);
	CHECK(log.n == 2);
	CHECK(log.irq[0] == IRQ_GED && log.level[0] == 1);
	CHECK(log.irq[1] == IRQ_GED && log.level[1] == 0);
	/* Nothing around the 16 bytes is touched. */
	memcpy(after, id - 8, 8);
	CHECK(memcmp(before, after, 8) == 0);
	CHECK(memcmp(id + VMGENID_LEN, "\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8) == 0);
	guest_mem_destroy(&m);
}

TEST(vmgenid_outside_ram_fails_without_a_pulse)
{
	struct irq_log log = { 0 };
	struct machine mach = { record_irq, no_stop, &log };
	enum log_level level = log_get_level();
	struct guest_mem m;
	struct vmgenid g;
	struct ged ged;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	ged_init(&ged, &mach, IRQ_GED, PORT_GED);
	vmgenid_init(&g, &m, &ged);
	g.addr = MEM_SIZE - 8; /* straddles the end of RAM */
	CHECK(vmgenid_write_new(&g) == -EFAULT);
	log_set_level(LOG_OFF); /* the warning is expected */
	vmgenid_changed(&g);
	log_set_level(level);
	CHECK(log.n == 0 && atomic_load(&ged.pending) == 0);
	guest_mem_destroy(&m);
}
