/* Just enough ACPI to find a table (RSDP -> XSDT or RSDT, FADT -> DSDT) and list the processors. */
#include "smp.h"
#include "tiny.h"

#define BP_ACPI_RSDP_ADDR 0x070 /* u64 in boot_params */
#define SDT_HEADER_LEN 36
#define MADT_ENTRIES 44
#define MADT_LAPIC 0
#define MADT_X2APIC 9

static uint8_t sum(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static const uint8_t *find_rsdp(void)
{
	uint64_t addr = *(const uint64_t *)(tiny_boot_params + BP_ACPI_RSDP_ADDR);

	if (addr)
		return (const uint8_t *)addr;
	for (addr = 0xe0000; addr < 0x100000; addr += 16)
		if (!memcmp((const void *)addr, "RSD PTR ", 8) && !sum((const void *)addr, 20))
			return (const uint8_t *)addr;
	return NULL;
}

static uint32_t rd32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#define FADT_DSDT 40
#define FADT_X_DSDT 140

const uint8_t *tiny_acpi_table(const char *sig)
{
	const uint8_t *rsdp = find_rsdp();

	if (!rsdp)
		return NULL;
	/* The DSDT is not listed in the XSDT: the FADT points at it. */
	if (!memcmp(sig, "DSDT", 4)) {
		const uint8_t *fadt = tiny_acpi_table("FACP");
		if (!fadt)
			return NULL;
		uint64_t a = rd32(fadt + 4) >= FADT_X_DSDT + 8 ? rd64(fadt + FADT_X_DSDT) : 0;
		return (const uint8_t *)(a ? a : rd32(fadt + FADT_DSDT));
	}
	bool x = rsdp[15] >= 2 && rd64(rsdp + 24);
	const uint8_t *sdt = (const uint8_t *)(x ? rd64(rsdp + 24) : rd32(rsdp + 16));
	unsigned int width = x ? 8 : 4;
	uint32_t len = rd32(sdt + 4);
	for (uint32_t off = SDT_HEADER_LEN; off + width <= len; off += width) {
		const uint8_t *e = sdt + off;
		uint64_t a = width == 8 ? rd64(e) : rd32(e);
		const uint8_t *t = (const uint8_t *)a;
		if (!memcmp(t, sig, 4))
			return t;
	}
	return NULL;
}

unsigned int tiny_acpi_apic_ids(uint32_t *ids, unsigned int max)
{
	const uint8_t *madt = tiny_acpi_table("APIC");
	unsigned int n = 0;

	if (!madt)
		return 0;
	uint32_t len = rd32(madt + 4);
	CHECK_EQ(sum(madt, len), 0);
	for (uint32_t off = MADT_ENTRIES; off + 2 <= len && madt[off + 1] >= 2;
	     off += madt[off + 1]) {
		const uint8_t *e = madt + off;
		if (e[0] == MADT_LAPIC && (rd32(e + 4) & 1) && n < max)
			ids[n++] = e[3];
		else if (e[0] == MADT_X2APIC && (rd32(e + 8) & 1) && n < max)
			ids[n++] = rd32(e + 4);
	}
	return n;
}
