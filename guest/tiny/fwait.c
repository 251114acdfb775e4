/*
 * fwait at CPL0. Default: with no x87 exception pending it does nothing. mode=ts:
 * with CR0.MP and CR0.TS set it raises #NM instead.
 */
#include "tiny.h"

TINY_GUEST("fwait");

int main(void)
{
	uint64_t cr0 = read_cr0() & ~(CR0_EM | CR0_TS);
	uint64_t kept = 0x1234567890abcdefUL;

	if (tiny_arg_is("mode", "ts")) {
		write_cr0(cr0 | CR0_MP | CR0_TS);
		SAY("fwait with CR0.MP and CR0.TS set");
		tiny_fault_clear();
		asm volatile("1: fwait\n2:\n" TINY_EXTABLE(1b, 2b) : : : "memory");
		write_cr0(cr0);
		SAY("fault vector %d at rip 0x%lx", tiny_last_fault.vector, tiny_last_fault.rip);
		CHECK_FAULT(VEC_NM);
		return 0;
	}
	write_cr0(cr0 | CR0_MP);
	SAY("fwait with CR0.TS clear");
	tiny_fault_clear();
	asm volatile("fwait" : "+b"(kept) : : "memory");
	CHECK_EQ(tiny_last_fault.vector, -1);
	CHECK_EQ(kept, 0x1234567890abcdefUL);
	SAY("fwait did nothing, as it should");
	return 0;
}
