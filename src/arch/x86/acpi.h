/*
 * ACPI tables for x86 guests: RSDP, XSDT, FADT (hardware-reduced, with sleep
 * control/status and reset registers on I/O ports), MADT, DSDT.
 * Built into a caller-provided buffer so the builder is testable without KVM.
 */
#ifndef TERN_ARCH_X86_ACPI_H
#define TERN_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct aml;

struct acpi_config {
	unsigned int ncpus; /* 1..ACPI_MAX_CPUS; APIC IDs are 0..ncpus-1 */
	uint32_t ioapic_addr;
	uint8_t ioapic_id;
	uint16_t sleep_ctl_port; /* FADT SLEEP_CONTROL_REG */
	uint16_t sleep_sts_port; /* FADT SLEEP_STATUS_REG */
	uint16_t reset_port;	 /* FADT RESET_REG */
	uint8_t reset_value;
	/*
	 * Optional: called inside the DSDT's Scope(\_SB) after the built-in legacy devices,
	 * to add more (virtio-mmio, a PCI host bridge) with the aml_* encoder. Failures
	 * latch in the aml state and make acpi_build() fail.
	 */
	void (*dsdt_devices)(struct aml *a, void *opaque);
	void *dsdt_opaque;
};

#define ACPI_MAX_CPUS 255

/*
 * Writes all tables into buf (size bytes), which the guest sees at base_gpa.
 * The RSDP is at offset 0 of buf (so base_gpa is the RSDP address).
 * Returns the number of bytes used, or a negative errno (-ENOSPC, -EINVAL).
 */
long acpi_build(uint8_t *buf, size_t size, uint64_t base_gpa, const struct acpi_config *cfg);

/* Sum of bytes mod 256; a valid ACPI table sums to 0. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
