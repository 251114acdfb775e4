/*
 * VM generation ID: finds the ID's address and the Generic Event Device's interrupt in
 * the DSDT, the way a driver without an AML interpreter could (the ADDR method's returned
 * package and the GED's _CRS), checks them against tern's layout, and prints the ID as
 * "vmgenid: <32 hex digits>" in memory order.
 *
 * mode=wait: then routes the GED's IOAPIC pin to a vector with the trigger mode and
 * polarity its _CRS gives, prints "vmgenid: waiting" and idles with interrupts on. When
 * the interrupt arrives (tern pulses it after restoring a clone) it prints
 * "vmgenid: notified" and the ID again, and ends.
 */
#include "tiny.h"

TINY_GUEST("vmgenid");

/* tern's choices (src/arch/x86/layout.h), which the DSDT must agree with */
#define VMGENID_ADDR 0xff000UL
#define VMGENID_GSI 23
#define VMGENID_LEN 16

#define IOAPIC 0xfec00000UL
#define LAPIC 0xfee00000UL
/* The runtime has a stub for 0x80 besides the exceptions. */
#define VEC_GED 0x80

#define AML_RES_EXT_INTERRUPT 0x89
#define AML_INT_EDGE (1u << 1)
#define AML_INT_ACTIVE_LOW (1u << 2)

static volatile unsigned int notified;

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const void *what, size_t n)
{
	for (; p + n <= end; p++)
		if (!memcmp(p, what, n))
			return p;
	return NULL;
}

/* One integer data object (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix); NULL otherwise. */
static const uint8_t *aml_int(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	static const unsigned int size[] = { [0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8 };

	if (p >= end)
		return NULL;
	if (*p == 0x00 || *p == 0x01) {
		*v = *p;
		return p + 1;
	}
	if (*p < 0x0a || *p > 0x0e || !size[*p] || p + 1 + size[*p] > end)
		return NULL;
	*v = 0;
	for (unsigned int i = 0; i < size[*p]; i++)
		*v |= (uint64_t)p[1 + i] << (8 * i);
	return p + 1 + size[*p];
}

/* Method (ADDR, 0) { Return (Package (2) { low, high }) }, as tern writes it. */
static uint64_t dsdt_addr(const uint8_t *d, const uint8_t *end)
{
	static const uint8_t head[] = { 'A', 'D', 'D', 'R', 0x00, 0xa4, 0x12 };
	const uint8_t *p = find(d, end, head, sizeof(head));
	uint64_t lo, hi;

	CHECK(p);
	p += sizeof(head) + 1; /* a one-byte PkgLength: the package is tiny */
	CHECK(p < end && *p == 2);
	p = aml_int(p + 1, end, &lo);
	CHECK(p);
	CHECK(aml_int(p, end, &hi));
	return lo | hi << 32;
}

/* The GED's Interrupt() descriptor: its GSI and flags. */
static uint32_t dsdt_ged_gsi(const uint8_t *d, const uint8_t *end, uint8_t *flags)
{
	const uint8_t *p = find(d, end, "ACPI0013", 9);

	CHECK(p);
	static const uint8_t desc[] = { AML_RES_EXT_INTERRUPT, 0x06, 0x00 };
	p = find(p, end, desc, sizeof(desc));
	CHECK(p && p + 9 <= end && p[4] == 1);
	*flags = p[3];
	return p[5] | p[6] << 8 | p[7] << 16 | (uint32_t)p[8] << 24;
}

static void print_id(void)
{
	const volatile uint8_t *id = (const volatile uint8_t *)VMGENID_ADDR;
	uint8_t any = 0;

	tiny_printf("tiny: vmgenid: ");
	for (int i = 0; i < VMGENID_LEN; i++) {
		tiny_printf("%02x", id[i]);
		any |= id[i];
	}
	tiny_printf("\n");
	CHECK(any);
}

static void on_ged(struct tiny_frame *f)
{
	(void)f;
	notified++;
	mmio_write32(LAPIC + 0xb0, 0); /* EOI */
}

static void ioapic_route(unsigned int pin, uint8_t vector, uint8_t crs_flags)
{
	uint32_t lo = vector; /* fixed delivery, physical destination, unmasked */

	if (!(crs_flags & AML_INT_EDGE))
		lo |= 1u << 15; /* level-triggered */
	if (crs_flags & AML_INT_ACTIVE_LOW)
		lo |= 1u << 13;
	mmio_write32(IOAPIC, 0x10 + 2 * pin + 1); /* high half: destination APIC ID 0 */
	mmio_write32(IOAPIC + 0x10, 0);
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, lo);
}

int main(void)
{
	const uint8_t *dsdt = tiny_acpi_table("DSDT");
	uint8_t flags;

	CHECK(dsdt && !memcmp(dsdt, "DSDT", 4));
	const uint8_t *end = dsdt + (dsdt[4] | dsdt[5] << 8 | dsdt[6] << 16);
	CHECK(find(dsdt, end, "VMGENCTR", 9));
	CHECK_EQ(dsdt_addr(dsdt, end), VMGENID_ADDR);
	CHECK_EQ(dsdt_ged_gsi(dsdt, end, &flags), VMGENID_GSI);
	print_id();
	if (!tiny_arg_is("mode", "wait"))
		return 0;

	outb(0x21, 0xff); /* mask both PICs: only the IOAPIC delivers */
	outb(0xa1, 0xff);
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC, spurious vector 0xff */
	tiny_set_handler(VEC_GED, on_ged);
	ioapic_route(VMGENID_GSI, VEC_GED, flags);
	SAY("vmgenid: waiting");
	while (!notified)
		__asm__ volatile("sti; hlt; cli");
	SAY("vmgenid: notified");
	print_id();
	return 0;
}
