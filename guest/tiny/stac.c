/* stac/clac at CPL0 set and clear RFLAGS.AC and nothing else (needs SMAP in CPUID). */
#include "tiny.h"

TINY_GUEST("stac");

int main(void)
{
	uint64_t f;

	if (!HAS_SMAP())
		tiny_skip("no SMAP (CPUID 7.0 EBX bit 20)");
	asm volatile("clac; pushfq; popq %0" : "=r"(f) : : "cc");
	SAY("after clac: rflags 0x%lx", f);
	CHECK(!(f & RFLAGS_AC));
	asm volatile("stc; stac; pushfq; popq %0" : "=r"(f) : : "cc");
	SAY("after stc; stac: rflags 0x%lx", f);
	CHECK(f & RFLAGS_AC);
	CHECK(f & RFLAGS_CF);
	asm volatile("clc; stac; pushfq; popq %0" : "=r"(f) : : "cc");
	SAY("after clc; stac: rflags 0x%lx", f);
	CHECK(f & RFLAGS_AC);
	CHECK(!(f & RFLAGS_CF));
	asm volatile("stc; clac; pushfq; popq %0" : "=r"(f) : : "cc");
	SAY("after stc; clac: rflags 0x%lx", f);
	CHECK(!(f & RFLAGS_AC));
	CHECK(f & RFLAGS_CF);
	return 0;
}
