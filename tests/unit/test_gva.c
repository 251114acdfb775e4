/*
 * Tests for the guest page-table walker: page tables are built inside a real
 * guest_mem for every paging mode (off, 32-bit with and without PSE, PAE, 4- and
 * 5-level with 4K/2M/1G pages), then translated, read and written through.
 */
#include <errno.h>
#include <string.h>

#include "arch/x86/gva.h"
#include "kvm/guest_mem.h"
#include "unit.h"

#define MEM (64ULL << 20)
#define TABLES 0x100000ULL /* page tables are allocated upwards from here */

#define P 0x1ULL
#define RW 0x2ULL
#define PS 0x80ULL
#define NX (1ULL << 63)

#define CR0_PE 0x1ULL
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

struct pt {
	struct guest_mem m;
	uint64_t next; /* next free table page */
};

static int pt_init(struct pt *p)
{
	p->next = TABLES;
	return guest_mem_create(&p->m, MEM);
}

static uint64_t pt_alloc(struct pt *p)
{
	uint64_t a = p->next;

	p->next += 4096;
	memset(guest_mem_ptr(&p->m, a, 4096), 0, 4096);
	return a;
}

static uint64_t get64(struct pt *p, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, guest_mem_ptr(&p->m, gpa, 8), 8);
	return v;
}

static void put64(struct pt *p, uint64_t gpa, uint64_t v)
{
	memcpy(guest_mem_ptr(&p->m, gpa, 8), &v, 8);
}

static void put32(struct pt *p, uint64_t gpa, uint32_t v)
{
	memcpy(guest_mem_ptr(&p->m, gpa, 4), &v, 4);
}

/*
 * Maps gva to gpa in 64-bit-entry tables rooted at root (levels 4 or 5, or 2 under a
 * PAE PDPTE) with the leaf at leaf_level (1: 4K, 2: 2M, 3: 1G). Returns the GPA of
 * the leaf entry so tests can change it.
 */
