/*
 * Tests for the ACPI table builder and the AML encoder: table checksums and pointers,
 * MADT/FADT contents, DSDT byte encodings, and buffer-size handling.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "devices/ged.h"
#include "devices/vmgenid.h"
#include "unit.h"

#define BASE 0xe0000ULL
#define BUF_SIZE 0x20000
#define GUARD 64
#define GUARD_BYTE 0xa5

static uint8_t buf[BUF_SIZE + GUARD];

static const struct acpi_config default_cfg = {
	.ncpus = 4,
	.ioapic_addr = 0xfec00000,
	.ioapic_id = 0xf,
	.sleep_ctl_port = 0x600,
	.sleep_sts_port = 0x601,
	.reset_port = 0x602,
	.reset_value = 0x1,
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* A guest address inside the built tables back to a pointer, or NULL if out of range. */
static const uint8_t *at_gpa(uint64_t gpa, long used, size_t min)
{
	if (gpa < BASE || gpa - BASE > (uint64_t)used || (uint64_t)used - (gpa - BASE) < min)
		return NULL;
	return buf + (gpa - BASE);
}

static long build(const struct acpi_config *cfg)
{
	memset(buf, GUARD_BYTE, sizeof(buf));
	return acpi_build(buf, BUF_SIZE, BASE, cfg);
}

/* A table reached by pointer: in bounds, its length in bounds, its checksum zero. */
static const uint8_t *table(uint64_t gpa, long used, const char *sig)
{
	const uint8_t *t = at_gpa(gpa, used, 36);

	if (!t || memcmp(t, sig, 4) != 0)
		return NULL;
	if (!at_gpa(gpa, used, rd32(t + 4)) || acpi_checksum(t, rd32(t + 4)) != 0)
		return NULL;
	return t;
}

static const uint8_t *xsdt_of(long used)
{
	if (memcmp(buf, "RSD PTR ", 8) != 0)
		return NULL;
	return table(rd64(buf + 24), used, "XSDT");
}

/* Looks a table up through RSDP -> XSDT, the way a guest does. */
static const uint8_t *find(long used, const char *sig)
{
	const uint8_t *x = xsdt_of(used);

	if (!x)
		return NULL;
	for (uint32_t off = 36; off + 8 <= rd32(x + 4); off += 8) {
		const uint8_t *t = at_gpa(rd64(x + off), used, 36);

		if (t && memcmp(t, sig, 4) == 0)
			return table(rd64(x + off), used, sig);
	}
	return NULL;
}

