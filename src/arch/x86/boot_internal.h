/* Per-format parsers behind boot_image_parse(). */
#ifndef TERN_ARCH_X86_BOOT_INTERNAL_H
#define TERN_ARCH_X86_BOOT_INTERNAL_H

#include "arch/x86/boot.h"

/* Little-endian integer of n (<= 8) bytes at p: image fields may sit at any alignment. */
static inline uint64_t boot_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int boot_elf_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why);
int boot_bzimage_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why);

#endif