static uint64_t map(struct pt *p, uint64_t root, int levels, uint64_t gva, uint64_t gpa,
		    int leaf_level, uint64_t leaf_flags)
{
	uint64_t table = root;

	for (int level = levels;; level--) {
		uint64_t slot = table + ((gva >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
		if (level == leaf_level) {
			put64(p, slot, gpa | leaf_flags | (level > 1 ? PS : 0));
			return slot;
		}
		uint64_t e = get64(p, slot);
		if (!(e & P)) {
			e = pt_alloc(p) | P | RW;
			put64(p, slot, e);
		}
		table = e & 0x000ffffffffff000ULL;
	}
}

static struct gva_ctx long4(uint64_t cr3)
{
	return (struct gva_ctx){ .cr0 = CR0_PG | CR0_PE | CR0_WP,
				 .cr3 = cr3,
				 .cr4 = CR4_PAE,
				 .efer = EFER_LME | EFER_LMA };
}

static uint64_t tr(struct pt *p, const struct gva_ctx *c, uint64_t gva, bool write, int *err)
{
	uint64_t gpa = 0xbad;

	*err = gva_translate(&p->m, c, gva, write, &gpa);
	return gpa;
}

TEST(gva_paging_off)
{
	struct pt p;
	struct gva_ctx c = { .cr0 = CR0_PE, .cr4 = CR4_PAE, .efer = EFER_LME };
	uint64_t gpa;

	REQUIRE(pt_init(&p) == 0);
	CHECK(gva_translate(&p.m, &c, 0x12345678, true, &gpa) == 0 && gpa == 0x12345678);
	CHECK(gva_translate(&p.m, &c, 0x100001000ULL, false, &gpa) == 0 && gpa == 0x1000);
	/* Reads and writes go straight to physical memory. */
	uint32_t v = 0xcafef00d, got = 0;
	CHECK(gva_write(&p.m, &c, 0x3000, &v, 4) == 0);
	CHECK(guest_mem_read(&p.m, 0x3000, &got, 4) == 0 && got == v);
	CHECK(gva_read(&p.m, &c, MEM - 2, &got, 4) == -EFAULT);
	guest_mem_destroy(&p.m);
}

TEST(gva_long_mode_4k_2m_1g)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);

	map(&p, root, 4, 0xffff800000201000ULL, 0x400000, 1, P | RW);
	map(&p, root, 4, 0xffffffff80000000ULL, 0x1000000, 2, P | RW);
	map(&p, root, 4, 0x40000000ULL, 0xc0000000ULL, 3, P | RW);

	CHECK(tr(&p, &c, 0xffff800000201abcULL, false, &err) == 0x400abc && err == 0);
	CHECK(tr(&p, &c, 0xffff800000201fffULL, true, &err) == 0x400fff && err == 0);
	CHECK(tr(&p, &c, 0xffffffff80123456ULL, false, &err) == 0x1123456 && err == 0);
	CHECK(tr(&p, &c, 0xffffffff801fffffULL, false, &err) == 0x11fffff && err == 0);
	CHECK(tr(&p, &c, 0x4abcdef0ULL, false, &err) == 0xcabcdef0ULL && err == 0);
	/* Neighbouring pages are not mapped. */
	tr(&p, &c, 0xffff800000202000ULL, false, &err);
	CHECK(err == -EFAULT);
	tr(&p, &c, 0xffff800000200fffULL, false, &err);
	CHECK(err == -EFAULT);
	tr(&p, &c, 0xffffffff80200000ULL, false, &err);
	CHECK(err == -EFAULT);
	tr(&p, &c, 0x80000000ULL, false, &err);
	CHECK(err == -EFAULT);
	/* A 1G page's target in the MMIO hole translates, but is not readable RAM. */
	uint8_t b;
	CHECK(gva_read(&p.m, &c, 0x40000000ULL, &b, 1) == -EFAULT);

	/* Data through the mapping. */
	CHECK(guest_mem_write(&p.m, 0x400100, "hello", 6) == 0);
	char s[6] = { 0 };
	CHECK(gva_read(&p.m, &c, 0xffff800000201100ULL, s, 6) == 0);
	CHECK(strcmp(s, "hello") == 0);
	guest_mem_destroy(&p.m);
}

TEST(gva_nx_and_flag_bits_not_in_address)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);

	/* NX, accessed, dirty, global and available bits must not leak into the GPA. */
	map(&p, root, 4, 0x7000, 0x5000, 1, P | RW | NX | 0x160 | 0xe00);
	map(&p, root, 4, 0x40200000ULL, 0x600000, 2, P | RW | NX | (0x7fULL << 52) | 0x1000);
	CHECK(tr(&p, &c, 0x7123, false, &err) == 0x5123 && err == 0);
	/* In a 2M entry, bit 12 is PAT: not part of the frame. */
	CHECK(tr(&p, &c, 0x40212345ULL, false, &err) == 0x612345 && err == 0);
	guest_mem_destroy(&p.m);
}

TEST(gva_five_level)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);
	c.cr4 |= CR4_LA57;

	const uint64_t gva = 0x0001000000001000ULL; /* PML5 index 1, PML4..PD 0, PT 1 */
	map(&p, root, 5, gva, 0x500000, 1, P | RW);
	/* PML5 index 0x100, PD index 1: a 2M page */
	map(&p, root, 5, 0xff00000000200000ULL, 0xa00000, 2, P | RW);
	CHECK(tr(&p, &c, gva + 0x42, false, &err) == 0x500042 && err == 0);
	CHECK(tr(&p, &c, 0xff00000000212345ULL, false, &err) == 0xa12345 && err == 0);
	tr(&p, &c, 0x0002000000001000ULL, false, &err); /* PML5 index 2: empty */
	CHECK(err == -EFAULT);
	/* The same tables read as 4-level put gva's PML4 index at 0: not present. */
	c.cr4 &= ~CR4_LA57;
	tr(&p, &c, gva, false, &err);
	CHECK(err == -EFAULT);
	guest_mem_destroy(&p.m);
}

