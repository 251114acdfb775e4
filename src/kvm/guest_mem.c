/* Guest RAM backing and the one checked GPA -> host pointer translation. */
#include "kvm/guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef MAP_HUGE_2MB /* <linux/mman.h> has it, but clashes with <sys/mman.h> */
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

void guest_mem_layout(struct guest_mem *m, uint64_t size)
{
	m->dirty = NULL;
	m->anon = false;
	m->hugetlb = false;
	m->host = NULL;
	m->size = size;
	m->low_size = size < GUEST_MEM_LOW_LIMIT ? size : GUEST_MEM_LOW_LIMIT;
}

int guest_mem_create(struct guest_mem *m, uint64_t size)
{
	const uint64_t huge = 2u << 20;

	guest_mem_layout(m, size);
	if (size > UINT64_MAX - huge)
		return -ENOMEM;
	/*
	 * MAP_NORESERVE: guest RAM is touched lazily; only what the guest uses costs host
	 * memory. Placed on a 2 MiB boundary (the surplus unmapped): KVM maps a huge page
	 * into the guest only where guest and host addresses agree modulo its size.
	 */
	uint8_t *raw = mmap(NULL, size + huge, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + size, (size_t)(raw + huge - p));
	m->host = p;
	m->anon = true;
	/* A name for smaps (bench/startup tells guest RAM from the VMM's own memory by it). */
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size, "tern-guest-ram");
	return 0;
}

int guest_mem_create_hugetlb(struct guest_mem *m, uint64_t size)
{
	const uint64_t huge = GUEST_MEM_HUGETLB_PAGE;

	guest_mem_layout(m, size);
	if (size % huge)
		return -EINVAL;
	/*
	 * No MAP_NORESERVE: the pages are reserved by this call, so a host without enough
	 * fails here with ENOMEM. The kernel places hugetlbfs mappings on their page size.
	 */
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->host = p;
	m->anon = true;
	m->hugetlb = true;
	return 0;
}

int guest_mem_advise_huge(struct guest_mem *m)
{
	/*
	 * One second-level page table entry and one fault for 2 MiB of guest memory instead
	 * of 512: the guest's page cache, its copies and its boot all gain.
	 */
	if (!m->anon || m->hugetlb)
		return -EINVAL;
	return madvise(m->host, m->size, MADV_HUGEPAGE) ? -errno : 0;
}

int guest_mem_discard(const struct guest_mem *m, uint64_t off, uint64_t len)
{
	/* A private file mapping would read its file again, not zeros. */
	if (!m->anon || off > m->size || len > m->size - off)
		return -EINVAL;
	if (m->hugetlb && (off % GUEST_MEM_HUGETLB_PAGE || len % GUEST_MEM_HUGETLB_PAGE))
		return -EINVAL;
	return madvise(m->host + off, len, MADV_DONTNEED) ? -errno : 0;
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	m->host = NULL;
	m->anon = m->hugetlb = false;
}

#define PAGE_SHIFT 12

int guest_mem_track_dirty(struct guest_mem *m)
{
	m->dirty = calloc(((m->size >> PAGE_SHIFT) + 7) / 8, 1);
	return m->dirty ? 0 : -ENOMEM;
}

void guest_mem_take_dirty(struct guest_mem *m, uint8_t *out)
{
	uint64_t bytes = ((m->size >> PAGE_SHIFT) + 7) / 8;

	for (uint64_t i = 0; m->dirty && i < bytes; i++)
		out[i] |= __atomic_exchange_n(&m->dirty[i], 0, __ATOMIC_RELAXED);
}

/* off: offset in the host mapping; len > 0. */
static void mark(const struct guest_mem *m, uint64_t off, uint64_t len)
{
	for (uint64_t p = off >> PAGE_SHIFT; p <= (off + len - 1) >> PAGE_SHIFT; p++)
		__atomic_fetch_or(&m->dirty[p / 8], (uint8_t)(1u << (p % 8)), __ATOMIC_RELAXED);
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end, off;

	if (!m->host || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= m->low_size)
		off = gpa;
	else if (gpa >= GUEST_MEM_HIGH_BASE && end - GUEST_MEM_HIGH_BASE <= guest_mem_high_size(m))
		off = m->low_size + (gpa - GUEST_MEM_HIGH_BASE);
	else
		return NULL;
	if (m->dirty && len)
		mark(m, off, len);
	return m->host + off;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}
