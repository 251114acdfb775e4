/*
 * Tests for the PCI bus (configuration mechanism #1, host bridge, BAR sizing,
 * placement, relocation and MMIO dispatch, capability lists, the DSDT entry) and for
 * the GSI routing table, with a fake KVM behind the routing hook.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "devices/pci.h"
#include "kvm/irq_routing.h"
#include "unit.h"

#define WIN_BASE LAYOUT_PCI_MMIO_BASE
#define WIN_SIZE LAYOUT_PCI_MMIO_SIZE

static void addr_write(struct pci_bus *b, uint32_t v)
{
	pci_config_addr_io(b, 0, (uint8_t *)&v, 4, true);
}

static uint32_t addr_read(struct pci_bus *b)
{
	uint32_t v = 0;

	pci_config_addr_io(b, 0, (uint8_t *)&v, 4, false);
	return v;
}

static uint32_t cfg_addr(unsigned int slot, uint32_t off)
{
	return 0x80000000u | (slot << 11) | (off & 0xfc);
}

static uint32_t cfg_rd(struct pci_bus *b, unsigned int slot, uint32_t off, uint32_t len)
{
	uint32_t v = 0;

	addr_write(b, cfg_addr(slot, off));
	pci_config_data_io(b, off & 3, (uint8_t *)&v, len, false);
	return v;
}

static void cfg_wr(struct pci_bus *b, unsigned int slot, uint32_t off, uint32_t len, uint32_t v)
{
	addr_write(b, cfg_addr(slot, off));
	pci_config_data_io(b, off & 3, (uint8_t *)&v, len, true);
}

static uint64_t mmio_rd(struct pci_bus *b, uint64_t gpa, uint32_t len)
{
	uint64_t v = 0;

	pci_mmio_io(b, gpa - WIN_BASE, (uint8_t *)&v, len, false);
	return v;
}

static void mmio_wr(struct pci_bus *b, uint64_t gpa, uint32_t len, uint64_t v)
{
	pci_mmio_io(b, gpa - WIN_BASE, (uint8_t *)&v, len, true);
}

/* A device with one 64-bit BAR (16 KiB) and one 32-bit BAR (4 KiB) that records accesses. */
struct fake_dev {
	struct pci_dev pci;
	unsigned int accesses, moves;
	unsigned int last_bar;
	uint64_t last_off, last_val, last_moved;
	uint32_t last_len;
	bool last_write;
};

static void fake_bar_access(struct pci_dev *d, unsigned int bar, uint64_t off, uint8_t *data,
			    uint32_t len, bool is_write)
{
	struct fake_dev *f = d->opaque;

	f->accesses++;
	f->last_bar = bar;
	f->last_off = off;
	f->last_len = len;
	f->last_write = is_write;
	if (is_write) {
		f->last_val = 0;
		memcpy(&f->last_val, data, len);
	} else {
		uint64_t v = 0x1122334455667788ULL;
		memcpy(data, &v, len);
	}
}

static void fake_bar_moved(struct pci_dev *d, unsigned int bar, uint64_t addr)
{
	struct fake_dev *f = d->opaque;

	f->moves++;
	f->last_moved = addr;
}

static void fake_init(struct fake_dev *f)
{
	memset(f, 0, sizeof(*f));
	pci_dev_init(&f->pci, 0x1234, 0x5678, 0xff0000, 2, 0x1234, 0x0001);
	f->pci.opaque = f;
	f->pci.name = "fake";
	f->pci.bar_access = fake_bar_access;
	f->pci.bar_moved = fake_bar_moved;
	pci_dev_set_bar(&f->pci, 0, PCI_BAR_MEM64, 0x4000);
	pci_dev_set_bar(&f->pci, 2, PCI_BAR_MEM32, 0x1000);
}

