/* swapgs at CPL0 exchanges GS.base with IA32_KERNEL_GS_BASE, and %gs: accesses follow. */
#include "tiny.h"

TINY_GUEST("swapgs");

static volatile uint64_t user_area = 0x1111111111111111UL;
static volatile uint64_t kernel_area = 0x2222222222222222UL;

static uint64_t gs_read(void)
{
	uint64_t v;

	asm volatile("mov %%gs:0, %0" : "=r"(v) : : "memory");
	return v;
}

int main(void)
{
	uint64_t u = (uint64_t)&user_area, k = (uint64_t)&kernel_area;

	wrmsr(MSR_GS_BASE, u);
	wrmsr(MSR_KERNEL_GS_BASE, k);
	CHECK_EQ(gs_read(), user_area);
	asm volatile("swapgs" : : : "memory");
	SAY("after swapgs: GS.base 0x%lx KERNEL_GS_BASE 0x%lx (were 0x%lx 0x%lx)",
	    rdmsr(MSR_GS_BASE), rdmsr(MSR_KERNEL_GS_BASE), u, k);
	CHECK_EQ(rdmsr(MSR_GS_BASE), k);
	CHECK_EQ(rdmsr(MSR_KERNEL_GS_BASE), u);
	CHECK_EQ(gs_read(), kernel_area);
	asm volatile("swapgs" : : : "memory");
	SAY("after a second swapgs: GS.base 0x%lx KERNEL_GS_BASE 0x%lx", rdmsr(MSR_GS_BASE),
	    rdmsr(MSR_KERNEL_GS_BASE));
	CHECK_EQ(rdmsr(MSR_GS_BASE), u);
	CHECK_EQ(rdmsr(MSR_KERNEL_GS_BASE), k);
	CHECK_EQ(gs_read(), user_area);
	return 0;
}
