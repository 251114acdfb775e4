/*
 * Builds the guest's ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) into one buffer.
 * Offsets and field meanings follow the ACPI 6.5 specification, chapter 5.
 */
#include "arch/x86/acpi.h"
#include "core/le.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "core/util.h"

#define OEM_ID "TERN  "
#define OEM_TABLE_ID "TERNVMM "
#define OEM_REVISION 1
#define CREATOR_ID "TERN"
#define CREATOR_REVISION 1

#define HDR_LEN 36
#define RSDP_LEN 36
#define XSDT_ENTRIES 2 /* FADT, MADT */
#define FADT_LEN 276
#define TABLE_ALIGN 16

/* FADT fields (ACPI 6.5 table 5.9) */
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_SLEEP_STATUS_REG 256
#define FADT_HYPERVISOR_ID 268

#define FADT_REVISION 6
#define FADT_MINOR 5		    /* ACPI 6.5 */
#define FADT_F_PWR_BUTTON (1u << 4) /* no fixed-feature power button: PNP0C0C (ged.h) */
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
#define IAPC_8042 (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define SCI_IRQ 9

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* MADT (ACPI 6.5 section 5.2.12) */
#define MADT_REVISION 5
#define MADT_PCAT_COMPAT (1u << 0)
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_ISO 2
#define MADT_LAPIC_NMI 4
#define MADT_LAPIC_LEN 8
#define MADT_IOAPIC_LEN 12
#define MADT_ISO_LEN 10
#define MADT_LAPIC_NMI_LEN 6
#define MADT_LAPIC_ENABLED 1
#define MPS_INTI_POLARITY_HIGH 0x1
#define MPS_INTI_TRIGGER_LEVEL 0xc
#define MADT_ALL_PROCESSORS 0xff

#define DSDT_REVISION 2 /* 2 and up make AML integers 64-bit */
#define S5_SLP_TYP 5	/* what tern's sleep-control port treats as power-off */

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return sum;
}

/* Fills the common header; the checksum byte is set last by seal(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	le_put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE_ID, 8);
	le_put32(t + 24, OEM_REVISION);
	memcpy(t + 28, CREATOR_ID, 4);
	le_put32(t + 32, CREATOR_REVISION);
}

static void seal(uint8_t *t, size_t len, size_t csum_at)
{
	t[csum_at] = 0;
	t[csum_at] = (uint8_t)-acpi_checksum(t, len);
}

static void gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8; /* register bit width */
	g[2] = 0; /* bit offset */
	g[3] = GAS_ACCESS_BYTE;
	le_put64(g + 4, port);
}

/* Bump allocator over the caller's buffer: each table starts 16-byte aligned. */
struct out {
	uint8_t *buf;
	size_t size;
	size_t used;
	uint64_t base;
};

/* Aligns the next table's start, zeroing the padding; false if it leaves no room for min. */
static bool place(struct out *o, size_t min, size_t *at)
{
	size_t a = align_up(o->used, TABLE_ALIGN);

	if (a > o->size || min > o->size - a)
		return false;
	memset(o->buf + o->used, 0, a - o->used);
	o->used = a;
	*at = a;
	return true;
}

/* Claims a fixed-size, zeroed table; NULL if it does not fit. */
static uint8_t *take(struct out *o, size_t len, uint64_t *gpa)
{
	size_t at;

	if (!place(o, len, &at))
		return NULL;
	memset(o->buf + at, 0, len);
	o->used = at + len;
	*gpa = o->base + at;
	return o->buf + at;
}

static void legacy_device(struct aml *a, const char *name, const char *hid, int uid,
			  const uint16_t *ports, const uint8_t *lens, int nports, unsigned int irq)
{
	size_t dev = aml_device_open(a, name);
	size_t crs;

	aml_name_eisaid(a, "_HID", hid);
	if (uid >= 0)
		aml_name_integer(a, "_UID", (uint64_t)uid);
	aml_name(a, "_CRS");
	crs = aml_restemplate_open(a);
	for (int i = 0; i < nports; i++)
		aml_res_io(a, ports[i], lens[i]);
	aml_res_irq(a, irq);
	aml_restemplate_close(a, crs);
	aml_close(a, dev);
}

