/* The real-mode code at the reset vector: write the ACPI reset register, then halt. */
#include "arch/x86/reset_vector.h"

#include "arch/x86/layout.h"

int reset_vector_write(const struct guest_mem *m, uint16_t reset_port, uint8_t reset_value)
{
	const uint8_t port_lo = (uint8_t)reset_port, port_hi = (uint8_t)(reset_port >> 8);
	const uint8_t code[] = {
		0xba, port_lo,	   port_hi, /* mov $port, %dx */
		0xb0, reset_value,	    /* mov $value, %al */
		0xee,			    /* out %al, (%dx) */
		0xf4,			    /* 1: hlt */
		0xeb, 0xfd,		    /* jmp 1b */
	};
	_Static_assert(sizeof(code) <= LAYOUT_HIMEM - LAYOUT_RESET_VECTOR,
		       "the reset code fits below 1 MiB");
	return guest_mem_write(m, LAYOUT_RESET_VECTOR, code, sizeof(code));
}
