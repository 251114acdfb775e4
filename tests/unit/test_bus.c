/*
 * Tests for the address-range bus: registration rules (overlap, wrap-around, empty,
 * full table), dispatch with base-relative offsets, and unclaimed accesses.
 */
#include <errno.h>
#include <string.h>

#include "bus/bus.h"
#include "unit.h"

struct rec {
	int calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t seen[8];
};

/* Records the access; a read returns offset-derived bytes. */
static void handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rec *r = opaque;

	r->calls++;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	if (is_write) {
		memcpy(r->seen, data, len > 8 ? 8 : len);
	} else {
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(0xa0 + offset + i);
	}
}

TEST(bus_register_overlap)
{
	static struct bus b;
	struct rec r = { 0 };

	memset(&b, 0, sizeof(b));
	REQUIRE(bus_register(&b, 0x100, 0x10, handler, &r, "a") == 0);
	/* Exact, inside, straddling either end, and covering: all overlap. */
	CHECK(bus_register(&b, 0x100, 0x10, handler, &r, "x") == -EEXIST);
	CHECK(bus_register(&b, 0x104, 0x4, handler, &r, "x") == -EEXIST);
	CHECK(bus_register(&b, 0xf8, 0x9, handler, &r, "x") == -EEXIST);
	CHECK(bus_register(&b, 0x10f, 0x10, handler, &r, "x") == -EEXIST);
	CHECK(bus_register(&b, 0x0, 0x1000, handler, &r, "x") == -EEXIST);
	CHECK(b.n == 1);
	/* Touching either end is not an overlap. */
	CHECK(bus_register(&b, 0xf0, 0x10, handler, &r, "below") == 0);
	CHECK(bus_register(&b, 0x110, 0x1, handler, &r, "above") == 0);
	CHECK(b.n == 3);
	CHECK(b.r[1].base == 0xf0 && b.r[1].len == 0x10 && strcmp(b.r[1].name, "below") == 0);
}

TEST(bus_register_invalid_ranges)
{
	static struct bus b;
	struct rec r = { 0 };

	memset(&b, 0, sizeof(b));
	CHECK(bus_register(&b, 0x100, 0, handler, &r, "empty") == -EINVAL);
	CHECK(bus_register(&b, UINT64_MAX, 2, handler, &r, "wrap") == -EINVAL);
	CHECK(bus_register(&b, 0xfffffffffffff000ULL, 0x2000, handler, &r, "wrap") == -EINVAL);
	CHECK(bus_register(&b, 1, UINT64_MAX, handler, &r, "wrap") == -EINVAL);
	CHECK(b.n == 0);
	/* Right up to the top of the address space (exclusive end fits in 64 bits). */
	CHECK(bus_register(&b, UINT64_MAX - 0x10, 0x10, handler, &r, "top") == 0);
	/* A huge range that does not wrap still conflicts with it. */
	CHECK(bus_register(&b, 0x1000, UINT64_MAX - 0x1000, handler, &r, "huge") == -EEXIST);
}

TEST(bus_register_full)
{
	static struct bus b;
	struct rec r = { 0 };

	memset(&b, 0, sizeof(b));
	for (unsigned int i = 0; i < BUS_MAX_RANGES; i++)
		REQUIRE(bus_register(&b, 0x1000 + i * 8, 8, handler, &r, "dev") == 0);
	CHECK(b.n == BUS_MAX_RANGES);
	CHECK(bus_register(&b, 0x100000, 8, handler, &r, "one too many") == -ENOSPC);
	CHECK(b.n == BUS_MAX_RANGES);
	/* Every one of them still dispatches. */
	uint8_t d = 0;
	CHECK(bus_access(&b, 0x1000 + (BUS_MAX_RANGES - 1) * 8 + 7, &d, 1, false));
	CHECK(r.offset == 7);
}

TEST(bus_dispatch_relative_offset)
{
	static struct bus b;
	struct rec r1 = { 0 }, r2 = { 0 };
	uint8_t data[8];

	memset(&b, 0, sizeof(b));
	REQUIRE(bus_register(&b, 0x3f8, 8, handler, &r1, "serial") == 0);
	REQUIRE(bus_register(&b, 0xfee00000ULL, 0x1000, handler, &r2, "lapic") == 0);

	memset(data, 0, sizeof(data));
	CHECK(bus_access(&b, 0x3fd, data, 1, false));
	CHECK(r1.calls == 1 && r1.offset == 5 && r1.len == 1 && !r1.is_write);
	CHECK(data[0] == 0xa5);
	CHECK(r2.calls == 0);

	memcpy(data, "\x11\x22\x33\x44", 4);
	CHECK(bus_access(&b, 0xfee000b0ULL, data, 4, true));
	CHECK(r2.calls == 1 && r2.offset == 0xb0 && r2.len == 4 && r2.is_write);
	CHECK(memcmp(r2.seen, "\x11\x22\x33\x44", 4) == 0);
	CHECK(r1.calls == 1);

	/* First and last byte of a range. */
	CHECK(bus_access(&b, 0x3f8, data, 1, false) && r1.offset == 0);
	CHECK(bus_access(&b, 0x3ff, data, 1, false) && r1.offset == 7);
	CHECK(r1.calls == 3);
}

TEST(bus_unclaimed_reads_all_ones)
{
	static struct bus b;
	struct rec r = { 0 };
	uint8_t data[8];

	memset(&b, 0, sizeof(b));
	REQUIRE(bus_register(&b, 0x60, 1, handler, &r, "kbd") == 0);

	memset(data, 0, sizeof(data));
	CHECK(!bus_access(&b, 0x61, data, 4, false));
	CHECK(data[0] == 0xff && data[1] == 0xff && data[2] == 0xff && data[3] == 0xff);
	CHECK(data[4] == 0); /* only len bytes */
	CHECK(!bus_access(&b, 0x5f, data, 1, false));
	CHECK(r.calls == 0);

	/* An unclaimed write is dropped and leaves the buffer alone. */
	memcpy(data, "\x01\x02", 2);
	CHECK(!bus_access(&b, 0x1234, data, 2, true));
	CHECK(data[0] == 0x01 && data[1] == 0x02);
	CHECK(r.calls == 0);

	/* An empty bus claims nothing. */
	static struct bus empty;
	memset(&empty, 0, sizeof(empty));
	CHECK(!bus_access(&empty, 0, data, 8, false));
	CHECK(data[7] == 0xff);
}