/* The DSDT body: the S5 sleep type and the ISA devices Linux only finds through ACPI. */
static void dsdt_body(struct aml *a, const struct acpi_config *cfg)
{
	static const uint16_t com1_ports[] = { PORT_SERIAL_COM1 };
	static const uint8_t com1_lens[] = { 8 };
	static const uint16_t kbd_ports[] = { PORT_I8042_DATA, PORT_I8042_CMD };
	static const uint8_t kbd_lens[] = { 1, 1 };
	static const uint16_t rtc_ports[] = { PORT_RTC };
	static const uint8_t rtc_lens[] = { 2 };
	size_t pkg, sb;

	/* Linux writes the package's first element as SLP_TYP when powering off. */
	aml_name(a, "\\_S5");
	pkg = aml_package_open(a, 4);
	aml_integer(a, S5_SLP_TYP);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_close(a, pkg);

	sb = aml_scope_open(a, "\\_SB");
	legacy_device(a, "COM1", "PNP0501", 0, com1_ports, com1_lens, 1, IRQ_SERIAL_COM1);
	/* Without a PNP0303 node (or the FADT 8042 flag) Linux's i8042 driver never probes. */
	legacy_device(a, "PS2K", "PNP0303", -1, kbd_ports, kbd_lens, 2, IRQ_I8042_KBD);
	legacy_device(a, "RTC", "PNP0B00", -1, rtc_ports, rtc_lens, 1, IRQ_RTC);
	if (cfg->dsdt_devices)
		cfg->dsdt_devices(a, cfg->dsdt_opaque);
	aml_close(a, sb);
}

static long build_dsdt(struct out *o, const struct acpi_config *cfg, uint64_t *gpa)
{
	struct aml a;
	size_t at;

	if (!place(o, HDR_LEN, &at))
		return -ENOSPC;
	aml_init(&a, o->buf + at + HDR_LEN, o->size - at - HDR_LEN);
	dsdt_body(&a, cfg);
	if (a.err)
		return a.err;
	if (HDR_LEN + a.len > UINT32_MAX)
		return -ENOSPC;
	header(o->buf + at, "DSDT", (uint32_t)(HDR_LEN + a.len), DSDT_REVISION);
	seal(o->buf + at, HDR_LEN + a.len, 9);
	o->used = at + HDR_LEN + a.len;
	*gpa = o->base + at;
	return 0;
}

static void fill_fadt(uint8_t *t, const struct acpi_config *cfg, uint64_t dsdt)
{
	header(t, "FACP", FADT_LEN, FADT_REVISION);
	/* The 32-bit pointer is optional; a stale one below 4 GiB would be worse. */
	if (dsdt <= UINT32_MAX)
		le_put32(t + FADT_DSDT, (uint32_t)dsdt);
	le_put16(t + FADT_SCI_INT, SCI_IRQ);
	le_put16(t + FADT_IAPC_BOOT_ARCH, IAPC_8042 | IAPC_VGA_NOT_PRESENT);
	le_put32(t + FADT_FLAGS, FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP | FADT_F_PWR_BUTTON |
					 FADT_F_SLP_BUTTON);
	gas_io8(t + FADT_RESET_REG, cfg->reset_port);
	t[FADT_RESET_VALUE] = cfg->reset_value;
	t[FADT_MINOR_VERSION] = FADT_MINOR;
	le_put64(t + FADT_X_DSDT, dsdt);
	gas_io8(t + FADT_SLEEP_CONTROL_REG, cfg->sleep_ctl_port);
	gas_io8(t + FADT_SLEEP_STATUS_REG, cfg->sleep_sts_port);
	memcpy(t + FADT_HYPERVISOR_ID, "TERNVMM", 7);
	seal(t, FADT_LEN, 9);
}

static size_t madt_len(unsigned int ncpus)
{
	return HDR_LEN + 8 + (size_t)ncpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN + 2 * MADT_ISO_LEN +
	       MADT_LAPIC_NMI_LEN;
}