static const uint8_t *dsdt_of(long used)
{
	const uint8_t *f = find(used, "FACP");

	return f ? table(rd64(f + 140), used, "DSDT") : NULL;
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

static bool standard_header(const uint8_t *t)
{
	return memcmp(t + 10, "TERN  ", 6) == 0 && memcmp(t + 16, "TERNVMM ", 8) == 0 &&
	       rd32(t + 24) == 1 && memcmp(t + 28, "TERN", 4) == 0 && rd32(t + 32) == 1;
}

/*
 * A minimal AML reader for the subset the builder emits, so the tests notice a
 * PkgLength or element count that disagrees with what follows it.
 */
static const uint8_t *pkglen(const uint8_t *p, const uint8_t *end, const uint8_t **obj_end)
{
	unsigned int n = (p < end) ? (unsigned int)(*p >> 6) : 0;
	uint32_t v;

	if (p + 1 + n > end)
		return NULL;
	v = n ? (uint32_t)(*p & 0x0f) : (uint32_t)(*p & 0x3f);
	for (unsigned int i = 0; i < n; i++)
		v |= (uint32_t)p[1 + i] << (4 + 8 * i);
	if (n && (*p & 0x30))
		return NULL;
	if (v > (uint32_t)(end - p))
		return NULL;
	*obj_end = p + v;
	return p + 1 + n;
}

static const uint8_t *namestring(const uint8_t *p, const uint8_t *end)
{
	unsigned int segs = 1;

	if (p < end && *p == '\\')
		p++;
	while (p < end && *p == '^')
		p++;
	if (p >= end)
		return NULL;
	if (*p == 0x00)
		return p + 1;
	if (*p == 0x2e) {
		segs = 2;
		p++;
	} else if (*p == 0x2f) {
		if (p + 1 >= end)
			return NULL;
		segs = p[1];
		p += 2;
	}
	if ((size_t)(end - p) < 4 * segs)
		return NULL;
	return p + 4 * segs;
}

static const uint8_t *data_object(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *obj_end, *q;

	if (p >= end)
		return NULL;
	switch (*p) {
	case 0x00:
	case 0x01:
		return p + 1;
	case 0x0a:
		return end - p >= 2 ? p + 2 : NULL;
	case 0x0b:
		return end - p >= 3 ? p + 3 : NULL;
	case 0x0c:
		return end - p >= 5 ? p + 5 : NULL;
	case 0x0e:
		return end - p >= 9 ? p + 9 : NULL;
	case 0x0d:
		q = memchr(p + 1, 0, (size_t)(end - p - 1));
		return q ? q + 1 : NULL;
	case 0x11: {
		uint64_t size;

		q = pkglen(p + 1, end, &obj_end);
		if (!q)
			return NULL;
		/* BufferSize must cover exactly the bytes up to the PkgLength's end. */
		const uint8_t *bytes = data_object(q, obj_end);

		if (!bytes)
			return NULL;
		size = *q == 0x0a ? q[1] : *q == 0x0b ? rd16(q + 1) : *q == 0x01 ? 1 : 0;
		return size == (uint64_t)(obj_end - bytes) ? obj_end : NULL;
	}
	case 0x12: {
		unsigned int n;

		q = pkglen(p + 1, end, &obj_end);
		if (!q || q >= obj_end)
			return NULL;
		n = *q++;
		while (n-- && q)
			q = data_object(q, obj_end);
		return q == obj_end ? obj_end : NULL;
	}
	}
	return NULL;
}

/* A FieldList: NamedFields (a NameSeg and a bit count) and ReservedFields (0x00, bits). */
static bool field_list(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		unsigned int n;

		p += *p == 0x00 ? 1 : 4;
		if (p >= end)
			return false;
		/* The bit count is PkgLength-encoded, but counts bits, not its own bytes. */
		n = *p >> 6;
		if (n && (*p & 0x30))
			return false;
		p += 1 + n;
	}
	return p == end;
}

static bool term_list(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *obj_end;

	while (p && p < end) {
		if (*p == 0x08) {
			p = namestring(p + 1, end);
			p = p ? data_object(p, end) : NULL;
		} else if (*p == 0x5b && p + 1 < end && p[1] == 0x80) {
			/* OperationRegion: name, space, offset and length (integers here) */
			p = namestring(p + 2, end);
			p = p && p < end ? data_object(p + 1, end) : NULL;
			p = p ? data_object(p, end) : NULL;
		} else if (*p == 0x5b && p + 1 < end && p[1] == 0x81) {
			/* Field: region name, flags, units */
			p = pkglen(p + 2, end, &obj_end);
			p = p ? namestring(p, obj_end) : NULL;
			if (!p || p >= obj_end || (*p & 0x80) || !field_list(p + 1, obj_end))
				return false;
			p = obj_end;
		} else if (*p == 0x10 || (*p == 0x5b && p + 1 < end && p[1] == 0x82)) {
			p += *p == 0x10 ? 1 : 2;
			p = pkglen(p, end, &obj_end);
			p = p ? namestring(p, obj_end) : NULL;
			if (!p || !term_list(p, obj_end))
				return false;
			p = obj_end;
		} else if (*p == 0x14) {
			p = pkglen(p + 1, end, &obj_end);
			p = p ? namestring(p, obj_end) : NULL;
			p = (p && p < obj_end) ? obj_end : NULL;
		} else {
			return false;
		}
	}
	return p == end;
}

static bool dsdt_parses(const uint8_t *d)
{
	return term_list(d + 36, d + rd32(d + 4));
}

