/*
 * ldmxcsr/stmxcsr at CPL0: the reset value, round trips, #GP for a reserved bit
 * (MXCSR unchanged), #UD with CR4.OSFXSR clear. skip=gp leaves the #GP check out,
 * for a CPU that does not raise it (QEMU's TCG; tests/guest/tiny.py).
 */
#include "tiny.h"

TINY_GUEST("mxcsr");

#define MXCSR_RESET 0x1f80
#define MXCSR_RESERVED_BIT (1u << 16)

static uint32_t stmxcsr(void)
{
	uint32_t v;

	asm volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void ldmxcsr(uint32_t v)
{
	asm volatile("ldmxcsr %0" : : "m"(v) : "memory");
}

int main(void)
{
	/* FZ | round toward zero | all masks | all sticky flags; bit 6 (DAZ) may not exist */
	static const uint32_t values[] = { 0x1f80, 0x7f80, 0x3f81, 0xffbf, MXCSR_RESET };
	uint64_t cr4 = read_cr4();
	uint32_t bad = MXCSR_RESET | MXCSR_RESERVED_BIT;

	write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP);
	write_cr4(cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT);
	uint32_t v = stmxcsr();
	SAY("mxcsr at start 0x%x", v);
	CHECK_EQ(v, MXCSR_RESET);
	for (unsigned int i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ldmxcsr(values[i]);
		v = stmxcsr();
		SAY("ldmxcsr 0x%x -> stmxcsr 0x%x", values[i], v);
		CHECK_EQ(v, values[i]);
	}

	if (tiny_arg_is("skip", "gp")) {
		SAY("not checked: #GP for ldmxcsr 0x%x (a reserved bit)", bad);
		ldmxcsr(MXCSR_RESET);
	} else {
		tiny_fault_clear();
		asm volatile("1: ldmxcsr %0\n2:\n" TINY_EXTABLE(1b, 2b) : : "m"(bad) : "memory");
		SAY("ldmxcsr 0x%x: fault vector %d error 0x%lx", bad, tiny_last_fault.vector,
		    tiny_last_fault.error);
		CHECK_EQ(tiny_last_fault.error, 0);
		CHECK_FAULT(VEC_GP);
		CHECK_EQ(stmxcsr(), MXCSR_RESET);
	}

	write_cr4(cr4 & ~(CR4_OSFXSR | CR4_OSXMMEXCPT));
	asm volatile("1: ldmxcsr %0\n2:\n" TINY_EXTABLE(1b, 2b) : : "m"(values[0]) : "memory");
	SAY("ldmxcsr with CR4.OSFXSR clear: fault vector %d", tiny_last_fault.vector);
	CHECK_FAULT(VEC_UD);
	return 0;
}
