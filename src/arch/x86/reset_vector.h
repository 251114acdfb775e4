/*
 * The real-mode reset vector (F000:FFF0): a few bytes that reset the machine through
 * the ACPI reset register, as a PC's BIOS would after a jump there.
 */
#ifndef TERN_ARCH_X86_RESET_VECTOR_H
#define TERN_ARCH_X86_RESET_VECTOR_H

#include <stdint.h>

#include "kvm/guest_mem.h"

/*
 * Linux with hardware-reduced ACPI and no EFI picks EFI reboot, finds no EFI runtime,
 * and falls back to a jump to the reset vector in real mode (reboot.c, BOOT_BIOS).
 * Without code there the guest would spin in zeroed memory instead of rebooting.
 */
int reset_vector_write(const struct guest_mem *m, uint16_t reset_port, uint8_t reset_value);

#endif
