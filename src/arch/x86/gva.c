/* Guest page-table walker. Every table read goes through guest_mem_ptr(). */
#include "arch/x86/gva.h"

#include <errno.h>
#include <string.h>

#define CR0_PG (1ULL << 31)
#define CR0_WP (1ULL << 16)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL
#define ADDR_MASK 0x000ffffffffff000ULL

static int read_entry(const struct guest_mem *m, uint64_t gpa, unsigned int size, uint64_t *e)
{
	const void *p = guest_mem_ptr(m, gpa, size);

	if (!p)
		return -EFAULT;
	*e = 0;
	memcpy(e, p, size);
	return 0;
}

int gva_translate(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, bool write,
		  uint64_t *gpa)
{
	uint64_t e;
	bool ro = false;

	if (!(c->cr0 & CR0_PG)) {
		*gpa = gva & 0xffffffffULL;
		return 0;
	}
	if (!(c->cr4 & CR4_PAE)) {
		/* Two-level 32-bit paging, 4 MiB pages with PSE. */
		uint32_t va = (uint32_t)gva;
		if (read_entry(m, (c->cr3 & 0xfffff000ULL) + ((va >> 22) & 0x3ff) * 4, 4, &e) ||
		    !(e & PTE_P))
			return -EFAULT;
		ro |= !(e & PTE_RW);
		if ((e & PTE_PS) && (c->cr4 & CR4_PSE)) {
			*gpa = (e & 0xffc00000ULL) | (va & 0x3fffff);
			goto done;
		}
		if (read_entry(m, (e & 0xfffff000ULL) + ((va >> 12) & 0x3ff) * 4, 4, &e) ||
		    !(e & PTE_P))
			return -EFAULT;
		ro |= !(e & PTE_RW);
		*gpa = (e & 0xfffff000ULL) | (va & 0xfff);
		goto done;
	}

	int levels;
	uint64_t table;
	if (c->efer & EFER_LMA) {
		levels = (c->cr4 & CR4_LA57) ? 5 : 4;
		table = c->cr3 & ADDR_MASK;
	} else {
		/* PAE: the 4 PDPTEs are indexed by bits 31:30. */
		gva &= 0xffffffffULL;
		if (read_entry(m, (c->cr3 & 0xffffffe0ULL) + ((gva >> 30) & 3) * 8, 8, &e) ||
		    !(e & PTE_P))
			return -EFAULT;
		table = e & ADDR_MASK;
		levels = 2;
	}
	for (int level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (unsigned int)(level - 1);
		if (read_entry(m, table + ((gva >> shift) & 0x1ff) * 8, 8, &e) || !(e & PTE_P))
			return -EFAULT;
		ro |= !(e & PTE_RW);
		/* Large pages at the 1 GiB (level 3) and 2 MiB (level 2) steps. */
		if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
			uint64_t page = 1ULL << shift;
			*gpa = (e & ADDR_MASK & ~(page - 1)) | (gva & (page - 1));
			goto done;
		}
		table = e & ADDR_MASK;
	}
	return -EFAULT;
done:
	/* Supervisor writes ignore R/W unless CR0.WP; tern writes as the kernel would. */
	if (write && ro && (c->cr0 & CR0_WP))
		return -EACCES;
	return 0;
}

static int copy(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, uint8_t *buf,
		uint64_t len, bool write)
{
	while (len) {
		uint64_t gpa, chunk = 4096 - (gva & 4095);
		if (chunk > len)
			chunk = len;
		int r = gva_translate(m, c, gva, write, &gpa);
		if (r)
			return r;
		uint8_t *p = guest_mem_ptr(m, gpa, chunk);
		if (!p)
			return -EFAULT;
		if (write)
			memcpy(p, buf, chunk);
		else
			memcpy(buf, p, chunk);
		gva += chunk;
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

int gva_read(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, void *dst,
	     uint64_t len)
{
	return copy(m, c, gva, dst, len, false);
}

int gva_write(const struct guest_mem *m, const struct gva_ctx *c, uint64_t gva, const void *src,
	      uint64_t len)
{
	return copy(m, c, gva, (uint8_t *)src, len, true);
}
