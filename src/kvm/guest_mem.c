/* Guest RAM backing and the one checked GPA -> host pointer translation. */
#include "kvm/guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void guest_mem_layout(struct guest_mem *m, uint64_t size)
{
	m->dirty = NULL;
	m->fd = -1;
	m->host = NULL;
	m->size = size;
	m->low_size = size < GUEST_MEM_LOW_LIMIT ? size : GUEST_MEM_LOW_LIMIT;
}

int guest_mem_create(struct guest_mem *m, uint64_t size)
{
	guest_mem_layout(m, size);
	m->fd = memfd_create("tern-guest-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	if (ftruncate(m->fd, (off_t)size) < 0)
		goto fail;
	/* MAP_NORESERVE: guest RAM is touched lazily; only what the guest uses costs host memory. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	m->host = p;
	return 0;
fail:;
	int err = -errno;
	close(m->fd);
	m->fd = -1;
	return err;
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->host = NULL;
	m->fd = -1;
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
