/* Format dispatch and loading of a parsed kernel image into guest RAM. */
#include "arch/x86/boot.h"
#include "arch/x86/boot_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int boot_image_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why)
{
	if (len >= 4 && !memcmp(file,
				"\x7f"
				"ELF",
				4))
		return boot_elf_parse(file, len, img, why);
	return boot_bzimage_parse(file, len, img, why);
}

int boot_image_load(const struct boot_image *img, const uint8_t *file, const struct guest_mem *mem)
{
	for (unsigned int i = 0; i < img->nseg; i++) {
		const struct boot_segment *s = &img->seg[i];
		uint8_t *dst = guest_mem_ptr(mem, s->gpa, s->mem_size);

		if (!dst)
			return -EFAULT;
		/*
		 * One call to fault the pages in rather than one fault per page: a host-decompressed
		 * kernel is tens of MiB, and a fault costs far more in a nested or emulated host.
		 * Best effort (kernels before 5.14 say EINVAL).
		 */
		uintptr_t a = ((uintptr_t)dst + 4095) & ~(uintptr_t)4095;
		uintptr_t e = ((uintptr_t)dst + s->mem_size) & ~(uintptr_t)4095;
		if (e > a)
			madvise((void *)a, e - a, MADV_POPULATE_WRITE);
		memcpy(dst, file + s->file_off, s->file_size);
		memset(dst + s->file_size, 0, s->mem_size - s->file_size);
	}
	return 0;
}
