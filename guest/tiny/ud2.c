/* ud2 at CPL0 raises #UD with fault semantics: the handler sees RIP at the ud2 itself. */
#include "tiny.h"

TINY_GUEST("ud2");

static volatile uint64_t ud_rip, ud_count;

static void on_ud(struct tiny_frame *f)
{
	ud_rip = f->rip;
	ud_count++;
	f->rip += 2; /* only sound when RIP is at the ud2, checked below */
}

int main(void)
{
	uint64_t at;

	tiny_set_handler(VEC_UD, on_ud);
	SAY("ud2 at CPL0");
	asm volatile("lea 1f(%%rip), %0\n1:\tud2" : "=r"(at) : : "memory");
	SAY("#UD handler saw rip 0x%lx; the ud2 is at 0x%lx", ud_rip, at);
	CHECK_EQ(ud_count, 1);
	CHECK_EQ(ud_rip, at);
	return 0;
}