TEST(gva_pae)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t page = pt_alloc(&p);
	uint64_t pdpt = page + 0x20; /* PDPT need only be 32-byte aligned */
	struct gva_ctx c = { .cr0 = CR0_PG | CR0_PE | CR0_WP, .cr3 = pdpt | 0x18, .cr4 = CR4_PAE };
	uint64_t pd3 = pt_alloc(&p), pd2 = pt_alloc(&p);

	put64(&p, pdpt + 3 * 8, pd3 | P);
	put64(&p, pdpt + 2 * 8, pd2 | P);
	map(&p, pd3, 2, 0xc0001000ULL, 0x600000, 1, P | RW);
	map(&p, pd2, 2, 0x80200000ULL, 0x800000, 2, P | RW);
	CHECK(tr(&p, &c, 0xc0001234ULL, false, &err) == 0x600234 && err == 0);
	CHECK(tr(&p, &c, 0x802fedcbULL, false, &err) == 0x8fedcb && err == 0);
	/* Only the low 32 bits of the address count outside long mode. */
	CHECK(tr(&p, &c, 0x5c0001234ULL, false, &err) == 0x600234 && err == 0);
	/* PDPTEs 0 and 1 are not present. */
	tr(&p, &c, 0x40001000ULL, false, &err);
	CHECK(err == -EFAULT);
	tr(&p, &c, 0x1000ULL, false, &err);
	CHECK(err == -EFAULT);
	/* PDPTE 3 present, but no PDE for this 2M region. */
	tr(&p, &c, 0xc0400000ULL, false, &err);
	CHECK(err == -EFAULT);
	guest_mem_destroy(&p.m);
}

TEST(gva_32bit_with_and_without_pse)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t pd = pt_alloc(&p), ptab = pt_alloc(&p);
	struct gva_ctx c = { .cr0 = CR0_PG | CR0_PE | CR0_WP, .cr3 = pd, .cr4 = CR4_PSE };

	/* 4K: 0xc0401000 -> PDE 0x301, PTE 1 */
	put32(&p, pd + 0x301 * 4, (uint32_t)ptab | P | RW);
	put32(&p, ptab + 1 * 4, 0x700000 | P | RW);
	/* 4M: PDE 0x302 with PS -> 0x1000000; bit 12 (PAT) is not part of the frame */
	put32(&p, pd + 0x302 * 4, 0x1000000 | 0x1000 | P | RW | PS);
	/* Read as a page table instead (no PSE), entry 0x12 of the "table" it names. */
	put32(&p, 0x1001000 + 0x12 * 4, 0x900000 | P | RW);

	CHECK(tr(&p, &c, 0xc0401abcULL, false, &err) == 0x700abc && err == 0);
	CHECK(tr(&p, &c, 0xc0812345ULL, false, &err) == 0x1012345 && err == 0);
	CHECK(tr(&p, &c, 0xc0bfffffULL, false, &err) == 0x13fffff && err == 0);
	c.cr4 = 0;
	CHECK(tr(&p, &c, 0xc0812345ULL, false, &err) == 0x900345 && err == 0);
	CHECK(tr(&p, &c, 0xc0401abcULL, false, &err) == 0x700abc && err == 0);
	/* PTE 2 of the 4K table is empty; PDE 0 is empty. */
	tr(&p, &c, 0xc0402000ULL, false, &err);
	CHECK(err == -EFAULT);
	tr(&p, &c, 0x1000, false, &err);
	CHECK(err == -EFAULT);
	guest_mem_destroy(&p.m);
}