TEST(pci_config_mechanism1)
{
	struct pci_bus b;
	uint32_t v;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	/* Linux's type-1 probe: the address register reads back what was written. */
	addr_write(&b, 0x80000000u);
	CHECK(addr_read(&b) == 0x80000000u);
	addr_write(&b, 0x80000003u);
	CHECK(addr_read(&b) == 0x80000000u); /* bits 1:0 read as zero */
	/* A byte write to 0xcfb (part of the probe) is not an address register write. */
	addr_write(&b, 0x80000000u);
	v = 0x01;
	pci_config_addr_io(&b, 0, (uint8_t *)&v, 1, true);
	CHECK(addr_read(&b) == 0x80000000u);
	v = 0;
	pci_config_addr_io(&b, 0, (uint8_t *)&v, 2, false);
	CHECK(v == 0xffff);

	/* Enable bit clear: nothing answers. */
	addr_write(&b, 0x00000000u);
	v = 0;
	pci_config_data_io(&b, 0, (uint8_t *)&v, 4, false);
	CHECK(v == 0xffffffffu);

	/* dword, word and byte reads at every offset within the dword */
	CHECK(cfg_rd(&b, 0, 0, 4) == ((uint32_t)PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR));
	CHECK(cfg_rd(&b, 0, 0, 2) == PCI_HOST_VENDOR);
	CHECK(cfg_rd(&b, 0, 2, 2) == PCI_HOST_DEVICE);
	CHECK(cfg_rd(&b, 0, 1, 2) == ((PCI_HOST_VENDOR >> 8) | ((PCI_HOST_DEVICE & 0xff) << 8)));
	CHECK(cfg_rd(&b, 0, 0, 1) == (PCI_HOST_VENDOR & 0xff));
	CHECK(cfg_rd(&b, 0, 1, 1) == (PCI_HOST_VENDOR >> 8));
	CHECK(cfg_rd(&b, 0, 3, 1) == (PCI_HOST_DEVICE >> 8));
	/* An access leaving the selected dword (in 0xcfe with width 4) reads all-ones. */
	addr_write(&b, cfg_addr(0, 0));
	v = 0;
	pci_config_data_io(&b, 2, (uint8_t *)&v, 4, false);
	CHECK(v == 0xffffffffu);
	v = 0;
	pci_config_data_io(&b, 3, (uint8_t *)&v, 2, false);
	CHECK(v == 0xffff);

	/* Empty slot, other bus, other function, extended register bits: all-ones. */
	CHECK(cfg_rd(&b, 5, 0, 4) == 0xffffffffu);
	addr_write(&b, 0x80010000u);
	v = 0;
	pci_config_data_io(&b, 0, (uint8_t *)&v, 4, false);
	CHECK(v == 0xffffffffu);
	addr_write(&b, 0x80000100u);
	pci_config_data_io(&b, 0, (uint8_t *)&v, 4, false);
	CHECK(v == 0xffffffffu);
	addr_write(&b, 0x81000000u);
	pci_config_data_io(&b, 0, (uint8_t *)&v, 4, false);
	CHECK(v == 0xffffffffu);
	pci_bus_destroy(&b);
}

TEST(pci_host_bridge)
{
	struct pci_bus b;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	/* What Linux's pci_sanity_check() looks for: class 0x0600 at 0x0a on bus 0. */
	CHECK(cfg_rd(&b, 0, 0x0a, 2) == 0x0600);
	CHECK(cfg_rd(&b, 0, 0x08, 4) >> 8 == PCI_CLASS_HOST_BRIDGE);
	CHECK(cfg_rd(&b, 0, PCI_HEADER_TYPE, 1) == 0);
	/* Read-only identity */
	cfg_wr(&b, 0, 0, 4, 0);
	CHECK(cfg_rd(&b, 0, 0, 2) == PCI_HOST_VENDOR);
	cfg_wr(&b, 0, 0x08, 4, 0);
	CHECK(cfg_rd(&b, 0, 0x0a, 2) == 0x0600);
	/* No BARs: sizing reads zero */
	cfg_wr(&b, 0, PCI_BAR0, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 0, PCI_BAR0, 4) == 0);
	cfg_wr(&b, 0, PCI_ROM_ADDRESS, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 0, PCI_ROM_ADDRESS, 4) == 0);
	pci_bus_destroy(&b);
}

