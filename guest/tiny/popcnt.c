/* popcnt at CPL0 in its 64-, 32- and 16-bit forms, from a register and memory, with flags. */
#include "tiny.h"

TINY_GUEST("popcnt");

/* Sets every arithmetic flag first so the ones popcnt clears show. */
static uint64_t popcnt64(uint64_t v, uint64_t *flags)
{
	uint64_t r;

	asm volatile("pushq %3; popfq; popcnt %2, %0; pushfq; popq %1"
		     : "=&r"(r), "=r"(*flags)
		     : "r"(v), "r"(RFLAGS_FIXED | RFLAGS_ARITH)
		     : "cc");
	return r;
}

int main(void)
{
	static const uint64_t in[] = { 0,
				       1,
				       0x8000000000000001UL,
				       0x5555555555555555UL,
				       0xffffffffffffffffUL,
				       0x0123456789abcdefUL };
	static const uint64_t want[] = { 0, 1, 2, 32, 64, 32 };
	uint64_t r, flags;

	if (!HAS_POPCNT())
		tiny_skip("no POPCNT (CPUID 1 ECX bit 23)");
	for (unsigned int i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		r = popcnt64(in[i], &flags);
		SAY("popcnt 0x%lx = %lu, rflags 0x%lx", in[i], r, flags);
		CHECK_EQ(r, want[i]);
		CHECK_EQ(flags & RFLAGS_ARITH, in[i] ? 0 : RFLAGS_ZF);
	}

	r = ~0UL;
	asm volatile("popcnt %k1, %k0" : "+r"(r) : "r"(0xffffffff00000007UL) : "cc");
	SAY("popcnt (32-bit) of 0x7 = 0x%lx", r);
	CHECK_EQ(r, 3); /* upper half of the destination cleared */

	r = ~0UL;
	asm volatile("popcnt %w1, %w0" : "+r"(r) : "r"(0xf0f0UL) : "cc");
	SAY("popcnt (16-bit) of 0xf0f0 = 0x%lx", r);
	CHECK_EQ(r, 0xffffffffffff0008UL); /* bits 63:16 kept */

	static const uint64_t mem = 0xff00ff00ff00ff00UL;
	asm volatile("popcnt %1, %0" : "=r"(r) : "m"(mem) : "cc");
	SAY("popcnt of memory 0x%lx = %lu", mem, r);
	CHECK_EQ(r, 32);
	return 0;
}
