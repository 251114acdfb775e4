/*
 * Tests for the guest memory layout: the e820 map built for several RAM sizes, and
 * guest_mem_ptr()'s bounds (low RAM, the [3 GiB, 4 GiB) hole, high RAM, overflow).
 */
#include <stdint.h>
#include <string.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "kvm/guest_mem.h"
#include "unit.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Bytes of the first MiB that are guest memory but not e820 RAM: EBDA, VGA hole, BIOS. */
#define LOW_NOT_RAM (LAYOUT_HIMEM - LAYOUT_EBDA)

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Checks every invariant of the map for a RAM size; returns the entry count. */
static unsigned int check_map(uint64_t size)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX + 1];
	uint64_t ram = 0;
	unsigned int n;
	int bios_reserved = 0, ebda_reserved = 0;

	guest_mem_layout(&m, size);
	memset(e, 0x5a, sizeof(e));
	n = e820_build(&m, e);
	CHECK(n >= 1 && n <= E820_MAX);
	CHECK(e[E820_MAX].type == 0x5a5a5a5a); /* nothing past the documented maximum */
	for (unsigned int i = 0; i < n; i++) {
		CHECK(e[i].size > 0);
		CHECK(e[i].type == E820_RAM || e[i].type == E820_RESERVED);
		CHECK(e[i].addr + e[i].size > e[i].addr);
		if (i > 0)
			CHECK(e[i - 1].addr + e[i - 1].size <= e[i].addr); /* sorted, disjoint */
		if (e[i].type == E820_RAM) {
			ram += e[i].size;
			/* RAM only where guest memory really is. */
			CHECK(e[i].addr + e[i].size <= m.low_size ||
			      (e[i].addr >= GUEST_MEM_HIGH_BASE &&
			       e[i].addr + e[i].size <=
				       GUEST_MEM_HIGH_BASE + guest_mem_high_size(&m)));
			CHECK(!overlaps(e[i].addr, e[i].size, GUEST_MEM_LOW_LIMIT,
					GUEST_MEM_HIGH_BASE - GUEST_MEM_LOW_LIMIT));
			CHECK(!overlaps(e[i].addr, e[i].size, LAYOUT_EBDA, LOW_NOT_RAM));
		} else {
			if (e[i].addr <= LAYOUT_BIOS_START && e[i].addr + e[i].size >= LAYOUT_HIMEM)
				bios_reserved = 1;
			if (e[i].addr <= LAYOUT_EBDA && e[i].addr + e[i].size >= 0xa0000)
				ebda_reserved = 1;
		}
	}
	CHECK(bios_reserved);
	CHECK(ebda_reserved);
	/* All RAM is reported except the legacy area below 1 MiB. */
	CHECK(ram + LOW_NOT_RAM == size);
	/* The first entry is conventional memory at 0, as real-mode-minded code expects. */
	CHECK(e[0].addr == 0 && e[0].type == E820_RAM);
	return n;
}

TEST(e820_1mib_no_empty_entries)
{
	/* Below the supported minimum, but the map must still not grow an empty RAM entry. */
	CHECK(check_map(MiB) == 3);
}

TEST(e820_16mib)
{
	CHECK(check_map(16 * MiB) == 4);
}

TEST(e820_128mib)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX];

	CHECK(check_map(128 * MiB) == 4);
	guest_mem_layout(&m, 128 * MiB);
	REQUIRE(e820_build(&m, e) == 4);
	CHECK(e[3].addr == LAYOUT_HIMEM && e[3].size == 127 * MiB && e[3].type == E820_RAM);
}

TEST(e820_exactly_3gib_has_no_high_ram)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX];
	unsigned int n;

	CHECK(check_map(3 * GiB) == 4);
	guest_mem_layout(&m, 3 * GiB);
	n = e820_build(&m, e);
	REQUIRE(n >= 1);
	CHECK(e[n - 1].addr + e[n - 1].size == 3 * GiB);
}

TEST(e820_3gib_plus_1mib_goes_above_4gib)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX];
	unsigned int n;

	CHECK(check_map(3 * GiB + MiB) == 5);
	guest_mem_layout(&m, 3 * GiB + MiB);
	n = e820_build(&m, e);
	REQUIRE(n == 5);
	CHECK(e[3].addr + e[3].size == 3 * GiB);
	CHECK(e[4].addr == 4 * GiB && e[4].size == MiB && e[4].type == E820_RAM);
}

TEST(e820_8gib)
{
	struct guest_mem m;
	struct e820_entry e[E820_MAX];

	CHECK(check_map(8 * GiB) == 5);
	guest_mem_layout(&m, 8 * GiB);
	REQUIRE(e820_build(&m, e) == 5);
	CHECK(e[4].addr == 4 * GiB && e[4].size == 5 * GiB);
}

TEST(e820_many_sizes)
{
	const uint64_t sizes[] = { 16 * MiB,	      17 * MiB, 1 * GiB,  2 * GiB,   3 * GiB - MiB,
				   3 * GiB + 2 * MiB, 4 * GiB,	64 * GiB, 1024 * GiB };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_map(sizes[i]);
}

