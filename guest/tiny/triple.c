/*
 * A fault with an empty IDT (limit 0) escalates to a triple fault, which must end
 * the VM with a non-zero status. mode=gp (default): a non-canonical load; mode=pf:
 * an unmapped load; mode=ud2: ud2, which this machine's KVM hands to tern-vmm.
 */
#include "tiny.h"

TINY_GUEST("triple");

int main(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty = { 0, 0 };
	char mode[8] = "gp";
	uint64_t v;

	tiny_arg("mode", mode, sizeof(mode));
	SAY("empty IDT, then a fault (%s)", mode);
	asm volatile("lidt %0" : : "m"(empty));
	if (!strncmp(mode, "ud2", 4))
		asm volatile("ud2");
	else if (!strncmp(mode, "pf", 3))
		asm volatile("mov (%1), %0" : "=r"(v) : "r"(0x8000000000UL) : "memory");
	else
		asm volatile("mov (%1), %0" : "=r"(v) : "r"(0x8000000000000000UL) : "memory");
	SAY("still alive after the fault");
	return TINY_EXIT_ALIVE;
}