TEST(acpi_checksums_and_pointers_for_many_cpu_counts)
{
	static const unsigned int counts[] = { 1, 2, 3, 8, 64, 254, 255 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct acpi_config cfg = default_cfg;
		const uint8_t *x;
		long used;

		cfg.ncpus = counts[i];
		used = build(&cfg);
		REQUIRE(used > 36 && used <= BUF_SIZE);
		CHECK(buf[BUF_SIZE] == GUARD_BYTE);

		CHECK(memcmp(buf, "RSD PTR ", 8) == 0);
		CHECK(buf[15] == 2);
		CHECK(memcmp(buf + 9, "TERN  ", 6) == 0);
		CHECK(acpi_checksum(buf, 20) == 0);
		CHECK(rd32(buf + 20) == 36);
		CHECK(acpi_checksum(buf, 36) == 0);

		x = xsdt_of(used);
		REQUIRE(x != NULL);
		CHECK(rd32(x + 4) == 36 + 2 * 8);
		CHECK(standard_header(x));
		/* Every table starts 16-byte aligned. */
		CHECK((rd64(buf + 24) & 15) == 0);
		for (uint32_t off = 36; off < rd32(x + 4); off += 8)
			CHECK((rd64(x + off) & 15) == 0);

		const uint8_t *f = find(used, "FACP");
		const uint8_t *m = find(used, "APIC");
		const uint8_t *d = dsdt_of(used);

		REQUIRE(f && m && d);
		CHECK(standard_header(f) && standard_header(m) && standard_header(d));
		CHECK(rd32(m + 4) == 44 + 8 * counts[i] + 12 + 2 * 10 + 6);
		CHECK(dsdt_parses(d));
		/* The DSDT is last, and nothing past it was claimed. */
		CHECK((long)(d - buf) + (long)rd32(d + 4) == used);
	}
}

TEST(acpi_xsdt_lists_fadt_and_madt_only)
{
	long used = build(&default_cfg);
	const uint8_t *x;

	REQUIRE(used > 0);
	x = xsdt_of(used);
	REQUIRE(x != NULL);
	REQUIRE(rd32(x + 4) == 52);
	CHECK(table(rd64(x + 36), used, "FACP") != NULL);
	CHECK(table(rd64(x + 44), used, "APIC") != NULL);
}

TEST(acpi_madt_cpus_ioapic_overrides)
{
	struct acpi_config cfg = default_cfg;
	unsigned int lapics = 0, ioapics = 0, nmis = 0;
	bool seen[ACPI_MAX_CPUS] = { false };
	bool pit_override = false;
	const uint8_t *m, *e, *end;
	long used;

	cfg.ncpus = 7;
	used = build(&cfg);
	REQUIRE(used > 0);
	m = find(used, "APIC");
	REQUIRE(m != NULL);
	CHECK(rd32(m + 36) == 0xfee00000);
	CHECK(rd32(m + 40) == 1); /* PCAT_COMPAT */

	end = m + rd32(m + 4);
	for (e = m + 44; e < end; e += e[1]) {
		REQUIRE(e + 2 <= end && e[1] >= 2 && e + e[1] <= end);
		switch (e[0]) {
		case 0:
			REQUIRE(e[1] == 8);
			lapics++;
			CHECK(e[2] == e[3]); /* UID i for APIC ID i */
			CHECK(e[3] < cfg.ncpus && !seen[e[3]]);
			if (e[3] < cfg.ncpus)
				seen[e[3]] = true;
			CHECK(rd32(e + 4) == 1);
			break;
		case 1:
			REQUIRE(e[1] == 12);
			ioapics++;
			CHECK(e[2] == cfg.ioapic_id);
			CHECK(rd32(e + 4) == cfg.ioapic_addr);
			CHECK(rd32(e + 8) == 0);
			break;
		case 2:
			REQUIRE(e[1] == 10);
			CHECK(e[2] == 0);
			if (e[3] == 0) {
				pit_override = rd32(e + 4) == 2 && rd16(e + 8) == 0;
			} else {
				CHECK(e[3] == 9 && rd32(e + 4) == 9 && rd16(e + 8) == 0x000d);
			}
			break;
		case 4:
			REQUIRE(e[1] == 6);
			nmis++;
			CHECK(e[2] == 0xff && e[5] == 1);
			break;
		default:
			CHECK(!"unexpected MADT entry type");
		}
	}
	CHECK(e == end);
	CHECK(lapics == cfg.ncpus);
	CHECK(ioapics == 1);
	CHECK(nmis == 1);
	CHECK(pit_override);
}