TEST(guest_mem_layout_split)
{
	struct guest_mem m;

	guest_mem_layout(&m, 2 * GiB);
	CHECK(m.low_size == 2 * GiB && guest_mem_high_size(&m) == 0);
	CHECK(m.host == NULL && !m.anon);
	guest_mem_layout(&m, 3 * GiB);
	CHECK(m.low_size == 3 * GiB && guest_mem_high_size(&m) == 0);
	guest_mem_layout(&m, 5 * GiB);
	CHECK(m.low_size == 3 * GiB && guest_mem_high_size(&m) == 2 * GiB);
	/* No backing: no pointers, whatever the address. */
	CHECK(guest_mem_ptr(&m, 0, 1) == NULL);
}

TEST(guest_mem_ptr_low_bounds)
{
	struct guest_mem m;
	uint8_t *p;

	REQUIRE(guest_mem_create(&m, 16 * MiB) == 0);
	CHECK(guest_mem_ptr(&m, 0, 16 * MiB) == m.host);
	CHECK(guest_mem_ptr(&m, 0x1234, 1) == m.host + 0x1234);
	CHECK(guest_mem_ptr(&m, 16 * MiB - 1, 1) == m.host + 16 * MiB - 1);
	CHECK(guest_mem_ptr(&m, 16 * MiB - 1, 2) == NULL);
	CHECK(guest_mem_ptr(&m, 0, 16 * MiB + 1) == NULL);
	CHECK(guest_mem_ptr(&m, 16 * MiB, 1) == NULL);
	CHECK(guest_mem_ptr(&m, 3 * GiB, 1) == NULL);
	CHECK(guest_mem_ptr(&m, 4 * GiB, 1) == NULL); /* no high RAM at all */
	/* gpa + len wrapping around to a small end. */
	CHECK(guest_mem_ptr(&m, UINT64_MAX, 2) == NULL);
	CHECK(guest_mem_ptr(&m, 0x1000, UINT64_MAX) == NULL);
	CHECK(guest_mem_ptr(&m, UINT64_MAX - 0xfff, 0x2000) == NULL);

	/* Reads and writes go through the same checks and reach the same bytes. */
	uint8_t buf[4] = { 1, 2, 3, 4 }, out[4] = { 0 };
	CHECK(guest_mem_write(&m, 0x5000, buf, 4) == 0);
	p = guest_mem_ptr(&m, 0x5000, 4);
	REQUIRE(p);
	CHECK(memcmp(p, buf, 4) == 0);
	CHECK(guest_mem_read(&m, 0x5000, out, 4) == 0 && memcmp(out, buf, 4) == 0);
	CHECK(guest_mem_write(&m, 16 * MiB - 2, buf, 4) < 0);
	CHECK(guest_mem_read(&m, 16 * MiB - 2, out, 4) < 0);
	guest_mem_destroy(&m);
	CHECK(m.host == NULL && !m.anon);
}

TEST(guest_mem_ptr_high_ram_and_hole)
{
	struct guest_mem m;
	const uint64_t size = 3 * GiB + 2 * MiB;

	REQUIRE(guest_mem_create(&m, size) == 0);
	REQUIRE(m.low_size == 3 * GiB);
	CHECK(guest_mem_ptr(&m, 3 * GiB - 4096, 4096) == m.host + 3 * GiB - 4096);
	/* Crossing the end of low RAM into the hole. */
	CHECK(guest_mem_ptr(&m, 3 * GiB - 4096, 4097) == NULL);
	/* Anywhere in the hole. */
	CHECK(guest_mem_ptr(&m, 3 * GiB, 1) == NULL);
	CHECK(guest_mem_ptr(&m, LAYOUT_LAPIC, 4) == NULL);
	CHECK(guest_mem_ptr(&m, 4 * GiB - 1, 1) == NULL);
	/* Straddling the hole's end into high RAM is still two regions. */
	CHECK(guest_mem_ptr(&m, 4 * GiB - 1, 2) == NULL);
	/* High RAM sits right after low RAM in the backing. */
	CHECK(guest_mem_ptr(&m, 4 * GiB, 1) == m.host + 3 * GiB);
	CHECK(guest_mem_ptr(&m, 4 * GiB, 2 * MiB) == m.host + 3 * GiB);
	CHECK(guest_mem_ptr(&m, 4 * GiB + 2 * MiB - 1, 1) == m.host + 3 * GiB + 2 * MiB - 1);
	CHECK(guest_mem_ptr(&m, 4 * GiB + 2 * MiB - 1, 2) == NULL);
	CHECK(guest_mem_ptr(&m, 4 * GiB + 2 * MiB, 1) == NULL);
	CHECK(guest_mem_ptr(&m, 4 * GiB + 1, UINT64_MAX) == NULL);
	CHECK(guest_mem_ptr(&m, UINT64_MAX, 1) == NULL);

	/* A write through the high mapping is visible at the right backing offset. */
	uint32_t v = 0xdeadbeef, got = 0;
	CHECK(guest_mem_write(&m, 4 * GiB + 0x100, &v, 4) == 0);
	memcpy(&got, m.host + 3 * GiB + 0x100, 4);
	CHECK(got == v);
	guest_mem_destroy(&m);
}
