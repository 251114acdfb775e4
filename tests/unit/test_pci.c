/*
 * Tests for the PCI bus (configuration mechanism #1, host bridge, BAR sizing,
 * placement, relocation and MMIO dispatch, capability lists, the DSDT entry, snapshot
 * state) and for the GSI routing table, with a fake KVM behind the routing hook.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "core/util.h"
#include "devices/pci.h"
#include "devstate.h"
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
	unsigned int last_bar, last_moved_bar;
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
	f->last_moved_bar = bar;
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

/* ---- snapshot state ---- */

/* Payload layout of pci_save(): a header, then per function its bytes and six BARs. */
#define ST_CONFIG_ADDR 16
#define ST_PRESENT 20
#define ST_FUNCS 24
#define ST_BAR_LEN (1 + 8 + 8)
#define ST_FUNC_LEN (PCI_CFG_SIZE + PCI_NUM_BARS * ST_BAR_LEN)
#define ST_FUNC(n) (ST_FUNCS + (n)*ST_FUNC_LEN)
#define ST_BAR(n, i) (ST_FUNC(n) + PCI_CFG_SIZE + (i)*ST_BAR_LEN)

/* Bus with the host bridge and two fakes at 00:01.0 and 00:02.0, as at boot. */
static void state_bus(struct pci_bus *b, struct fake_dev *f, struct fake_dev *g)
{
	pci_bus_init(b, WIN_BASE, WIN_SIZE, NULL);
	fake_init(f);
	fake_init(g);
	pci_dev_add(b, &f->pci);
	pci_dev_add(b, &g->pci);
}

#define MOVED_BAR0 (WIN_BASE + 0x100000)