TEST(acpi_fadt_fields)
{
	struct acpi_config cfg = default_cfg;
	const uint8_t *f, *d;
	long used;

	cfg.sleep_ctl_port = 0x1234;
	cfg.sleep_sts_port = 0x1236;
	cfg.reset_port = 0xcf9;
	cfg.reset_value = 0x6;
	used = build(&cfg);
	REQUIRE(used > 0);
	f = find(used, "FACP");
	REQUIRE(f != NULL);
	CHECK(rd32(f + 4) == 276);
	CHECK(f[8] == 6);
	CHECK(rd32(f + 112) & (1u << 20));   /* HW_REDUCED_ACPI */
	CHECK(rd32(f + 112) & (1u << 10));   /* RESET_REG_SUP */
	CHECK(rd32(f + 112) & (1u << 4));    /* PWR_BUTTON */
	CHECK(rd32(f + 112) & (1u << 5));    /* SLP_BUTTON */
	CHECK(rd16(f + 109) & (1u << 1));    /* 8042 */
	CHECK(!(rd16(f + 109) & (1u << 5))); /* CMOS RTC present */

	/* RESET_REG: System I/O, 8 bits at offset 0, then RESET_VALUE. */
	CHECK(f[116] == 1 && f[117] == 8 && f[118] == 0);
	CHECK(rd64(f + 120) == 0xcf9);
	CHECK(f[128] == 0x6);
	CHECK(f[244] == 1 && f[245] == 8 && rd64(f + 248) == 0x1234);
	CHECK(f[256] == 1 && f[257] == 8 && rd64(f + 260) == 0x1236);

	d = table(rd64(f + 140), used, "DSDT");
	REQUIRE(d != NULL);
	CHECK(rd32(f + 40) == rd64(f + 140));
	CHECK(d[8] == 2);
}

TEST(acpi_fadt_omits_32bit_dsdt_above_4g)
{
	const uint64_t high = 0x100000000ULL;
	long used;
	const uint8_t *f;

	memset(buf, GUARD_BYTE, sizeof(buf));
	used = acpi_build(buf, BUF_SIZE, high, &default_cfg);
	REQUIRE(used > 0);
	f = buf + (rd64(buf + 24) - high); /* XSDT */
	f = buf + (rd64(f + 36) - high);   /* FADT */
	REQUIRE(memcmp(f, "FACP", 4) == 0);
	CHECK(rd32(f + 40) == 0);
	CHECK(rd64(f + 140) > high);
	CHECK(memcmp(buf + (rd64(f + 140) - high), "DSDT", 4) == 0);
}

