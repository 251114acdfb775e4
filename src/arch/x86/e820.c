/* e820 map: RAM below 640 KiB, reserved EBDA and BIOS/ACPI area, RAM from 1 MiB, high RAM at 4 GiB. */
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"

unsigned int e820_build(const struct guest_mem *m, struct e820_entry *out)
{
	unsigned int n = 0;

	out[n++] = (struct e820_entry){ 0, LAYOUT_EBDA, E820_RAM };
	out[n++] = (struct e820_entry){ LAYOUT_EBDA, 0xa0000 - LAYOUT_EBDA, E820_RESERVED };
	out[n++] = (struct e820_entry){ LAYOUT_BIOS_START, LAYOUT_HIMEM - LAYOUT_BIOS_START,
					E820_RESERVED };
	if (m->low_size > LAYOUT_HIMEM)
		out[n++] =
			(struct e820_entry){ LAYOUT_HIMEM, m->low_size - LAYOUT_HIMEM, E820_RAM };
	if (guest_mem_high_size(m))
		out[n++] = (struct e820_entry){ GUEST_MEM_HIGH_BASE, guest_mem_high_size(m),
						E820_RAM };
	return n;
}
