/*
 * rd/wr{fs,gs}base at CPL0 with CR4.FSGSBASE set: round trips in both operand
 * sizes, agreement with the MSRs and with %fs:/%gs: accesses, #GP for a
 * non-canonical base. mode=nocr4: #UD with CR4.FSGSBASE clear. skip=gp leaves the
 * #GP check out, for a CPU that does not raise it (QEMU's TCG; tests/guest/tiny.py).
 */
#include "tiny.h"

TINY_GUEST("fsgsbase");

static volatile uint64_t area = 0x3333333333333333UL;

#define WR(seg, v) asm volatile("wr" #seg "base %0" : : "r"((uint64_t)(v)) : "memory")
#define RD(seg)                                               \
	({                                                    \
		uint64_t v_;                                  \
		asm volatile("rd" #seg "base %0" : "=r"(v_)); \
		v_;                                           \
	})
#define RD32(seg)                                              \
	({                                                     \
		uint64_t v_ = ~0UL;                            \
		asm volatile("rd" #seg "base %k0" : "+r"(v_)); \
		v_;                                            \
	})

static void no_cr4(void)
{
	uint64_t v;

	write_cr4(read_cr4() & ~CR4_FSGSBASE);
	tiny_fault_clear();
	asm volatile("1: rdfsbase %0\n2:\n" TINY_EXTABLE(1b, 2b) : "=r"(v));
	SAY("rdfsbase with CR4.FSGSBASE clear (cr4 0x%lx): fault vector %d", read_cr4(),
	    tiny_last_fault.vector);
	CHECK_FAULT(VEC_UD);
	asm volatile("1: wrgsbase %0\n2:\n" TINY_EXTABLE(1b, 2b) : : "r"(0UL));
	SAY("wrgsbase with CR4.FSGSBASE clear: fault vector %d", tiny_last_fault.vector);
	CHECK_FAULT(VEC_UD);
}

int main(void)
{
	const uint64_t a = 0x00007fffdeadb000UL, b = 0xffff800012345000UL;
	uint64_t v;

	if (!HAS_FSGSBASE())
		tiny_skip("no FSGSBASE (CPUID 7.0 EBX bit 0)");
	if (tiny_arg_is("mode", "nocr4")) {
		no_cr4();
		return 0;
	}
	write_cr4(read_cr4() | CR4_FSGSBASE);

	WR(fs, a);
	WR(gs, b);
	SAY("rdfsbase 0x%lx rdgsbase 0x%lx", RD(fs), RD(gs));
	CHECK_EQ(RD(fs), a);
	CHECK_EQ(RD(gs), b);
	CHECK_EQ(rdmsr(MSR_FS_BASE), a);
	CHECK_EQ(rdmsr(MSR_GS_BASE), b);

	wrmsr(MSR_FS_BASE, b);
	wrmsr(MSR_GS_BASE, a);
	CHECK_EQ(RD(fs), b);
	CHECK_EQ(RD(gs), a);
	SAY("32-bit forms: rdfsbase 0x%lx rdgsbase 0x%lx", RD32(fs), RD32(gs));
	CHECK_EQ(RD32(fs), b & 0xffffffff);
	CHECK_EQ(RD32(gs), a & 0xffffffff);
	asm volatile("wrfsbase %k0" : : "r"(0xffffffff89abcdefUL) : "memory");
	CHECK_EQ(rdmsr(MSR_FS_BASE), 0x89abcdefUL); /* zero-extended */

	WR(fs, &area);
	asm volatile("mov %%fs:0, %0" : "=r"(v) : : "memory");
	CHECK_EQ(v, area);
	WR(gs, &area);
	asm volatile("mov %%gs:0, %0" : "=r"(v) : : "memory");
	CHECK_EQ(v, area);
	SAY("%%fs: and %%gs: loads follow the new bases");

	if (tiny_arg_is("skip", "gp")) {
		SAY("not checked: #GP for wrfsbase with a non-canonical base");
		return 0;
	}
	tiny_fault_clear();
	asm volatile("1: wrfsbase %0\n2:\n" TINY_EXTABLE(1b, 2b)
		     :
		     : "r"(0x8000000000000000UL)
		     : "memory");
	SAY("wrfsbase non-canonical: fault vector %d error 0x%lx", tiny_last_fault.vector,
	    tiny_last_fault.error);
	CHECK_EQ(tiny_last_fault.error, 0);
	CHECK_FAULT(VEC_GP);
	CHECK_EQ(RD(fs), (uint64_t)&area);
	return 0;
}