TEST(acpi_dsdt_contents)
{
	/* Name(\_S5_, Package(4) { 5, Zero, Zero, Zero }) */
	static const uint8_t s5[] = { 0x08, '\\', '_',	'S',  '5',  '_',  0x12,
				      0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00 };
	/* Name(_HID, EISAID("PNP0303")) and EISAID("PNP0B00") */
	static const uint8_t kbd[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x03, 0x03 };
	static const uint8_t rtc[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00 };
	static const uint8_t com[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	/* IO(Decode16, 0x60, 0x60, 1, 1), IO(Decode16, 0x64, ...), IRQNoFlags() { 1 } */
	static const uint8_t kbd_crs[] = { 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01,
					   0x01, 0x47, 0x01, 0x64, 0x00, 0x64, 0x00,
					   0x01, 0x01, 0x22, 0x02, 0x00, 0x79 };
	static const uint8_t rtc_crs[] = { 0x47, 0x01, 0x70, 0x00, 0x70, 0x00,
					   0x01, 0x02, 0x22, 0x00, 0x01, 0x79 };
	const uint8_t *d;
	long used;
	size_t n;

	used = build(&default_cfg);
	REQUIRE(used > 0);
	d = dsdt_of(used);
	REQUIRE(d != NULL);
	n = rd32(d + 4);
	CHECK(memcmp(d + 36, s5, sizeof(s5)) == 0);
	CHECK(contains(d, n, kbd, sizeof(kbd)));
	CHECK(contains(d, n, rtc, sizeof(rtc)));
	CHECK(contains(d, n, com, sizeof(com)));
	CHECK(contains(d, n, kbd_crs, sizeof(kbd_crs)));
	CHECK(contains(d, n, rtc_crs, sizeof(rtc_crs)));
	/* Scope(\_SB_) follows _S5_ and runs to the end of the table. */
	CHECK(d[36 + sizeof(s5)] == 0x10);
	CHECK(contains(d, n, "\\_SB_", 5));
	CHECK(contains(d, n, "\x5b\x82", 2));
	CHECK(contains(d, n, "PS2K", 4) && contains(d, n, "RTC_", 4) && contains(d, n, "COM1", 4));
	CHECK(dsdt_parses(d));
}

static void add_mmio_device(struct aml *a, void *opaque)
{
	size_t dev = aml_device_open(a, "VR00");
	size_t crs;

	(void)opaque;
	aml_name_string(a, "_HID", "LNRO0005");
	aml_name_integer(a, "_UID", 0);
	aml_name(a, "_CRS");
	crs = aml_restemplate_open(a);
	aml_res_memory32_fixed(a, 0xd0000000, 0x200, true);
	aml_res_interrupt(a, 5, AML_INT_EDGE);
	aml_restemplate_close(a, crs);
	aml_close(a, dev);
}

static void add_bad_name(struct aml *a, void *opaque)
{
	(void)opaque;
	aml_device_open(a, "bad");
}

TEST(acpi_dsdt_hook_appends_devices)
{
	struct acpi_config cfg = default_cfg;
	const uint8_t *d;
	long used;

	cfg.dsdt_devices = add_mmio_device;
	used = build(&cfg);
	REQUIRE(used > 0);
	d = dsdt_of(used);
	REQUIRE(d != NULL);
	CHECK(contains(d, rd32(d + 4), "VR00", 4));
	CHECK(contains(d, rd32(d + 4), "LNRO0005", 9));
	CHECK(dsdt_parses(d));

	cfg.dsdt_devices = add_bad_name;
	CHECK(build(&cfg) == -EINVAL);
}

struct event_devices {
	struct ged ged;
	struct vmgenid vmgenid;
};

static void add_event_devices(struct aml *a, void *opaque)
{
	struct event_devices *d = opaque;

	vmgenid_dsdt(a, &d->vmgenid);
	ged_dsdt(a, &d->ged);
}

/*
 * The Device (device) or Method named seg inside [p, end): where its name is, and its end
 * in obj_end; NULL if there is none.
 */
static const uint8_t *find_object(const uint8_t *p, const uint8_t *end, bool device,
				  const char *seg, const uint8_t **obj_end)
{
	size_t op_len = device ? 2 : 1;

	for (; p + op_len < end; p++) {
		if (device ? p[0] != 0x5b || p[1] != 0x82 : p[0] != 0x14)
			continue;
		const uint8_t *name = pkglen(p + op_len, end, obj_end);
		if (name && name + 4 <= *obj_end && !memcmp(name, seg, 4))
			return name;
	}
	return NULL;
}

TEST(acpi_dsdt_with_vmgenid_and_power_button_parses)
{
	/* Name (_HID, EisaId ("PNP0C0C")) */
	static const uint8_t pwrb_hid[] = {
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c
	};
	/* Notify (\_SB.PWRB, 0x80) and Notify (\_SB.VGEN, 0x80) */
	static const uint8_t notify_pwrb[] = { 0x86, 0x5c, 0x2e, '_', 'S',  'B', '_',
					       'P',  'W',  'R',	 'B', 0x0a, 0x80 };
	static const uint8_t notify_vgen[] = { 0x86, 0x5c, 0x2e, '_', 'S',  'B', '_',
					       'V',  'G',  'E',	 'N', 0x0a, 0x80 };
	struct acpi_config cfg = default_cfg;
	struct event_devices ev;
	const uint8_t *d, *end, *sb, *sb_end, *dev, *dev_end, *evt, *evt_end;
	long used;

	ged_init(&ev.ged, NULL, IRQ_GED, PORT_GED);
	vmgenid_init(&ev.vmgenid, NULL, &ev.ged);
	cfg.dsdt_devices = add_event_devices;
	cfg.dsdt_opaque = &ev;
	used = build(&cfg);
	REQUIRE(used > 0);
	d = dsdt_of(used);
	REQUIRE(d != NULL);
	end = d + rd32(d + 4);
	CHECK(dsdt_parses(d));
	CHECK(contains(d, rd32(d + 4), "VMGENCTR", 9) && contains(d, rd32(d + 4), "ACPI0013", 9));

	/* Scope (\_SB) holds Device (PWRB), the power button, and Device (GED0). */
	sb = d + 36 + 14; /* after Name (\_S5, ...) */
	REQUIRE(sb < end && *sb == 0x10);
	sb = pkglen(sb + 1, end, &sb_end);
	REQUIRE(sb && sb_end == end && !memcmp(sb, "\\_SB_", 5));
	dev = find_object(sb, sb_end, true, "PWRB", &dev_end);
	REQUIRE(dev != NULL);
	CHECK(contains(dev, (size_t)(dev_end - dev), pwrb_hid, sizeof(pwrb_hid)));
	CHECK(find_object(sb, sb_end, true, "VGEN", &dev_end) != NULL);

	/* GED0's _EVT notifies both, by their full paths. */
	dev = find_object(sb, sb_end, true, "GED0", &dev_end);
	REQUIRE(dev != NULL);
	evt = find_object(dev, dev_end, false, "_EVT", &evt_end);
	REQUIRE(evt != NULL && evt_end <= dev_end);
	CHECK(evt[4] == 0x01); /* one argument, the GSI */
	CHECK(contains(evt, (size_t)(evt_end - evt), notify_pwrb, sizeof(notify_pwrb)));
	CHECK(contains(evt, (size_t)(evt_end - evt), notify_vgen, sizeof(notify_vgen)));
	/* ... after reading the selector, which is on the port tern serves it at. */
	CHECK(contains(evt, (size_t)(evt_end - evt),
		       "\x70"
		       "ESEL\x60",
		       6));
	CHECK(contains(dev, (size_t)(dev_end - dev),
		       "\x5b\x80"
		       "EREG\x01\x0b\x04\x06\x0a\x04",
		       12));
}

TEST(acpi_rejects_bad_cpu_counts)
{
	struct acpi_config cfg = default_cfg;

	cfg.ncpus = 0;
	CHECK(acpi_build(buf, BUF_SIZE, BASE, &cfg) == -EINVAL);
	cfg.ncpus = ACPI_MAX_CPUS + 1;
	CHECK(acpi_build(buf, BUF_SIZE, BASE, &cfg) == -EINVAL);
	CHECK(acpi_build(buf, BUF_SIZE, BASE, NULL) == -EINVAL);
}

TEST(acpi_too_small_buffer_is_enospc_and_stays_in_bounds)
{
	static uint8_t small[2048 + GUARD];
	long need = build(&default_cfg);

	REQUIRE(need > 0 && need <= 2048);
	/* Every size short of what is needed fails without touching the guard. */
	for (long size = 0; size < need; size++) {
		memset(small, GUARD_BYTE, sizeof(small));
		CHECK(acpi_build(small, (size_t)size, BASE, &default_cfg) == -ENOSPC);
		for (size_t i = (size_t)size; i < sizeof(small); i++) {
			if (small[i] != GUARD_BYTE) {
				CHECK(!"acpi_build wrote past size");
				break;
			}
		}
	}
	memset(small, GUARD_BYTE, sizeof(small));
	CHECK(acpi_build(small, (size_t)need, BASE, &default_cfg) == need);
	CHECK(small[need] == GUARD_BYTE);
	CHECK(memcmp(small, buf, (size_t)need) == 0);
}

TEST(aml_pkglen_boundaries)
{
	uint8_t o[AML_PKGLEN_MAX];

	/* body_len + the PkgLength's own size is what gets encoded. */
	CHECK(aml_pkglen_encode(o, 0) == 1 && o[0] == 0x01);
	CHECK(aml_pkglen_encode(o, 62) == 1 && o[0] == 63);
	CHECK(aml_pkglen_encode(o, 63) == 2 && o[0] == 0x41 && o[1] == 0x04);	/* 65 */
	CHECK(aml_pkglen_encode(o, 64) == 2 && o[0] == 0x42 && o[1] == 0x04);	/* 66 */
	CHECK(aml_pkglen_encode(o, 4093) == 2 && o[0] == 0x4f && o[1] == 0xff); /* 4095 */
	CHECK(aml_pkglen_encode(o, 4094) == 3 && o[0] == 0x81 && o[1] == 0x00 &&
	      o[2] == 0x01); /* 4097 */
	CHECK(aml_pkglen_encode(o, 4096) == 3 && o[0] == 0x83 && o[1] == 0x00 && o[2] == 0x01);
	CHECK(aml_pkglen_encode(o, 0xffffc) == 3 && o[0] == 0x8f && o[1] == 0xff &&
	      o[2] == 0xff); /* 0xfffff */
	CHECK(aml_pkglen_encode(o, 0xffffd) == 4 && o[0] == 0xc1 && o[1] == 0x00 && o[2] == 0x00 &&
	      o[3] == 0x01); /* 0x100001 */
	CHECK(aml_pkglen_encode(o, 0xffffffb) == 4 && o[0] == 0xcf && o[1] == 0xff &&
	      o[2] == 0xff && o[3] == 0xff);
	CHECK(aml_pkglen_encode(o, 0xffffffc) == -EINVAL);
}

TEST(aml_close_grows_pkglen_past_63)
{
	uint8_t out[256];
	struct aml a;
	size_t s;

	aml_init(&a, out, sizeof(out));
	s = aml_scope_open(&a, "\\");
	for (int i = 0; i < 61; i++)
		aml_byte(&a, 0xaa);
	aml_close(&a, s);
	/* Body = 2-byte name + 61 = 63 bytes: one more than fits a 1-byte PkgLength. */
	REQUIRE(a.err == 0);
	CHECK(a.len == 1 + 2 + 63);
	CHECK(out[0] == 0x10 && out[1] == 0x41 && out[2] == 0x04);
	CHECK(out[3] == '\\' && out[4] == 0x00 && out[5] == 0xaa && out[65] == 0xaa);
}

TEST(aml_eisaid)
{
	uint32_t v = 0;
	uint8_t out[8];
	struct aml a;

	CHECK(aml_eisaid_encode("PNP0303", &v) == 0 && v == 0x0303d041);
	CHECK(aml_eisaid_encode("PNP0B00", &v) == 0 && v == 0x000bd041);
	CHECK(aml_eisaid_encode("PNP0A03", &v) == 0 && v == 0x030ad041);
	CHECK(aml_eisaid_encode("ABC1234", &v) == 0 && v == 0x34124304);
	CHECK(aml_eisaid_encode("PNP030", &v) == -EINVAL);
	CHECK(aml_eisaid_encode("pnp0303", &v) == -EINVAL);
	CHECK(aml_eisaid_encode("PNP03G3", &v) == -EINVAL);

	aml_init(&a, out, sizeof(out));
	aml_eisaid(&a, "PNP0303");
	CHECK(a.err == 0 && a.len == 5);
	CHECK(memcmp(out, "\x0c\x41\xd0\x03\x03", 5) == 0);
}

TEST(aml_names_and_integers)
{
	uint8_t out[64];
	struct aml a;

	aml_init(&a, out, sizeof(out));
	aml_namestring(&a, "\\_SB.COM1");
	CHECK(a.len == 10 && memcmp(out, "\\\x2e_SB_COM1", 10) == 0);

	aml_init(&a, out, sizeof(out));
	aml_namestring(&a, "_HID");
	aml_namestring(&a, "^A.B.C");
	CHECK(a.len == 4 + 15 && memcmp(out,
					"_HID^\x2f\x03"
					"A___B___C___",
					19) == 0);

	static const char *const bad[] = { "", "lower", "_SB.", ".X", "ABCDE", "1ABC", "A..B" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, out, sizeof(out));
		aml_namestring(&a, bad[i]);
		CHECK(a.err == -EINVAL && a.len == 0);
	}

	aml_init(&a, out, sizeof(out));
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 0xff);
	aml_integer(&a, 0x100);
	aml_integer(&a, 0x10000);
	aml_integer(&a, 0x100000000ULL);
	REQUIRE(a.err == 0 && a.len == 1 + 1 + 2 + 3 + 5 + 9);
	CHECK(memcmp(out,
		     "\x00\x01\x0a\xff\x0b\x00\x01\x0c\x00\x00\x01\x00"
		     "\x0e\x00\x00\x00\x00\x01\x00\x00\x00",
		     21) == 0);

	aml_init(&a, out, sizeof(out));
	aml_name_string(&a, "_STR", "hi");
	CHECK(a.len == 9 && memcmp(out, "\x08_STR\x0dhi", 9) == 0);
}

