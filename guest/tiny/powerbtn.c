/*
 * ACPI power button: finds in the DSDT what a guest's AML interpreter would use (the
 * PNP0C0C device, the Generic Event Device's interrupt and the SystemIO OperationRegion
 * of its event selector), checks them against tern's layout, and reads the selector the
 * way the GED's _EVT does: nothing pending at boot; bytes past the 4-byte register read
 * as all-ones.
 *
 * mode=wait: then routes the GED's IOAPIC pin to a vector as its _CRS says, prints
 * "powerbtn: waiting" and idles with interrupts on. When the interrupt arrives (PUT
 * /actions SendPowerButton) it reads the selector, prints "powerbtn: events 0x..", checks
 * that the power-button bit is set and that the read cleared it, and ends.
 */
#include "tiny.h"

TINY_GUEST("powerbtn");

/* tern's choices (src/arch/x86/layout.h, src/devices/ged.h), which the DSDT must agree with */
#define GED_PORT 0x604
#define GED_GSI 23
#define GED_EVT_POWER_BUTTON (1u << 1)

#define IOAPIC 0xfec00000UL
#define LAPIC 0xfee00000UL
/* The runtime has a stub for 0x80 besides the exceptions. */
#define VEC_GED 0x80

#define AML_RES_EXT_INTERRUPT 0x89
#define AML_INT_EDGE (1u << 1)
#define AML_INT_ACTIVE_LOW (1u << 2)
#define AML_REGION_SYSTEM_IO 0x01

static volatile unsigned int interrupts;

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const void *what, size_t n)
{
	for (; p + n <= end; p++)
		if (!memcmp(p, what, n))
			return p;
	return NULL;
}

/* One integer data object (ZeroOp, OneOp, Byte/Word/DWordPrefix); NULL otherwise. */
static const uint8_t *aml_int(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
	unsigned int size = 0;

	if (p >= end)
		return NULL;
	if (*p == 0x00 || *p == 0x01) {
		*v = *p;
		return p + 1;
	}
	size = *p == 0x0a ? 1 : *p == 0x0b ? 2 : *p == 0x0c ? 4 : 0;
	if (!size || p + 1 + size > end)
		return NULL;
	*v = 0;
	for (unsigned int i = 0; i < size; i++)
		*v |= (uint32_t)p[1 + i] << (8 * i);
	return p + 1 + size;
}

/* OperationRegion (EREG, SystemIO, port, len): the selector's port. */
static uint32_t dsdt_selector_port(const uint8_t *d, const uint8_t *end)
{
	static const uint8_t head[] = { 0x5b, 0x80, 'E', 'R', 'E', 'G' };
	const uint8_t *p = find(d, end, head, sizeof(head));
	uint32_t port, len;

	CHECK(p);
	p += sizeof(head);
	CHECK(p < end && *p == AML_REGION_SYSTEM_IO);
	p = aml_int(p + 1, end, &port);
	CHECK(p && aml_int(p, end, &len));
	CHECK_EQ(len, 4);
	/* ... read as one 32-bit field unit, ESEL, through a DWordAcc Field over it. */
	CHECK(find(d, end,
		   "\x5b\x81\x0b"
		   "EREG\x43"
		   "ESEL\x20",
		   13));
	return port;
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

static void on_ged(struct tiny_frame *f)
{
	(void)f;
	interrupts++;
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
	/* Name (_HID, EisaId ("PNP0C0C")) */
	static const uint8_t pwrb_hid[] = {
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c
	};
	const uint8_t *dsdt = tiny_acpi_table("DSDT");
	uint8_t flags;

	CHECK(dsdt && !memcmp(dsdt, "DSDT", 4));
	const uint8_t *end = dsdt + (dsdt[4] | dsdt[5] << 8 | dsdt[6] << 16);
	CHECK(find(dsdt, end, pwrb_hid, sizeof(pwrb_hid)));
	uint32_t port = dsdt_selector_port(dsdt, end);
	CHECK_EQ(port, GED_PORT);
	CHECK_EQ(dsdt_ged_gsi(dsdt, end, &flags), GED_GSI);
	CHECK(flags & AML_INT_EDGE);

	CHECK_EQ(inl(GED_PORT), 0);
	/* Half inside the register (zero), half past it (nothing there). */
	CHECK_EQ(inl(GED_PORT + 2), 0xffff0000u);
	CHECK_EQ(inb(GED_PORT + 3), 0);
	SAY("powerbtn: selector at 0x%x, GSI %u, nothing pending", port, GED_GSI);
	if (!tiny_arg_is("mode", "wait"))
		return 0;

	outb(0x21, 0xff); /* mask both PICs: only the IOAPIC delivers */
	outb(0xa1, 0xff);
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC, spurious vector 0xff */
	tiny_set_handler(VEC_GED, on_ged);
	ioapic_route(GED_GSI, VEC_GED, flags);
	SAY("powerbtn: waiting");
	while (!interrupts)
		__asm__ volatile("sti; hlt; cli");
	uint32_t events = inl(GED_PORT);
	SAY("powerbtn: events 0x%x", events);
	CHECK(events & GED_EVT_POWER_BUTTON);
	CHECK_EQ(inl(GED_PORT), 0); /* the read acknowledged it */
	SAY("powerbtn: pressed");
	return 0;
}
