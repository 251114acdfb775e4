/*
 * Guest-virtual to guest-physical translation by walking the guest's own page
 * tables (no paging, 32-bit, PAE, 4- and 5-level long mode). Used when tern must
 * read or write guest memory the way the guest's CPU would (emulated instructions).
 */
#ifndef TERN_ARCH_X86_GVA_H
#define TERN_ARCH_X86_GVA_H

#include <stdbool.h>
#include <stdint.h>

#include "kvm/guest_mem.h"

struct gva_ctx {
	uint64_t cr0, cr3, cr4, efer;
};

/* -EFAULT when a table is outside RAM or an entry is not present; -EACCES on a write to read-only. */
int gva_translate(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, bool write,
		  uint64_t *gpa);
/* Copies len bytes, translating page by page. */
int gva_read(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, void *dst,
	     uint64_t len);
int gva_write(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, const void *src,
	      uint64_t len);

#endif
