/*
 * Exception delivery at CPL0 without any instruction tern must emulate: #DE, #GP
 * and #PF raised by ordinary instructions, each resumed through its handler's
 * iretq. If this guest fails, the int3/ud2/... guests cannot pass either.
 */
#include "tiny.h"

TINY_GUEST("exceptions");

#define NONCANONICAL 0x8000000000000000UL
#define UNMAPPED 0x8000000000UL /* 512 GiB: PML4 slot 1, beyond tern's 4 GiB map */
#define PF_WRITE 0x2

int main(void)
{
	uint64_t v = 0;

	tiny_fault_clear();
	asm volatile("1: divq %1\n2:\n" TINY_EXTABLE(1b, 2b)
		     : "+a"(v)
		     : "r"(0UL), "d"(0UL)
		     : "memory");
	SAY("#DE delivered at rip 0x%lx", tiny_last_fault.rip);
	CHECK_FAULT(VEC_DE);

	asm volatile("1: mov (%1), %0\n2:\n" TINY_EXTABLE(1b, 2b)
		     : "=r"(v)
		     : "r"(NONCANONICAL)
		     : "memory");
	SAY("#GP delivered at rip 0x%lx error 0x%lx", tiny_last_fault.rip, tiny_last_fault.error);
	CHECK_EQ(tiny_last_fault.error, 0);
	CHECK_FAULT(VEC_GP);

	asm volatile("1: mov (%1), %0\n2:\n" TINY_EXTABLE(1b, 2b)
		     : "=r"(v)
		     : "r"(UNMAPPED)
		     : "memory");
	SAY("#PF (read) delivered at rip 0x%lx error 0x%lx cr2 0x%lx", tiny_last_fault.rip,
	    tiny_last_fault.error, read_cr2());
	CHECK_EQ(read_cr2(), UNMAPPED);
	CHECK_EQ(tiny_last_fault.error, 0);
	CHECK_FAULT(VEC_PF);

	asm volatile("1: movq $1, 8(%0)\n2:\n" TINY_EXTABLE(1b, 2b) : : "r"(UNMAPPED) : "memory");
	SAY("#PF (write) delivered at rip 0x%lx error 0x%lx cr2 0x%lx", tiny_last_fault.rip,
	    tiny_last_fault.error, read_cr2());
	CHECK_EQ(read_cr2(), UNMAPPED + 8);
	CHECK_EQ(tiny_last_fault.error, PF_WRITE);
	CHECK_FAULT(VEC_PF);
	return 0;
}
