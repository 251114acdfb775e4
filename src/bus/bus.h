/*
 * Port-I/O and MMIO address-space dispatch. Devices register ranges during set-up;
 * afterwards the tables are read-only, so vCPU threads dispatch without locks
 * (each device locks its own state).
 */
#ifndef TERN_BUS_BUS_H
#define TERN_BUS_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* addr is relative to the range base; data holds len (1..8) bytes, little-endian. */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			       bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_handler_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
	unsigned int n;
	struct bus_range r[BUS_MAX_RANGES];
};

/* Fails with -EEXIST on overlap, -ENOSPC when full, -EINVAL for an empty/wrapping range. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		 const char *name);
/*
 * Dispatches one access. Returns false when nothing claims addr: reads then see
 * all-ones, as on an unconnected bus.
 */
bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
