/*
 * Host-side decompression of a bzImage's payload (the compressed vmlinux.bin plus its
 * relocation table, Documentation/arch/x86/boot.rst: payload_offset/payload_length),
 * and the preparation of the result so that tern enters the kernel proper directly:
 * what the kernel's own decompressor (arch/x86/boot/compressed/misc.c) does in the
 * guest, done here with Debian's libraries.
 *
 * Everything here reads a user's file: every length is checked, the output is bounded,
 * and failures come back as a short static *why.
 */
#ifndef TERN_ARCH_X86_BOOT_DECOMPRESS_H
#define TERN_ARCH_X86_BOOT_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"

/* Where a bzImage's compressed payload is, from its header. */
struct bz_payload {
	const uint8_t *data;
	size_t len;
	uint32_t init_size;   /* memory the kernel needs from its load address */
	uint32_t align;	      /* kernel_alignment (CONFIG_PHYSICAL_ALIGN) */
	uint64_t pref;	      /* pref_address (LOAD_PHYSICAL_ADDR) */
	bool relocatable;     /* relocatable_kernel */
	size_t setup_len;     /* bytes before the protected-mode kernel */
	uint32_t expect_size; /* the decompressed length the build appended (0: unknown) */
};

/*
 * Finds the payload of a parsed bzImage. -ENOENT (with *why) when the image cannot take
 * the host-decompressed path (no 64-bit entry, protocol < 2.08, payload out of file):
 * the caller then boots it the old way.
 */
int boot_bz_payload(const uint8_t *file, size_t len, const struct boot_image *img,
		    struct bz_payload *p, const char **why);

/* The payload's format from its magic: "gzip", "xz", ..., or NULL if unknown. */
const char *boot_compression_name(const uint8_t *data, size_t len);

/*
 * Whether decoding the format takes longer than reading the result back from the cache
 * (hash + read + CRC, ~0.2 s for Debian's 53 MB vmlinux): gzip, xz, lzma, bzip2 do
 * (0.3 to 1.6 s); lz4, zstd and lzo do not (0.1 to 0.3 s), and skip the cache.
 */
bool boot_compression_slow(const uint8_t *data, size_t len);

/*
 * Decompresses data (any of gzip, xz, lzma, zstd, lz4 legacy, bzip2, lzop) into a new
 * malloc'ed buffer at *out + headroom, at most max bytes. 0, or -EINVAL / -ENOMEM with *why.
 */
int boot_decompress(const uint8_t *data, size_t len, size_t max, size_t headroom, uint8_t **out,
		    size_t *out_len, const char **why);

/*
 * malloc() with the pages faulted in at once (MADV_POPULATE_WRITE): one call instead of a
 * fault per page of a buffer tens of MiB large, which costs far more in a nested VM.
 */
void *boot_alloc_populated(size_t n);

/* Where the kernel goes: physical load address and KASLR virtual offset. */
struct boot_place {
	uint64_t phys;	   /* where the first byte at LOAD_PHYSICAL_ADDR goes */
	uint64_t virt_off; /* added to every kernel virtual address (0: none) */
	bool kaslr;	   /* the guest is told KASLR is on (loadflags KASLR_FLAG) */
};

/* A decompressed vmlinux.bin + vmlinux.relocs, checked. */
struct boot_vmlinux {
	struct boot_image elf; /* segments as parsed from the ELF */
	uint64_t base;	       /* lowest p_paddr: the link-time physical address */
	uint64_t span;	       /* bytes from base to the end of the last segment in memory */
	uint64_t file_span;    /* bytes from base to the end of the last segment's file data */
	size_t relocs_off;     /* where the relocation table starts (== len if none) */
	bool has_relocs;       /* a well-formed table (CONFIG_RANDOMIZE_BASE) */
	bool in_place;	       /* segments can be laid out over the ELF itself (see parse) */
};

int boot_vmlinux_parse(const uint8_t *elf, size_t len, uint64_t pref, struct boot_vmlinux *v,
		       const char **why);

/*
 * Chooses the load address and virtual offset the way the kernel's decompressor does:
 * none unless the kernel has relocations, is relocatable and kaslr is wanted; then a
 * random kernel_alignment-aligned physical address in [pref, limit - init_size] and a
 * random virtual offset so that the image stays below KERNEL_IMAGE_SIZE (1 GiB).
 * rnd gives random 64-bit values (getrandom in tern, fixed in tests).
 */
void boot_choose_place(const struct bz_payload *p, const struct boot_vmlinux *v, size_t out_len,
		       uint64_t limit, bool kaslr, uint64_t (*rnd)(void), struct boot_place *pl);

/*
 * Applies the relocation table to flat (the kernel laid out from base, file_span bytes)
 * for a virtual offset delta, as handle_relocations() does. 0, or -EINVAL with *why
 * when an entry points outside the image.
 */
int boot_apply_relocs(const uint8_t *elf, size_t len, const struct boot_vmlinux *v, uint8_t *flat,
		      uint64_t delta, const char **why);

/*
 * Builds what tern loads into buf (p->setup_len + v->file_span bytes): the bzImage's setup
 * (so boot_params gets the same header) followed by the laid-out, relocated kernel, and
 * the image describing it (kind BOOT_BZIMAGE, one segment at pl->phys, entry64 at the
 * ELF's startup_64). elf may be buf + p->setup_len when v->in_place. The setup copy's
 * loadflags get KASLR_FLAG when pl->kaslr. 0, or -errno with *why.
 */
int boot_build_direct(const uint8_t *file, const struct boot_image *bz, const struct bz_payload *p,
		      const uint8_t *elf, size_t elf_len, const struct boot_vmlinux *v,
		      const struct boot_place *pl, uint8_t *buf, struct boot_image *img,
		      const char **why);

/* Whether the command line asks for no KASLR ("nokaslr" before any "--"). */
bool boot_cmdline_nokaslr(const char *cmdline);

#endif
