/*
 * Booting a bzImage without its in-guest decompressor: the payload is decompressed in
 * the host (or taken from the cache), laid out at a (KASLR-random) load address with its
 * relocations applied, and entered at the kernel proper's startup_64 with the bzImage's
 * own setup header in boot_params. Each step's cost is logged at debug level, the total
 * at info level.
 */
#ifndef TERN_ARCH_X86_BOOT_HOST_H
#define TERN_ARCH_X86_BOOT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"

struct boot_host_opts {
	const char *cmdline;   /* the kernel command line ("nokaslr" turns KASLR off) */
	uint64_t limit;	       /* the kernel must end at or below this address */
	bool cache;	       /* use the decompressed-kernel cache */
	const char *cache_dir; /* NULL: boot_cache_dir()'s */
	uint64_t (*rnd)(void); /* NULL: getrandom() */
};

/*
 * On success replaces *img with the direct-entry image and sets *out (malloc'ed; what
 * boot_image_load and boot_write_params read instead of the file). -ENOENT: this image
 * boots the old way (*why says why: an old protocol, an unknown compression). Other
 * negative errno: the payload is broken (*why), and the kernel would not boot either way.
 */
int boot_host_decompress(const uint8_t *file, size_t len, struct boot_image *img,
			 const struct boot_host_opts *o, uint8_t **out, size_t *out_len,
			 const char **why);

#endif