TEST(gva_not_present_at_each_level)
{
	struct pt p;
	int err;
	const uint64_t gva = 0xffff888000403000ULL;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);
	uint64_t leaf = map(&p, root, 4, gva, 0x300000, 1, P | RW);

	REQUIRE(tr(&p, &c, gva, false, &err) == 0x300000 && err == 0);
	/* Walk down recording each entry's GPA, then clear P on each in turn. */
	uint64_t slots[4], table = root;
	for (int level = 4, i = 0; level >= 1; level--, i++) {
		slots[i] = table + ((gva >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
		table = get64(&p, slots[i]) & 0x000ffffffffff000ULL;
	}
	CHECK(slots[3] == leaf);
	for (int i = 0; i < 4; i++) {
		uint64_t e = get64(&p, slots[i]);
		put64(&p, slots[i], e & ~P);
		tr(&p, &c, gva, false, &err);
		CHECK(err == -EFAULT);
		put64(&p, slots[i], e);
		CHECK(tr(&p, &c, gva, false, &err) == 0x300000 && err == 0);
	}
	guest_mem_destroy(&p.m);
}

TEST(gva_table_outside_ram)
{
	struct pt p;
	int err;
	const uint64_t gva = 0x201000;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);
	map(&p, root, 4, gva, 0x300000, 1, P | RW);
	uint64_t pml4e = get64(&p, root);

	const uint64_t bad[] = { MEM, 0xc0000000ULL, 0xfee00000ULL, 0x000ffffffffff000ULL };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* The PML4 entry points outside RAM. */
		put64(&p, root, bad[i] | P | RW);
		tr(&p, &c, gva, false, &err);
		CHECK(err == -EFAULT);
		/* CR3 itself outside RAM. */
		put64(&p, root, pml4e);
		c.cr3 = bad[i];
		tr(&p, &c, gva, false, &err);
		CHECK(err == -EFAULT);
		c.cr3 = root;
	}
	/* Last page of RAM as a table is still fine (boundary). */
	uint64_t last = MEM - 4096;
	memset(guest_mem_ptr(&p.m, last, 4096), 0, 4096);
	put64(&p, last, get64(&p, pml4e & ~0xfffULL) /* copy the PDPT entry */);
	put64(&p, root, last | P | RW);
	CHECK(tr(&p, &c, gva, false, &err) == 0x300000 && err == 0);

	/* 32-bit and PAE roots outside RAM. */
	struct gva_ctx c32 = { .cr0 = CR0_PG | CR0_PE, .cr3 = 0xfffff000ULL };
	tr(&p, &c32, 0x1000, false, &err);
	CHECK(err == -EFAULT);
	struct gva_ctx cpae = { .cr0 = CR0_PG | CR0_PE, .cr3 = 0xffffffe0ULL, .cr4 = CR4_PAE };
	tr(&p, &cpae, 0xc0000000ULL, false, &err);
	CHECK(err == -EFAULT);
	guest_mem_destroy(&p.m);
}

TEST(gva_write_protect)
{
	struct pt p;
	int err;

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);
	uint64_t leaf = map(&p, root, 4, 0x1000, 0x200000, 1, P);

	CHECK(tr(&p, &c, 0x1010, false, &err) == 0x200010 && err == 0);
	tr(&p, &c, 0x1010, true, &err);
	CHECK(err == -EACCES);
	uint8_t v = 7;
	CHECK(gva_write(&p.m, &c, 0x1010, &v, 1) == -EACCES);
	CHECK(*(uint8_t *)guest_mem_ptr(&p.m, 0x200010, 1) == 0);
	/* Without CR0.WP the kernel may write read-only pages. */
	c.cr0 &= ~CR0_WP;
	CHECK(tr(&p, &c, 0x1010, true, &err) == 0x200010 && err == 0);
	CHECK(gva_write(&p.m, &c, 0x1010, &v, 1) == 0);
	CHECK(*(uint8_t *)guest_mem_ptr(&p.m, 0x200010, 1) == 7);
	c.cr0 |= CR0_WP;

	/* Writable leaf under a read-only directory entry is read-only too. */
	put64(&p, leaf, 0x200000 | P | RW);
	CHECK(tr(&p, &c, 0x1010, true, &err) == 0x200010 && err == 0);
	uint64_t pml4e = get64(&p, root);
	put64(&p, root, pml4e & ~RW);
	tr(&p, &c, 0x1010, true, &err);
	CHECK(err == -EACCES);
	CHECK(tr(&p, &c, 0x1010, false, &err) == 0x200010 && err == 0);
	put64(&p, root, pml4e);

	/* Read-only 2M page. */
	map(&p, root, 4, 0x40000000ULL, 0x400000, 2, P);
	tr(&p, &c, 0x40000000ULL, true, &err);
	CHECK(err == -EACCES);

	/* 32-bit paging: read-only PTE. */
	uint64_t pd = pt_alloc(&p), ptab = pt_alloc(&p);
	struct gva_ctx c32 = { .cr0 = CR0_PG | CR0_PE | CR0_WP, .cr3 = pd };
	put32(&p, pd, (uint32_t)ptab | P | RW);
	put32(&p, ptab + 4, 0x200000 | P);
	tr(&p, &c32, 0x1000, true, &err);
	CHECK(err == -EACCES);
	CHECK(tr(&p, &c32, 0x1000, false, &err) == 0x200000 && err == 0);
	/* ... and a writable PTE under a read-only PDE. */
	put32(&p, ptab + 4, 0x200000 | P | RW);
	CHECK(tr(&p, &c32, 0x1000, true, &err) == 0x200000 && err == 0);
	put32(&p, pd, (uint32_t)ptab | P);
	tr(&p, &c32, 0x1000, true, &err);
	CHECK(err == -EACCES);
	/* ... and a read-only 4M page. */
	c32.cr4 = CR4_PSE;
	put32(&p, pd + 4, 0x400000 | P | PS);
	tr(&p, &c32, 0x400000, true, &err);
	CHECK(err == -EACCES);
	CHECK(tr(&p, &c32, 0x400010, false, &err) == 0x400010 && err == 0);
	guest_mem_destroy(&p.m);
}