static uint8_t *madt_iso(uint8_t *e, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	e[0] = MADT_ISO;
	e[1] = MADT_ISO_LEN;
	e[2] = 0; /* ISA bus */
	e[3] = irq;
	le_put32(e + 4, gsi);
	le_put16(e + 8, flags);
	return e + MADT_ISO_LEN;
}

static void fill_madt(uint8_t *t, const struct acpi_config *cfg)
{
	size_t len = madt_len(cfg->ncpus);
	uint8_t *e = t + HDR_LEN + 8;

	header(t, "APIC", (uint32_t)len, MADT_REVISION);
	le_put32(t + HDR_LEN, (uint32_t)LAYOUT_LAPIC);
	/* KVM's in-kernel irqchip models the dual 8259s, so say they exist. */
	le_put32(t + HDR_LEN + 4, MADT_PCAT_COMPAT);

	for (unsigned int i = 0; i < cfg->ncpus; i++, e += MADT_LAPIC_LEN) {
		e[0] = MADT_LAPIC;
		e[1] = MADT_LAPIC_LEN;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC ID */
		le_put32(e + 4, MADT_LAPIC_ENABLED);
	}

	e[0] = MADT_IOAPIC;
	e[1] = MADT_IOAPIC_LEN;
	e[2] = cfg->ioapic_id;
	le_put32(e + 4, cfg->ioapic_addr);
	le_put32(e + 8, 0); /* GSI base */
	e += MADT_IOAPIC_LEN;

	/* The PIT is wired to IOAPIC pin 2, as on every PC; the SCI line is level/high. */
	e = madt_iso(e, 0, 2, 0);
	e = madt_iso(e, SCI_IRQ, SCI_IRQ, MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_LEVEL);

	e[0] = MADT_LAPIC_NMI;
	e[1] = MADT_LAPIC_NMI_LEN;
	e[2] = MADT_ALL_PROCESSORS;
	le_put16(e + 3, 0); /* flags: conforms to the bus */
	e[5] = 1;	    /* LINT1 */

	seal(t, len, 9);
}

static void fill_xsdt(uint8_t *t, uint64_t fadt, uint64_t madt)
{
	const uint32_t len = HDR_LEN + 8 * XSDT_ENTRIES;

	header(t, "XSDT", len, 1);
	le_put64(t + HDR_LEN, fadt);
	le_put64(t + HDR_LEN + 8, madt);
	seal(t, len, 9);
}

static void fill_rsdp(uint8_t *r, uint64_t xsdt)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, OEM_ID, 6);
	r[15] = 2;	     /* ACPI 2.0+ layout, XSDT address valid */
	le_put32(r + 16, 0); /* no RSDT: every consumer we care about reads the XSDT */
	le_put32(r + 20, RSDP_LEN);
	le_put64(r + 24, xsdt);
	seal(r, 20, 8);
	seal(r, RSDP_LEN, 32);
}

long acpi_build(uint8_t *buf, size_t size, uint64_t base_gpa, const struct acpi_config *cfg)
{
	struct out o = { .buf = buf, .size = size, .used = 0, .base = base_gpa };
	uint64_t rsdp_gpa, xsdt_gpa, fadt_gpa, madt_gpa, dsdt_gpa;
	uint8_t *rsdp, *xsdt, *fadt, *madt;
	long err;

	if (!cfg || cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS)
		return -EINVAL;

	/* Claim everything first so each table can point at the ones after it. */
	rsdp = take(&o, RSDP_LEN, &rsdp_gpa);
	xsdt = rsdp ? take(&o, HDR_LEN + 8 * XSDT_ENTRIES, &xsdt_gpa) : NULL;
	fadt = xsdt ? take(&o, FADT_LEN, &fadt_gpa) : NULL;
	madt = fadt ? take(&o, madt_len(cfg->ncpus), &madt_gpa) : NULL;
	if (!madt)
		return -ENOSPC;
	err = build_dsdt(&o, cfg, &dsdt_gpa);
	if (err)
		return err;

	fill_fadt(fadt, cfg, dsdt_gpa);
	fill_madt(madt, cfg);
	fill_xsdt(xsdt, fadt_gpa, madt_gpa);
	fill_rsdp(rsdp, xsdt_gpa);
	return (long)o.used;
}
