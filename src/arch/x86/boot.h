/*
 * Kernel image formats tern boots on x86: ELF vmlinux (64-bit Linux boot protocol
 * entry, or the PVH 32-bit entry from its Xen ELF note) and bzImage (protected-mode
 * kernel entered at its 64-bit or 32-bit entry; the real-mode setup code never runs).
 *
 * boot_image_parse() only reads the file image and validates every offset and size,
 * so it is safe on hostile files and testable without KVM. boot_image_load() then
 * copies the parsed image into guest RAM.
 */
#ifndef TERN_ARCH_X86_BOOT_H
#define TERN_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/guest_mem.h"

enum boot_kind { BOOT_ELF, BOOT_BZIMAGE };
enum boot_entry { BOOT_ENTRY_LINUX64, BOOT_ENTRY_PVH, BOOT_ENTRY_LINUX32 };

#define BOOT_MAX_SEGMENTS 16
#define BOOT_SETUP_HDR_OFF 0x1f1 /* setup header offset in a bzImage and in boot_params */

struct boot_segment {
	uint64_t file_off;
	uint64_t file_size;
	uint64_t gpa;
	uint64_t mem_size;
};

struct boot_image {
	enum boot_kind kind;
	uint64_t entry64;   /* 64-bit entry (ELF e_entry, or bzImage load address + 0x200) */
	uint64_t entry32;   /* bzImage code32_start-style entry */
	uint64_t pvh_entry; /* 0 if the ELF has no PVH note */
	int has_entry64;
	unsigned int nseg;
	struct boot_segment seg[BOOT_MAX_SEGMENTS];
	uint64_t end; /* highest GPA the kernel occupies or needs (incl. bzImage init_size) */
	/* bzImage only */
	uint16_t version;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	size_t setup_hdr_len; /* bytes of setup header to copy into boot_params at 0x1f1 */
};

/*
 * Parses an image. On failure returns a negative errno and sets *why to a short
 * static description ("not an ELF or bzImage", "ELF program header out of file", ...).
 */
int boot_image_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why);

/* Copies the segments into RAM (zeroing BSS). -EFAULT when a segment is outside RAM. */
int boot_image_load(const struct boot_image *img, const uint8_t *file, const struct guest_mem *mem);

#endif
