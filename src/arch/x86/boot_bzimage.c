/*
 * bzImage parsing (Documentation/arch/x86/boot.rst): tern loads only the
 * protected-mode kernel and enters it at its 64-bit entry (load address + 0x200)
 * or, for kernels without XLF_KERNEL_64, at the 32-bit entry.
 */
#include "arch/x86/boot.h"
#include "arch/x86/boot_internal.h"
#include "arch/x86/layout.h"
#include "core/util.h"

#include <errno.h>
#include <string.h>

#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_LOADFLAGS 0x211
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01

int boot_bzimage_parse(const uint8_t *file, size_t len, struct boot_image *img, const char **why)
{
	if (len < HDR_INIT_SIZE + 4 || (uint32_t)boot_le(file + HDR_BOOT_FLAG, 2) != 0xaa55 ||
	    memcmp(file + HDR_MAGIC, "HdrS", 4)) {
		*why = "not an ELF or bzImage kernel";
		return -ENOEXEC;
	}
	uint16_t version = (uint16_t)(uint32_t)boot_le(file + HDR_VERSION, 2);
	/* 2.10 added init_size, which tells how much memory the kernel needs. */
	if (version < 0x020a) {
		*why = "bzImage boot protocol older than 2.10";
		return -EINVAL;
	}
	if (!(file[HDR_LOADFLAGS] & LOADED_HIGH)) {
		*why = "zImage (not loaded high) is not supported";
		return -EINVAL;
	}
	unsigned int setup_sects = file[HDR_SETUP_SECTS] ? file[HDR_SETUP_SECTS] : 4;
	uint64_t koff = (uint64_t)(setup_sects + 1) * 512;
	if (koff >= len) {
		*why = "bzImage truncated: no protected-mode kernel";
		return -EINVAL;
	}
	/* The header's own length: 0x202 + the jump's 8-bit displacement at 0x201. */
	size_t hdr_end = 0x202 + file[HDR_JUMP + 1];
	if (hdr_end > koff || hdr_end < HDR_INIT_SIZE + 4) {
		*why = "bzImage setup header length invalid";
		return -EINVAL;
	}
	uint32_t init_size = (uint32_t)boot_le(file + HDR_INIT_SIZE, 4);
	uint32_t align = (uint32_t)boot_le(file + HDR_KERNEL_ALIGNMENT, 4);
	int relocatable = file[HDR_RELOCATABLE];
	uint16_t xlf =
		version >= 0x020c ? (uint16_t)(uint32_t)boot_le(file + HDR_XLOADFLAGS, 2) : 0;

	memset(img, 0, sizeof(*img));
	img->kind = BOOT_BZIMAGE;
	img->version = version;
	img->initrd_addr_max = (uint32_t)boot_le(file + HDR_INITRD_ADDR_MAX, 4);
	img->cmdline_size = version >= 0x0206 ? (uint32_t)boot_le(file + HDR_CMDLINE_SIZE, 4) : 255;
	img->setup_hdr_len = hdr_end - BOOT_SETUP_HDR_OFF;
	img->nseg = 1;
	img->seg[0] = (struct boot_segment){ koff, len - koff, LAYOUT_KERNEL_BZIMAGE, len - koff };
	img->entry32 = LAYOUT_KERNEL_BZIMAGE;
	img->entry64 = LAYOUT_KERNEL_BZIMAGE + 0x200;
	img->has_entry64 = !!(xlf & XLF_KERNEL_64);
	/*
	 * Where the kernel runs once it has decompressed itself: never below
	 * pref_address (LOAD_PHYSICAL_ADDR); a relocatable one may run higher, at its
	 * aligned load address.
	 */
	uint64_t pref = ((uint64_t)(uint32_t)boot_le(file + HDR_PREF_ADDRESS + 4, 4) << 32) |
			(uint32_t)boot_le(file + HDR_PREF_ADDRESS, 4);
	uint64_t run_at = LAYOUT_KERNEL_BZIMAGE;
	if (relocatable && align && !(align & (align - 1)))
		run_at = align_up(run_at, align);
	if (pref > run_at)
		run_at = pref;
	uint64_t end = run_at + init_size;
	if (end < run_at || end > (1ULL << 40)) {
		*why = "bzImage init_size/pref_address out of range";
		return -EINVAL;
	}
	img->end = end > LAYOUT_KERNEL_BZIMAGE + (len - koff) ?
			   end :
			   LAYOUT_KERNEL_BZIMAGE + (len - koff);
	return 0;
}
