/* Starting the other vCPUs (INIT-SIPI-SIPI through the xAPIC) and finding them in the MADT. */
#ifndef TINY_SMP_H
#define TINY_SMP_H

#define TINY_TRAMP_BASE 0x8000 /* real-mode trampoline page: SIPI vector 0x08 */
#define TINY_MAX_CPUS 32

#ifndef __ASSEMBLER__
#include <stdint.h>

typedef void (*tiny_ap_fn)(unsigned int cpu);

/* This CPU's local APIC ID (xAPIC register 0x20, bits 31:24). */
uint32_t tiny_apic_id(void);
/*
 * Starts every CPU in apic_ids[0..n) except the caller, one at a time; CPU i runs
 * fn(i) on its own stack, then halts. Fails the guest if one does not start.
 */
void tiny_smp_start(const uint32_t *apic_ids, unsigned int n, tiny_ap_fn fn);
/* APIC IDs of the enabled processors in the ACPI MADT; returns how many (0: no MADT). */
unsigned int tiny_acpi_apic_ids(uint32_t *ids, unsigned int max);
#endif

#endif