TEST(pci_header_write_masks)
{
	struct pci_bus b;
	struct fake_dev f;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	int slot = pci_dev_add(&b, &f.pci);
	REQUIRE(slot == 1);
	CHECK(cfg_rd(&b, 1, PCI_VENDOR_ID, 4) == 0x56781234u);
	CHECK(cfg_rd(&b, 1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY); /* as firmware leaves it */
	cfg_wr(&b, 1, PCI_VENDOR_ID, 4, 0xdeadbeef);
	CHECK(cfg_rd(&b, 1, PCI_VENDOR_ID, 4) == 0x56781234u);
	cfg_wr(&b, 1, PCI_COMMAND, 2, 0xffff);
	CHECK(cfg_rd(&b, 1, PCI_COMMAND, 2) == 0x0547);
	/* Status: no writable bits; capability bit stays as is */
	uint32_t status = cfg_rd(&b, 1, PCI_STATUS, 2);
	cfg_wr(&b, 1, PCI_STATUS, 2, 0xffff);
	CHECK(cfg_rd(&b, 1, PCI_STATUS, 2) == status);
	cfg_wr(&b, 1, PCI_HEADER_TYPE, 1, 0x80);
	CHECK(cfg_rd(&b, 1, PCI_HEADER_TYPE, 1) == 0);
	cfg_wr(&b, 1, PCI_INTERRUPT_LINE, 1, 0x0b);
	CHECK(cfg_rd(&b, 1, PCI_INTERRUPT_LINE, 1) == 0x0b);
	cfg_wr(&b, 1, PCI_INTERRUPT_PIN, 1, 0x01);
	CHECK(cfg_rd(&b, 1, PCI_INTERRUPT_PIN, 1) == 0);
	cfg_wr(&b, 1, PCI_CAPABILITY_LIST, 1, 0x40);
	CHECK(cfg_rd(&b, 1, PCI_CAPABILITY_LIST, 1) == 0);
	pci_bus_destroy(&b);
}

TEST(pci_bar_placement_and_sizing)
{
	struct pci_bus b;
	struct fake_dev f, g;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	fake_init(&g);
	REQUIRE(pci_dev_add(&b, &f.pci) == 1);
	REQUIRE(pci_dev_add(&b, &g.pci) == 2);
	/* Placed inside the window, naturally aligned, decoding, not overlapping. */
	uint64_t a0 = f.pci.bar[0].addr, a2 = f.pci.bar[2].addr, b0 = g.pci.bar[0].addr;
	CHECK(a0 >= WIN_BASE && a0 + 0x4000 <= WIN_BASE + WIN_SIZE && a0 % 0x4000 == 0);
	CHECK(a2 >= WIN_BASE && a2 % 0x1000 == 0 && (a2 >= a0 + 0x4000 || a2 + 0x1000 <= a0));
	CHECK(b0 >= a0 + 0x4000 && b0 % 0x4000 == 0);
	CHECK(f.moves == 2 && f.last_moved == a2);
	uint32_t lo = cfg_rd(&b, 1, PCI_BAR0, 4), hi = cfg_rd(&b, 1, PCI_BAR0 + 4, 4);
	CHECK(lo == ((uint32_t)a0 | PCI_BAR_MEM_TYPE_64));
	CHECK(hi == (uint32_t)(a0 >> 32));
	CHECK(cfg_rd(&b, 1, PCI_BAR0 + 8, 4) == (uint32_t)a2);

	/* Sizing the 64-bit BAR as Linux does: decode off, all-ones, read back, restore. */
	cfg_wr(&b, 1, PCI_COMMAND, 2, 0);
	CHECK(f.pci.bar[0].addr == PCI_BAR_UNMAPPED);
	cfg_wr(&b, 1, PCI_BAR0, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 1, PCI_BAR0, 4) == (0xffffc000u | PCI_BAR_MEM_TYPE_64));
	cfg_wr(&b, 1, PCI_BAR0 + 4, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 1, PCI_BAR0 + 4, 4) == 0xffffffffu);
	cfg_wr(&b, 1, PCI_BAR0 + 8, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 1, PCI_BAR0 + 8, 4) == 0xfffff000u);
	/* The unused BARs and the ROM BAR size to zero. */
	cfg_wr(&b, 1, PCI_BAR0 + 12, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 1, PCI_BAR0 + 12, 4) == 0);
	cfg_wr(&b, 1, PCI_ROM_ADDRESS, 4, 0xffffffffu);
	CHECK(cfg_rd(&b, 1, PCI_ROM_ADDRESS, 4) == 0);
	/* Even with decoding on, an all-ones BAR decodes nowhere. */
	cfg_wr(&b, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CHECK(f.pci.bar[0].addr == PCI_BAR_UNMAPPED && f.pci.bar[2].addr == PCI_BAR_UNMAPPED);
	cfg_wr(&b, 1, PCI_BAR0, 4, (uint32_t)a0);
	cfg_wr(&b, 1, PCI_BAR0 + 4, 4, (uint32_t)(a0 >> 32));
	cfg_wr(&b, 1, PCI_BAR0 + 8, 4, (uint32_t)a2);
	CHECK(f.pci.bar[0].addr == a0 && f.pci.bar[2].addr == a2);
	CHECK(f.last_moved == a2);
	pci_bus_destroy(&b);
}

