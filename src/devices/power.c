/* Power-off and reset registers; each handler's opaque is the struct machine. */
#include "devices/power.h"
#include "arch/x86/layout.h"

#include <string.h>

void power_acpi_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	const struct machine *m = opaque;

	if (!is_write) {
		/* Sleep status reads as "nothing pending"; WAK_STS never matters for S5. */
		memset(data, 0, len);
		return;
	}
	if (offset == 0 && (data[0] & ACPI_SLP_EN) &&
	    ((data[0] & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT) == ACPI_S5_TYPE)
		machine_stop(m, MACHINE_POWEROFF, 0);
	else if (offset == 2 && data[0] == ACPI_RESET_VALUE)
		machine_stop(m, MACHINE_RESET, 0);
}

void power_cf9_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	const struct machine *m = opaque;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	/* Bit 2 starts the reset (bit 1 picks hard/soft: both restart the machine here). */
	if (data[0] & 0x04)
		machine_stop(m, MACHINE_RESET, 0);
}

void power_debug_exit_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	const struct machine *m = opaque;

	if (is_write)
		machine_stop(m, MACHINE_DEBUG_EXIT, data[0]);
	else
		memset(data, 0xff, len);
}