TEST(aml_resource_template_bytes)
{
	/* Name(_CRS, ResourceTemplate() { IO(Decode16, 0x60, 0x60, 1, 1) }) */
	static const uint8_t want[] = { 0x08, '_',  'C',  'R',	'S',  0x11, 0x0d, 0x0a, 0x0a, 0x47,
					0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01, 0x79, 0x7d };
	uint8_t out[64];
	struct aml a;
	size_t m;

	aml_init(&a, out, sizeof(out));
	aml_name(&a, "_CRS");
	m = aml_restemplate_open(&a);
	aml_res_io(&a, 0x60, 1);
	aml_restemplate_close(&a, m);
	REQUIRE(a.err == 0);
	CHECK(a.len == sizeof(want) && memcmp(out, want, sizeof(want)) == 0);
	CHECK(acpi_checksum(out + 9, a.len - 9) == 0); /* descriptors + end tag */

	/* Memory32Fixed and extended Interrupt descriptors. */
	aml_init(&a, out, sizeof(out));
	aml_res_memory32_fixed(&a, 0xd0000000, 0x1000, true);
	aml_res_interrupt(&a, 10, AML_INT_EDGE | AML_INT_ACTIVE_LOW);
	REQUIRE(a.err == 0 && a.len == 12 + 9);
	CHECK(memcmp(out, "\x86\x09\x00\x01\x00\x00\x00\xd0\x00\x10\x00\x00", 12) == 0);
	CHECK(memcmp(out + 12, "\x89\x06\x00\x07\x01\x0a\x00\x00\x00", 9) == 0);
}

