/*
 * Power and reset controls of the platform: the hardware-reduced ACPI sleep
 * control/status and reset registers (advertised in the FADT), and the PC's 0xcf9
 * reset control register.
 */
#ifndef TERN_DEVICES_POWER_H
#define TERN_DEVICES_POWER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/machine.h"

/* ACPI block at PORT_ACPI_SLEEP_CTL: +0 sleep control, +1 sleep status, +2 reset. */
void power_acpi_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Port 0xcf9. */
void power_cf9_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Test-only debug exit port: the byte written becomes tern-vmm's exit status. */
void power_debug_exit_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#define ACPI_SLP_EN 0x20
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_MASK 0x1c
#define ACPI_S5_TYPE 5 /* matches \_S5 in tern's DSDT */

#endif