TEST(gva_copy_across_pages)
{
	struct pt p;
	uint8_t in[32], out[32];

	REQUIRE(pt_init(&p) == 0);
	uint64_t root = pt_alloc(&p);
	struct gva_ctx c = long4(root);
	/* Virtually contiguous, physically apart and out of order. */
	map(&p, root, 4, 0x400000, 0x800000, 1, P | RW);
	map(&p, root, 4, 0x401000, 0x300000, 1, P | RW);
	map(&p, root, 4, 0x402000, 0x900000, 1, P);

	for (int i = 0; i < 32; i++)
		in[i] = (uint8_t)(0x40 + i);
	REQUIRE(gva_write(&p.m, &c, 0x400ff0, in, 32) == 0);
	CHECK(memcmp(guest_mem_ptr(&p.m, 0x800ff0, 16), in, 16) == 0);
	CHECK(memcmp(guest_mem_ptr(&p.m, 0x300000, 16), in + 16, 16) == 0);
	/* Nothing landed where a flat copy would have put it. */
	CHECK(*(uint8_t *)guest_mem_ptr(&p.m, 0x801000, 1) == 0);
	memset(out, 0, sizeof(out));
	REQUIRE(gva_read(&p.m, &c, 0x400ff0, out, 32) == 0);
	CHECK(memcmp(in, out, 32) == 0);

	/* A whole page and a bit, spanning three pages. */
	static uint8_t big[4096 + 64], back[4096 + 64];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31);
	CHECK(guest_mem_write(&p.m, 0x800fe0, big, 32) == 0);
	CHECK(guest_mem_write(&p.m, 0x300000, big + 32, 4096) == 0);
	CHECK(guest_mem_write(&p.m, 0x900000, big + 32 + 4096, 32) == 0);
	REQUIRE(gva_read(&p.m, &c, 0x400fe0, back, sizeof(back)) == 0);
	CHECK(memcmp(big, back, sizeof(big)) == 0);

	/* Into an unmapped page: the read fails. */
	CHECK(gva_read(&p.m, &c, 0x402ff0, out, 32) == -EFAULT);
	/* Into a read-only page with WP: the write fails. */
	CHECK(gva_write(&p.m, &c, 0x401ff0, in, 32) == -EACCES);
	/* Zero length touches nothing, even unmapped. */
	CHECK(gva_read(&p.m, &c, 0x7000000, out, 0) == 0);
	guest_mem_destroy(&p.m);
}