TEST(pci_bar_relocation_moves_decode)
{
	struct pci_bus b;
	struct fake_dev f;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	REQUIRE(pci_dev_add(&b, &f.pci) == 1);
	uint64_t old = f.pci.bar[0].addr, neu = WIN_BASE + 0x100000;

	CHECK(mmio_rd(&b, old + 0x10, 4) == 0x55667788u);
	CHECK(f.accesses == 1 && f.last_bar == 0 && f.last_off == 0x10 && f.last_len == 4);
	mmio_wr(&b, old + 0x3ff8, 8, 0xabcdef);
	CHECK(f.last_write && f.last_off == 0x3ff8 && f.last_len == 8 && f.last_val == 0xabcdef);
	mmio_rd(&b, f.pci.bar[2].addr + 4, 2);
	CHECK(f.last_bar == 2 && f.last_off == 4);

	/* Move BAR 0 (low half first, as a driver would). */
	unsigned int moves = f.moves;
	cfg_wr(&b, 1, PCI_BAR0, 4, (uint32_t)neu);
	cfg_wr(&b, 1, PCI_BAR0 + 4, 4, 0);
	CHECK(f.pci.bar[0].addr == neu);
	CHECK(f.moves == moves + 1 && f.last_moved == neu);
	unsigned int n = f.accesses;
	CHECK(mmio_rd(&b, old + 0x10, 4) == 0xffffffffu);
	CHECK(f.accesses == n);
	CHECK(mmio_rd(&b, neu + 0x20, 1) == 0x88);
	CHECK(f.accesses == n + 1 && f.last_off == 0x20);

	/* Memory decoding off: nothing decodes; on again: back where it was. */
	cfg_wr(&b, 1, PCI_COMMAND, 2, 0);
	CHECK(f.last_moved == PCI_BAR_UNMAPPED);
	CHECK(mmio_rd(&b, neu, 4) == 0xffffffffu);
	cfg_wr(&b, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CHECK(f.pci.bar[0].addr == neu);

	/* Outside the window, or crossing its end: not decoded. */
	cfg_wr(&b, 1, PCI_BAR0, 4, 0x80000000u);
	CHECK(f.pci.bar[0].addr == PCI_BAR_UNMAPPED);
	cfg_wr(&b, 1, PCI_BAR0, 4, (uint32_t)(WIN_BASE + WIN_SIZE - 0x4000));
	CHECK(f.pci.bar[0].addr == WIN_BASE + WIN_SIZE - 0x4000);
	cfg_wr(&b, 1, PCI_BAR0 + 4, 4, 1); /* above 4 GiB: outside the window */
	CHECK(f.pci.bar[0].addr == PCI_BAR_UNMAPPED);
	cfg_wr(&b, 1, PCI_BAR0 + 4, 4, 0);
	CHECK(f.pci.bar[0].addr == WIN_BASE + WIN_SIZE - 0x4000);
	pci_bus_destroy(&b);
}

TEST(pci_mmio_unclaimed_and_straddling)
{
	struct pci_bus b;
	struct fake_dev f;
	uint8_t buf[8];

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	REQUIRE(pci_dev_add(&b, &f.pci) == 1);
	CHECK(mmio_rd(&b, WIN_BASE + WIN_SIZE - 8, 8) == UINT64_MAX);
	uint64_t end = f.pci.bar[0].addr + 0x4000;
	/* 4 bytes at end-2 cross the BAR's end: claimed by nobody */
	CHECK(mmio_rd(&b, end - 2, 4) == 0xffffffffu);
	mmio_wr(&b, end - 2, 4, 0);
	CHECK(f.accesses == 0);
	/* Widths KVM never produces are refused too */
	memset(buf, 0, sizeof(buf));
	pci_mmio_io(&b, f.pci.bar[0].addr - WIN_BASE, buf, 0, false);
	CHECK(f.accesses == 0);
	pci_bus_destroy(&b);
}

TEST(pci_capability_list)
{
	struct pci_bus b;
	struct fake_dev f;
	uint8_t cap_a[8] = { 0x09, 0xee, 8, 1, 2, 3, 4, 5 };
	uint8_t cap_b[12] = { 0x11, 0xee, 0, 0 };

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	CHECK(pci_cap_add(&f.pci, cap_a, 6) == 0x40);
	CHECK(pci_cap_add(&f.pci, cap_b, sizeof(cap_b)) == 0x48); /* dword aligned */
	CHECK(pci_cap_add(&f.pci, cap_a, sizeof(cap_a)) == 0x54);
	REQUIRE(pci_dev_add(&b, &f.pci) == 1);
	CHECK(cfg_rd(&b, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	uint32_t ptr = cfg_rd(&b, 1, PCI_CAPABILITY_LIST, 1), ids[4], n = 0;
	while (ptr && n < 4) {
		ids[n++] = cfg_rd(&b, 1, ptr, 1);
		ptr = cfg_rd(&b, 1, ptr + 1, 1);
	}
	CHECK(n == 3 && ids[0] == 0x09 && ids[1] == 0x11 && ids[2] == 0x09);
	CHECK(cfg_rd(&b, 1, 0x42, 1) == 8);
	/* A capability that does not fit is refused */
	uint8_t big[200] = { 0x09 };
	CHECK(pci_cap_add(&f.pci, big, sizeof(big)) == -ENOSPC);
	pci_bus_destroy(&b);
}

TEST(pci_bus_full_and_window_full)
{
	struct pci_bus b;
	static struct fake_dev f[PCI_MAX_DEVS];

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	for (unsigned int i = 1; i < PCI_MAX_DEVS; i++) {
		fake_init(&f[i]);
		CHECK(pci_dev_add(&b, &f[i].pci) == (int)i);
	}
	fake_init(&f[0]);
	CHECK(pci_dev_add(&b, &f[0].pci) == -ENOSPC);
	pci_bus_destroy(&b);

	/* A window too small for the BARs */
	pci_bus_init(&b, WIN_BASE, 0x4000, NULL);
	fake_init(&f[0]);
	CHECK(pci_dev_add(&b, &f[0].pci) == -ENOSPC);
	CHECK(b.dev[1] == NULL);
	pci_bus_destroy(&b);

	/* Bad BAR declarations */
	fake_init(&f[0]);
	CHECK(pci_dev_set_bar(&f[0].pci, 1, PCI_BAR_MEM32, 0x1000) ==
	      -EBUSY); /* BAR0's high half */
	CHECK(pci_dev_set_bar(&f[0].pci, 5, PCI_BAR_MEM64, 0x1000) == -EINVAL);
	CHECK(pci_dev_set_bar(&f[0].pci, 3, PCI_BAR_MEM32, 0x1800) == -EINVAL);
	CHECK(pci_dev_set_bar(&f[0].pci, 6, PCI_BAR_MEM32, 0x1000) == -EINVAL);
}

static void noop_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
}

TEST(pci_bus_attach_ports)
{
	struct pci_bus b;
	struct bus pio, mmio;
	uint32_t v;

	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	/* The reset-control register at 0xcf9 is registered first in the VMM. */
	REQUIRE(bus_register(&pio, PORT_PCI_RESET, 1, noop_io, NULL, "cf9") == 0);
	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	REQUIRE(pci_bus_attach(&b, &pio, &mmio) == 0);
	v = 0x80000000u;
	CHECK(bus_access(&pio, PORT_PCI_CONFIG_ADDR, (uint8_t *)&v, 4, true));
	v = 0;
	CHECK(bus_access(&pio, PORT_PCI_CONFIG_DATA + 2, (uint8_t *)&v, 2, false));
	CHECK(v == PCI_HOST_DEVICE);
	v = 0;
	CHECK(bus_access(&mmio, WIN_BASE + 0x1000, (uint8_t *)&v, 4, false));
	CHECK(v == 0xffffffffu);
	pci_bus_destroy(&b);
}

static bool find(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (!memcmp(hay + i, needle, m))
			return true;
	return false;
}

static void dsdt_hook(struct aml *a, void *opaque)
{
	pci_dsdt(a, opaque);
}

TEST(pci_dsdt_host_bridge)
{
	struct pci_bus b;
	uint8_t buf[1024];
	struct aml a;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	aml_init(&a, buf, sizeof(buf));
	pci_dsdt(&a, &b);
	REQUIRE(a.err == 0);
	CHECK(find(buf, a.len, "PCI0", 4));
	uint32_t eisa;
	REQUIRE(aml_eisaid_encode("PNP0A03", &eisa) == 0);
	CHECK(find(buf, a.len, &eisa, 4));
	CHECK(find(buf, a.len, "_SEG", 4) && find(buf, a.len, "_BBN", 4) &&
	      find(buf, a.len, "_UID", 4) && find(buf, a.len, "_CRS", 4));
	/* WordBusNumber 0..0xff */
	const uint8_t busnum[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0,    0,
				   0x00, 0x00, 0xff, 0x00, 0,	 0,    0x00, 0x01 };
	CHECK(find(buf, a.len, busnum, sizeof(busnum)));
	/* IO(Decode16, 0xcf8, 0xcf8, 1, 8) */
	const uint8_t io[] = { 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08 };
	CHECK(find(buf, a.len, io, sizeof(io)));
	/* WordIO 0x0000-0x0cf7 and 0x0d00-0xffff */
	const uint8_t io1[] = { 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0,	  0,
				0x00, 0x00, 0xf7, 0x0c, 0,    0,    0xf8, 0x0c };
	const uint8_t io2[] = { 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0,	  0,
				0x00, 0x0d, 0xff, 0xff, 0,    0,    0x00, 0xf3 };
	CHECK(find(buf, a.len, io1, sizeof(io1)));
	CHECK(find(buf, a.len, io2, sizeof(io2)));
	/* DWordMemory over the window */
	const uint8_t mem[] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, /* header, flags */
				0,    0,    0,	  0,		    /* granularity */
				0x00, 0x00, 0x00, 0xc0,		    /* minimum */
				0xff, 0xff, 0xff, 0xcf,		    /* maximum */
				0,    0,    0,	  0,		    /* translation */
				0x00, 0x00, 0x00, 0x10 };	    /* length */
	CHECK(find(buf, a.len, mem, sizeof(mem)));

	/* And inside a whole DSDT */
	static uint8_t tables[0x8000];
	struct acpi_config cfg = {
		.ncpus = 1,
		.ioapic_addr = (uint32_t)LAYOUT_IOAPIC,
		.sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
		.sleep_sts_port = PORT_ACPI_SLEEP_STS,
		.reset_port = PORT_ACPI_RESET,
		.reset_value = ACPI_RESET_VALUE,
		.dsdt_devices = dsdt_hook,
		.dsdt_opaque = &b,
	};
	long n = acpi_build(tables, sizeof(tables), LAYOUT_ACPI_BASE, &cfg);
	CHECK(n > 0);
	CHECK(n > 0 && find(tables, (size_t)n, mem, sizeof(mem)));
	pci_bus_destroy(&b);
}

TEST(pci_config_fuzz)
{
	struct pci_bus b;
	struct fake_dev f;
	static const uint32_t lens[] = { 1, 2, 3, 4, 8 };
	uint64_t v;

	pci_bus_init(&b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f);
	uint8_t cap[12] = { 0x11 };
	pci_cap_add(&f.pci, cap, sizeof(cap));
	REQUIRE(pci_dev_add(&b, &f.pci) == 1);
	srand(1);
	for (unsigned int round = 0; round < 4; round++) {
		for (unsigned int slot = 0; slot < 3; slot++) {
			for (uint32_t off = 0; off < PCI_CFG_SIZE; off++) {
				for (unsigned int l = 0; l < 5; l++) {
					addr_write(&b, cfg_addr(slot, off) |
							       (round == 3 ? (uint32_t)rand() : 0));
					v = ((uint64_t)rand() << 32) | (uint64_t)rand();
					pci_config_data_io(&b, off & 3, (uint8_t *)&v,
							   lens[l] > 4 ? 4 : lens[l], true);
					pci_config_data_io(&b, off & 3, (uint8_t *)&v,
							   lens[l] > 4 ? 4 : lens[l], false);
					uint32_t x = (uint32_t)rand();
					pci_config_addr_io(&b, 0, (uint8_t *)&x,
							   lens[l] > 4 ? 4 : lens[l], rand() & 1);
					mmio_rd(&b, WIN_BASE + ((uint64_t)rand() % WIN_SIZE),
						lens[l]);
					mmio_wr(&b, WIN_BASE + ((uint64_t)rand() % 0x10000),
						lens[l], v);
				}
			}
		}
	}
	/* Identity survived */
	CHECK(cfg_rd(&b, 0, 0x0a, 2) == 0x0600);
	CHECK(cfg_rd(&b, 1, PCI_VENDOR_ID, 4) == 0x56781234u);
	pci_bus_destroy(&b);
}

/* ---- GSI routing ---- */

struct fake_kvm {
	unsigned int calls;
	int fail;
	uint32_t n;
	struct kvm_irq_routing_entry e[IRQ_ROUTING_MAX_ENTRIES];
};

static int fake_set_routing(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n)
{
	struct fake_kvm *k = ctx;

	k->calls++;
	if (k->fail)
		return k->fail;
	k->n = n;
	memcpy(k->e, e, n * sizeof(*e));
	return 0;
}

static const struct kvm_irq_routing_entry *route(const struct fake_kvm *k, uint32_t gsi,
						 uint32_t type, uint32_t chip)
{
	for (uint32_t i = 0; i < k->n; i++)
		if (k->e[i].gsi == gsi && k->e[i].type == type &&
		    (type != KVM_IRQ_ROUTING_IRQCHIP || k->e[i].u.irqchip.irqchip == chip))
			return &k->e[i];
	return NULL;
}

TEST(pci_irq_routing_defaults_and_msi)
{
	static struct irq_routing r;
	static struct fake_kvm k;
	const struct kvm_irq_routing_entry *e;

	memset(&k, 0, sizeof(k));
	irq_routing_init(&r, fake_set_routing, &k);
	CHECK(irq_routing_commit(&r) == 0);
	CHECK(k.calls == 0); /* nothing changed yet: KVM already has the defaults */

	int gsi = irq_routing_alloc_msi(&r);
	CHECK(gsi == GSI_MSI_BASE);
	int gsi2 = irq_routing_alloc_msi(&r);
	CHECK(gsi2 == GSI_MSI_BASE + 1);
	CHECK(irq_routing_update_msi(&r, (uint32_t)gsi, 0xfee01000ULL, 0x4031) == 0);
	CHECK(k.calls == 1);
	CHECK(k.n == IRQ_ROUTING_DEFAULT_ENTRIES + 1);
	/* KVM's defaults: GSI 0-15 on IOAPIC and PIC, 16-23 on the IOAPIC only */
	for (uint32_t g = 0; g < IOAPIC_PINS; g++) {
		e = route(&k, g, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC);
		CHECK(e && e->u.irqchip.pin == g);
		uint32_t chip = g < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		e = route(&k, g, KVM_IRQ_ROUTING_IRQCHIP, chip);
		if (g < 16)
			CHECK(e && e->u.irqchip.pin == g % 8);
		else
			CHECK(e == NULL);
	}
	e = route(&k, 2, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_MASTER);
	CHECK(e && e->u.irqchip.pin == 2);
	e = route(&k, (uint32_t)gsi, KVM_IRQ_ROUTING_MSI, 0);
	CHECK(e && e->u.msi.address_lo == 0xfee01000u && e->u.msi.address_hi == 0 &&
	      e->u.msi.data == 0x4031);
	CHECK(route(&k, (uint32_t)gsi2, KVM_IRQ_ROUTING_MSI, 0) == NULL); /* no message yet */

	/* Same message again: no ioctl. New message: one. */
	CHECK(irq_routing_update_msi(&r, (uint32_t)gsi, 0xfee01000ULL, 0x4031) == 0);
	CHECK(k.calls == 1);
	CHECK(irq_routing_update_msi(&r, (uint32_t)gsi, 0x1fee02000ULL, 0x4032) == 0);
	CHECK(k.calls == 2);
	e = route(&k, (uint32_t)gsi, KVM_IRQ_ROUTING_MSI, 0);
	CHECK(e && e->u.msi.address_lo == 0xfee02000u && e->u.msi.address_hi == 1 &&
	      e->u.msi.data == 0x4032);

	/* A failed commit keeps the change pending and retries */
	k.fail = -EINVAL;
	CHECK(irq_routing_update_msi(&r, (uint32_t)gsi2, 0xfee00000ULL, 0x4033) == -EINVAL);
	k.fail = 0;
	CHECK(irq_routing_commit(&r) == 0);
	CHECK(route(&k, (uint32_t)gsi2, KVM_IRQ_ROUTING_MSI, 0) != NULL);

	/* Freeing drops the route; the GSI is reused */
	irq_routing_free(&r, (uint32_t)gsi);
	CHECK(irq_routing_commit(&r) == 0);
	CHECK(route(&k, (uint32_t)gsi, KVM_IRQ_ROUTING_MSI, 0) == NULL);
	CHECK(irq_routing_alloc_msi(&r) == gsi);

	/* Unknown GSIs are refused */
	CHECK(irq_routing_set_msi(&r, 3, 0xfee00000ULL, 0) == -EINVAL);
	CHECK(irq_routing_set_msi(&r, GSI_MSI_BASE + 100, 0xfee00000ULL, 0) == -EINVAL);
	CHECK(irq_routing_set_msi(&r, UINT32_MAX, 0xfee00000ULL, 0) == -EINVAL);
	irq_routing_free(&r, 5); /* ignored */
	irq_routing_destroy(&r);
}

TEST(pci_irq_routing_exhaustion)
{
	static struct irq_routing r;
	static struct fake_kvm k;

	memset(&k, 0, sizeof(k));
	irq_routing_init(&r, fake_set_routing, &k);
	for (unsigned int i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
		int gsi = irq_routing_alloc_msi(&r);
		CHECK(gsi == (int)(GSI_MSI_BASE + i));
		irq_routing_set_msi(&r, (uint32_t)gsi, 0xfee00000ULL, i);
	}
	CHECK(irq_routing_alloc_msi(&r) == -ENOSPC);
	CHECK(irq_routing_commit(&r) == 0);
	CHECK(k.n == IRQ_ROUTING_MAX_ENTRIES);
	irq_routing_destroy(&r);
}
