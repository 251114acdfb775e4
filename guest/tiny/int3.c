/* int3 at CPL0 reaches the guest's #BP handler with trap semantics (RIP after the int3). */
#include "tiny.h"

TINY_GUEST("int3");

static volatile uint64_t bp_rip, bp_cs, bp_count;

static void on_bp(struct tiny_frame *f)
{
	bp_rip = f->rip;
	bp_cs = f->cs;
	bp_count++;
}

int main(void)
{
	uint64_t after, kept = 0x5a5a5a5a5a5a5a5aUL;

	tiny_set_handler(VEC_BP, on_bp);
	SAY("int3 at CPL0");
	asm volatile("int3\n1:\n\tlea 1b(%%rip), %0" : "=r"(after), "+b"(kept) : : "memory");
	SAY("#BP handler saw rip 0x%lx cs 0x%lx; the int3 ends at 0x%lx", bp_rip, bp_cs, after);
	CHECK_EQ(bp_count, 1);
	CHECK_EQ(bp_rip, after);
	CHECK_EQ(bp_cs, SEL_KCODE);
	CHECK_EQ(kept, 0x5a5a5a5a5a5a5a5aUL);
	return 0;
}
