/*
 * rdrand (default) or rdseed (mode=rdseed) at CPL0: succeeds within the retries
 * Intel recommends, sets CF and clears OF SF ZF AF PF, and two values differ.
 */
#include "tiny.h"

TINY_GUEST("rdrand");

#define RDRAND_RETRIES 10
#define RDSEED_RETRIES 1000

/* One attempt; returns the flags after it. Every arithmetic flag is set before. */
static uint64_t attempt(bool seed, uint64_t *v)
{
	uint64_t flags;

	if (seed)
		asm volatile("pushq %2; popfq; rdseed %0; pushfq; popq %1"
			     : "=r"(*v), "=r"(flags)
			     : "r"(RFLAGS_FIXED | RFLAGS_ARITH)
			     : "cc");
	else
		asm volatile("pushq %2; popfq; rdrand %0; pushfq; popq %1"
			     : "=r"(*v), "=r"(flags)
			     : "r"(RFLAGS_FIXED | RFLAGS_ARITH)
			     : "cc");
	return flags;
}

static uint64_t get(bool seed)
{
	int retries = seed ? RDSEED_RETRIES : RDRAND_RETRIES;
	uint64_t v, flags;

	for (int i = 0; i < retries; i++) {
		flags = attempt(seed, &v);
		CHECK_EQ(flags & (RFLAGS_ARITH & ~RFLAGS_CF), 0);
		if (flags & RFLAGS_CF)
			return v;
		CHECK_EQ(v, 0); /* a failed attempt returns 0 */
		cpu_relax();
	}
	tiny_fail(__FILE__, __LINE__, "no value within the retries");
}

int main(void)
{
	bool seed = tiny_arg_is("mode", "rdseed");
	const char *insn = seed ? "rdseed" : "rdrand";

	if (seed ? !HAS_RDSEED() : !HAS_RDRAND())
		tiny_skip(seed ? "no RDSEED (CPUID 7.0 EBX bit 18)" :
				 "no RDRAND (CPUID 1 ECX bit 30)");
	uint64_t a = get(seed), b = get(seed);
	SAY("%s: 0x%lx 0x%lx", insn, a, b);
	CHECK(a != b);

	uint64_t r = ~0UL;
	uint8_t ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		if (seed)
			asm volatile("rdseed %k0; setc %1" : "+r"(r), "=qm"(ok) : : "cc");
		else
			asm volatile("rdrand %k0; setc %1" : "+r"(r), "=qm"(ok) : : "cc");
	}
	SAY("%s (32-bit): 0x%lx", insn, r);
	CHECK(ok);
	CHECK_EQ(r >> 32, 0);
	return 0;
}
