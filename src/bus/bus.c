/* Address-range dispatch shared by the port-I/O and MMIO buses. */
#include "bus/bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name)
{
	uint64_t end;

	if (!len || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	if (b->n == BUS_MAX_RANGES)
		return -ENOSPC;
	for (unsigned int i = 0; i < b->n; i++)
		if (base < b->r[i].base + b->r[i].len && b->r[i].base < end)
			return -EEXIST;
	b->r[b->n++] = (struct bus_range){ base, len, fn, opaque, name };
	return 0;
}

bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	for (unsigned int i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->r[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