/* What a guest might leave: one BAR moved, one device's decoding off, header fields set. */
static void state_program(struct pci_bus *b)
{
	cfg_wr(b, 1, PCI_BAR0, 4, (uint32_t)MOVED_BAR0);
	cfg_wr(b, 1, PCI_BAR0 + 4, 4, 0);
	cfg_wr(b, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_wr(b, 1, 0x0c, 1, 0x10); /* cache line size */
	cfg_wr(b, 1, PCI_INTERRUPT_LINE, 1, 0x0b);
	cfg_wr(b, 2, PCI_COMMAND, 2, 0);
	cfg_wr(b, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	addr_write(b, cfg_addr(2, 0x3c) | 0x00050000u); /* latched as is: bus 5, reads ~0 */
}

static int pci_snapshot(struct pci_bus *b, struct devstate *d)
{
	if (devstate_begin(d, VMSTATE_TAG_PCI, PCI_STATE_VERSION))
		return -1;
	pci_save(b, &d->w);
	return devstate_finish(d);
}

TEST(pci_state_round_trip)
{
	struct pci_bus b, b2;
	struct fake_dev f, g, f2, g2;
	struct devstate d;
	struct vmstate_cursor c;
	char err[256] = "";

	state_bus(&b, &f, &g);
	uint64_t boot0 = f.pci.bar[0].addr, boot2 = f.pci.bar[2].addr, gboot = g.pci.bar[0].addr;
	state_program(&b);
	REQUIRE(f.pci.bar[0].addr == MOVED_BAR0 && g.pci.bar[0].addr == PCI_BAR_UNMAPPED);
	REQUIRE(pci_snapshot(&b, &d) == 0);
	CHECK(d.s->len == ST_FUNC(3));

	state_bus(&b2, &f2, &g2);
	unsigned int fm = f2.moves, gm = g2.moves;
	devstate_cursor(&d, &c);
	CHECK(pci_restore(&b2, &c, err, sizeof(err)) == 0);
	CHECK(err[0] == 0);
	/* The moves went through the hook, as after the guest's own writes, and only those. */
	CHECK(f2.moves == fm + 1 && f2.last_moved_bar == 0 && f2.last_moved == MOVED_BAR0);
	CHECK(g2.moves == gm + 2 && g2.last_moved == PCI_BAR_UNMAPPED);
	CHECK(f2.pci.bar[0].addr == MOVED_BAR0 && f2.pci.bar[2].addr == boot2);
	CHECK(g2.pci.bar[0].addr == PCI_BAR_UNMAPPED && g2.pci.bar[2].addr == PCI_BAR_UNMAPPED);

	/* The latched address, then every configuration dword of every slot, read alike. */
	CHECK(addr_read(&b2) == addr_read(&b));
	CHECK(addr_read(&b2) == (cfg_addr(2, 0x3c) | 0x00050000u));
	for (unsigned int slot = 0; slot < 4; slot++)
		for (uint32_t off = 0; off < PCI_CFG_SIZE; off += 4) {
			uint32_t x = cfg_rd(&b, slot, off, 4), y = cfg_rd(&b2, slot, off, 4);
			if (x != y) {
				CHECK(x == y);
				printf("  00:%02x.0 offset 0x%02x: 0x%08x, restored 0x%08x\n", slot,
				       off, x, y);
			}
		}
	CHECK(cfg_rd(&b2, 1, PCI_INTERRUPT_LINE, 1) == 0x0b);

	/* MMIO follows: the new place reaches the device, the boot places nobody. */
	CHECK(mmio_rd(&b2, MOVED_BAR0 + 0x20, 1) == 0x88);
	CHECK(f2.accesses == 1 && f2.last_bar == 0 && f2.last_off == 0x20);
	CHECK(mmio_rd(&b2, boot0 + 0x20, 4) == 0xffffffffu);
	CHECK(mmio_rd(&b2, gboot, 4) == 0xffffffffu);
	CHECK(g2.accesses == 0);
	mmio_rd(&b2, boot2 + 8, 4);
	CHECK(f2.accesses == 2 && f2.last_bar == 2 && f2.last_off == 8);
	devstate_free(&d);
	pci_bus_destroy(&b);
	pci_bus_destroy(&b2);
}

/* What a refused restore must not change. */
struct bus_image {
	uint32_t config_addr;
	uint8_t cfg[3][PCI_CFG_SIZE];
	struct pci_bar bar[3][PCI_NUM_BARS];
	unsigned int moves[3];
};

static void bus_image(const struct pci_bus *b, const struct fake_dev *f, const struct fake_dev *g,
		      struct bus_image *im)
{
	memset(im, 0, sizeof(*im));
	im->config_addr = b->config_addr;
	for (unsigned int s = 0; s < 3; s++) {
		memcpy(im->cfg[s], b->dev[s]->cfg, PCI_CFG_SIZE);
		memcpy(im->bar[s], b->dev[s]->bar, sizeof(im->bar[s]));
	}
	im->moves[1] = f->moves;
	im->moves[2] = g->moves;
}

static int pci_restore_any(void *dev, struct vmstate_cursor *c, char *err, size_t n)
{
	return pci_restore(dev, c, err, n);
}

TEST(pci_state_refused)
{
	struct pci_bus b, b2, b3;
	struct fake_dev f, g, f2, g2, f3, g3;
	struct devstate d;
	struct vmstate_cursor c;
	static struct bus_image before, after;
	char err[256];
	const struct devstate_bad bad[] = {
		{ 0, 0x01, "window" },
		{ 8, 0x10, "window" },
		{ ST_CONFIG_ADDR, 0x01, "bits 1:0" },
		{ ST_PRESENT, 0x08, "the file has a function at 00:03.0, this bus none" },
		{ ST_PRESENT, 0x04, "00:02.0 (fake) is not in the file" },
		{ ST_PRESENT + 3, 0x80, "00:1f.0" },
		{ ST_FUNC(0) + 0x0b, 0x01, "00:00.0 (host-bridge): config byte 0x0b" },
		{ ST_FUNC(1) + PCI_VENDOR_ID, 0x01, "00:01.0 (fake): config byte 0x00" },
		{ ST_FUNC(1) + PCI_HEADER_TYPE, 0x80, "config byte 0x0e" },
		{ ST_FUNC(1) + PCI_STATUS, PCI_STATUS_CAP_LIST, "config byte 0x06" },
		{ ST_FUNC(1) + PCI_BAR0, 0x01, "config byte 0x10" },	 /* BAR type bits */
		{ ST_FUNC(1) + PCI_BAR0 + 8, 0x80, "config byte 0x18" }, /* below BAR 2's size */
		{ ST_BAR(1, 0), 0x03, "BAR 0 is type 1" },
		{ ST_BAR(1, 2) + 2, 0x01, "BAR 2 is type 1 size 0x1100 in the file" },
		{ ST_BAR(1, 1), 0x01, "BAR 1 is type 1 size 0x0" },
		{ ST_BAR(1, 0) + 9, 0x10, "BAR 0 decodes at" },
		{ ST_BAR(1, 3) + 9, 0x01, "BAR 3 decodes at" },
		/* Registers that disagree with the saved decoding. */
		{ ST_FUNC(1) + PCI_BAR0 + 2, 0x01, "BAR 0 decodes at 0xc0100000 in the file" },
		{ ST_FUNC(2) + PCI_COMMAND, PCI_COMMAND_MEMORY, "00:02.0 (fake): BAR 0" },
	};

	state_bus(&b, &f, &g);
	state_program(&b);
	REQUIRE(pci_snapshot(&b, &d) == 0);
	size_t len = d.s->len;
	REQUIRE(len == ST_FUNC(3));

	state_bus(&b2, &f2, &g2);
	cfg_wr(&b2, 2, PCI_INTERRUPT_LINE, 1, 0x05); /* something to lose */
	bus_image(&b2, &f2, &g2, &before);
	/* bad[].val is XORed into the byte. */
	CHECK(devstate_refusals(&d, pci_restore_any, &b2, "pci: ", bad, ARRAY_SIZE(bad), true) ==
	      0);
	devstate_altered(&d, &c, len + 1, SIZE_MAX, 0);
	CHECK(pci_restore(&b2, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "after the last field") != NULL);
	bus_image(&b2, &f2, &g2, &after);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK(cfg_rd(&b2, 2, PCI_INTERRUPT_LINE, 1) == 0x05);

	/* Another machine: the second device is missing. */
	pci_bus_init(&b3, WIN_BASE, WIN_SIZE, NULL);
	fake_init(&f3);
	REQUIRE(pci_dev_add(&b3, &f3.pci) == 1);
	devstate_cursor(&d, &c);
	CHECK(pci_restore(&b3, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "the file has a function at 00:02.0") != NULL);
	pci_bus_destroy(&b3);
	/* Another window. */
	state_bus(&b3, &f3, &g3);
	b3.mmio_size /= 2;
	devstate_cursor(&d, &c);
	CHECK(pci_restore(&b3, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "window") != NULL);
	pci_bus_destroy(&b3);

	devstate_cursor(&d, &c);
	CHECK(pci_restore(&b2, &c, err, sizeof(err)) == 0);
	CHECK(f2.pci.bar[0].addr == MOVED_BAR0 && cfg_rd(&b2, 2, PCI_INTERRUPT_LINE, 1) == 0);
	devstate_free(&d);
	pci_bus_destroy(&b);
	pci_bus_destroy(&b2);
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
