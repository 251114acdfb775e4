/*
 * lsl and lar at CPL0 (Linux's paranoid entry reads the CPU number with lsl): the
 * limit and access rights of valid selectors with ZF set, ZF clear and the
 * destination untouched for the null selector and one past the GDT.
 */
#include "segments.h"
#include "tiny.h"

TINY_GUEST("lsl");

#define RFLAGS_ZF (1UL << 6)

static uint64_t lsl64(uint64_t sel, uint64_t start, uint64_t *flags)
{
	uint64_t r = start;

	asm volatile("lsl %2, %0; pushfq; popq %1" : "+r"(r), "=r"(*flags) : "r"(sel) : "cc");
	return r;
}

static uint64_t lar64(uint64_t sel, uint64_t start, uint64_t *flags)
{
	uint64_t r = start;

	asm volatile("lar %2, %0; pushfq; popq %1" : "+r"(r), "=r"(*flags) : "r"(sel) : "cc");
	return r;
}

int main(void)
{
	uint64_t r, flags;
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) gdtr;

	asm volatile("sgdt %0" : "=m"(gdtr));

	/* Flat 4 GiB code and data segments: limit 0xfffff with G, so 0xffffffff. */
	r = lsl64(SEL_KCODE, 0x1234, &flags);
	SAY("lsl kernel code: 0x%lx, rflags 0x%lx", r, flags);
	CHECK(flags & RFLAGS_ZF);
	CHECK_EQ(r, 0xffffffffUL);
	r = lsl64(SEL_UDATA | 3, 0x1234, &flags);
	SAY("lsl user data: 0x%lx, rflags 0x%lx", r, flags);
	CHECK(flags & RFLAGS_ZF);
	CHECK_EQ(r, 0xffffffffUL);

	/* Access rights: type/S/DPL/P in 15:8, AVL/L/D/G in 23:20. */
	r = lar64(SEL_KCODE, 0, &flags);
	SAY("lar kernel code: 0x%lx, rflags 0x%lx", r, flags);
	CHECK(flags & RFLAGS_ZF);
	CHECK_EQ(r & 0x9800, 0x9800UL); /* present, code/data, code */
	CHECK(r & (1UL << 21));		/* L: 64-bit code */
	CHECK_EQ((r >> 13) & 3, 0);	/* DPL 0 */
	r = lar64(SEL_UCODE | 3, 0, &flags);
	CHECK(flags & RFLAGS_ZF);
	CHECK_EQ((r >> 13) & 3, 3);

	/* Null selector and one past the GDT's limit: ZF clear, destination unchanged. */
	r = lsl64(0, 0x1234, &flags);
	SAY("lsl null: 0x%lx, rflags 0x%lx", r, flags);
	CHECK(!(flags & RFLAGS_ZF));
	CHECK_EQ(r, 0x1234);
	r = lsl64((gdtr.limit + 1) & ~7u, 0x5678, &flags);
	SAY("lsl past the GDT (limit 0x%x): 0x%lx, rflags 0x%lx", gdtr.limit, r, flags);
	CHECK(!(flags & RFLAGS_ZF));
	CHECK_EQ(r, 0x5678);
	r = lar64(0, 0x9abc, &flags);
	CHECK(!(flags & RFLAGS_ZF));
	CHECK_EQ(r, 0x9abc);
	return 0;
}
