/*
 * What tern writes into guest RAM for the kernel's first instruction: the Linux
 * zero page (struct boot_params) or the PVH start_info, the command line, the
 * boot GDT and identity page tables, and the initial vCPU register state.
 */
#ifndef TERN_ARCH_X86_BOOTPARAMS_H
#define TERN_ARCH_X86_BOOTPARAMS_H

#include <linux/kvm.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "kvm/guest_mem.h"

struct boot_setup {
	const struct boot_image *img;
	const uint8_t *file; /* the kernel file (bzImage setup header is copied from it) */
	enum boot_entry entry;
	const char *cmdline;
	uint64_t initrd_gpa, initrd_size; /* 0 size: none */
	uint64_t rsdp_gpa;
};

/* Zero page offsets used by tern and by tests. */
#define BP_ACPI_RSDP 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR_TYPE_OF_LOADER 0x210
#define BP_HDR_LOADFLAGS 0x211
#define BP_HDR_RAMDISK_IMAGE 0x218
#define BP_HDR_RAMDISK_SIZE 0x21c
#define BP_HDR_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0

/*
 * Highest address (exclusive) the initrd may end at, for the image; places the
 * initrd page-aligned just below it and above the kernel. -ENOSPC if it does not fit.
 */
int boot_place_initrd(const struct guest_mem *m, const struct boot_image *img, uint64_t size,
		      uint64_t *gpa);

/* Writes command line, zero page or PVH start_info, GDT and page tables. */
int boot_write_params(const struct guest_mem *m, const struct boot_setup *b);

/* Initial registers of the boot vCPU for the chosen entry. */
void boot_cpu_state(const struct boot_setup *b, struct kvm_regs *regs, struct kvm_sregs *sregs);

#endif
