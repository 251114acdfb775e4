/* Per-format parsers behind boot_image_parse(). */
#ifndef TERN_ARCH_X86_BOOT_INTERNAL_H
#define TERN_ARCH_X86_BOOT_INTERNAL_H

#include "arch/x86/boot.h"

int boot_elf_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why);
int boot_bzimage_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why);

#endif