TEST(aml_package_and_buffer)
{
	uint8_t out[64];
	struct aml a;
	size_t m;

	aml_init(&a, out, sizeof(out));
	m = aml_package_open(&a, 2);
	aml_integer(&a, 2);
	aml_string(&a, "x");
	aml_close(&a, m);
	aml_buffer(&a, "\x01\x02\x03", 3);
	REQUIRE(a.err == 0);
	CHECK(a.len == 8 + 7);
	CHECK(memcmp(out,
		     "\x12\x07\x02\x0a\x02\x0d"
		     "x\x00",
		     8) == 0);
	CHECK(memcmp(out + 8, "\x11\x06\x0a\x03\x01\x02\x03", 7) == 0);

	aml_init(&a, out, sizeof(out));
	aml_package_open(&a, 256);
	CHECK(a.err == -EINVAL);
}

TEST(aml_method)
{
	uint8_t out[32];
	struct aml a;
	size_t m;

	/* Method(_STA, 0, NotSerialized) { Return(0x0f) } */
	aml_init(&a, out, sizeof(out));
	m = aml_method_open(&a, "_STA", 0, false);
	aml_byte(&a, AML_OP_RETURN);
	aml_integer(&a, 0x0f);
	aml_close(&a, m);
	REQUIRE(a.err == 0);
	CHECK(a.len == 10 && memcmp(out, "\x14\x09_STA\x00\xa4\x0a\x0f", 10) == 0);
}

TEST(aml_never_writes_past_cap)
{
	/* Scope(\_SB) { Device(RTC) { _HID, _CRS } } takes exactly 46 bytes. */
	const size_t whole = 46;
	uint8_t out[46 + GUARD];

	for (size_t cap = 0; cap <= whole; cap++) {
		struct aml a;
		size_t s, d, c;

		memset(out, GUARD_BYTE, sizeof(out));
		aml_init(&a, out, cap);
		s = aml_scope_open(&a, "\\_SB");
		d = aml_device_open(&a, "RTC");
		aml_name_eisaid(&a, "_HID", "PNP0B00");
		aml_name(&a, "_CRS");
		c = aml_restemplate_open(&a);
		aml_res_io(&a, 0x70, 2);
		aml_res_irq(&a, 8);
		aml_restemplate_close(&a, c);
		aml_close(&a, d);
		aml_close(&a, s);
		CHECK(a.len <= cap);
		for (size_t i = cap; i < sizeof(out); i++)
			CHECK(out[i] == GUARD_BYTE);
		CHECK(a.err == (cap < whole ? -ENOSPC : 0));
		CHECK(cap < whole || a.len == whole);
	}
}
