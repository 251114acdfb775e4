/* Serial output, the command line and the e820 map as tern-vmm passes them. */
#include "tiny.h"

TINY_GUEST("hello");

int main(void)
{
	const struct e820_entry *e;
	unsigned int n = tiny_e820(&e);

	SAY("hello from a tiny guest");
	SAY("cmdline [%s]", tiny_cmdline());
	for (unsigned int i = 0; i < n; i++)
		SAY("e820 0x%lx 0x%lx %u", e[i].addr, e[i].size, e[i].type);
	return 0;
}
