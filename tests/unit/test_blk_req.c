/*
 * Tests for the virtio-blk request parser (blk_parse) over hand-built chains: every
 * request type, data slices across segment boundaries, and each rejection rule.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "virtio/blk_req.h"
#include "unit.h"

#define CAP (1ULL << 20) /* 1 MiB disk */

static struct virtq_chain chain;
static struct blk_parsed parsed;

/* Segment lists: readable ones first, then writable ones, as virtq_pop() returns them. */
struct seg {
	void *base;
	size_t len;
};

static void build(const struct seg *rd, unsigned int nr, const struct seg *wr, unsigned int nw)
{
	memset(&chain, 0, sizeof(chain));
	chain.nread = nr;
	chain.nwrite = nw;
	for (unsigned int i = 0; i < nr; i++) {
		chain.iov[i] = (struct iovec){ rd[i].base, rd[i].len };
		chain.read_len += rd[i].len;
	}
	for (unsigned int i = 0; i < nw; i++) {
		chain.iov[nr + i] = (struct iovec){ wr[i].base, wr[i].len };
		chain.write_len += wr[i].len;
	}
}

static void hdr(uint8_t *h, uint32_t type, uint64_t sector)
{
	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
}

/* A discard / write-zeroes range (virtio_blk_discard_write_zeroes). */
static void range(uint8_t *r, uint64_t sector, uint32_t sectors, uint32_t flags)
{
	memcpy(r, &sector, 8);
	memcpy(r + 8, &sectors, 4);
	memcpy(r + 12, &flags, 4);
}

static int parse(uint64_t cap)
{
	memset(&parsed, 0xcc, sizeof(parsed)); /* blk_parse must clear what it does not set */
	return blk_parse(&chain, cap, &parsed);
}

static int iov_is(int i, const void *base, size_t len)
{
	return i < parsed.ndata && parsed.data[i].iov_base == base && parsed.data[i].iov_len == len;
}

TEST(blk_req_in_simple)
{
	uint8_t h[16], data[1024], st = 0xff;
	struct seg rd[] = { { h, 16 } }, wr[] = { { data, sizeof(data) }, { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_IN, 2);
	build(rd, 1, wr, 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_IN);
	CHECK(parsed.sector == 2);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, data, sizeof(data)));
	CHECK(parsed.data_len == sizeof(data));
	CHECK(parsed.status == &st);
}

TEST(blk_req_in_status_inside_data_segment)
{
	/* One writable segment carries the data and, in its last byte, the status. */
	uint8_t h[16], buf[513];
	struct seg rd[] = { { h, 16 } }, wr[] = { { buf, sizeof(buf) } };

	hdr(h, VIRTIO_BLK_T_IN, 0);
	build(rd, 1, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, buf, 512));
	CHECK(parsed.status == buf + 512);
}

TEST(blk_req_in_multi_segment_status_split)
{
	/* Data spread over three writable segments; the last also holds the status byte. */
	uint8_t h[16], a[600], b[300], c[125];
	struct seg rd[] = { { h, 16 } },
		   wr[] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };

	hdr(h, VIRTIO_BLK_T_IN, 5);
	build(rd, 1, wr, 3);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 3);
	CHECK(iov_is(0, a, 600));
	CHECK(iov_is(1, b, 300));
	CHECK(iov_is(2, c, 124));
	CHECK(parsed.data_len == 1024);
	CHECK(parsed.status == c + 124);
}

TEST(blk_req_in_ignores_trailing_empty_writable)
{
	/* Zero-length segments after the status do not move it. */
	uint8_t h[16], data[512], st;
	struct seg rd[] = { { h, 16 } },
		   wr[] = { { data, sizeof(data) }, { &st, 1 }, { data, 0 }, { data, 0 } };

	hdr(h, VIRTIO_BLK_T_IN, 0);
	build(rd, 1, wr, 4);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.status == &st);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, data, 512));
}

TEST(blk_req_in_zero_length_read)
{
	uint8_t h[16], st;
	struct seg rd[] = { { h, 16 } }, wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_IN, CAP / 512); /* at the end: nothing to read, still in range */
	build(rd, 1, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 0);
	CHECK(parsed.data_len == 0);
	CHECK(parsed.status == &st);
}

TEST(blk_req_out_simple)
{
	uint8_t h[16], data[2048], st;
	struct seg rd[] = { { h, 16 }, { data, sizeof(data) } }, wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_OUT, 7);
	build(rd, 2, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_OUT);
	CHECK(parsed.sector == 7);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, data, sizeof(data)));
	CHECK(parsed.data_len == sizeof(data));
	CHECK(parsed.status == &st);
}

TEST(blk_req_out_header_and_data_share_segment)
{
	uint8_t buf[16 + 512], st;
	struct seg rd[] = { { buf, sizeof(buf) } }, wr[] = { { &st, 1 } };

	hdr(buf, VIRTIO_BLK_T_OUT, 1);
	build(rd, 1, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, buf + 16, 512));
}

TEST(blk_req_out_header_straddles_segments)
{
	/* The header is split 5 + 11 bytes; the second segment also starts the data. */
	uint8_t h[16], s0[5], s1[11 + 100], s2[412], st;
	struct seg rd[] = { { s0, sizeof(s0) }, { s1, sizeof(s1) }, { s2, sizeof(s2) } },
		   wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_OUT, 3);
	memcpy(s0, h, 5);
	memcpy(s1, h + 5, 11);
	build(rd, 3, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.sector == 3);
	CHECK(parsed.ndata == 2);
	CHECK(iov_is(0, s1 + 11, 100));
	CHECK(iov_is(1, s2, 412));
	CHECK(parsed.data_len == 512);
}

TEST(blk_req_out_header_split_at_every_byte)
{
	uint8_t h[16], a[16], b[16 + 512], st;

	hdr(h, VIRTIO_BLK_T_OUT, 9);
	for (size_t cut = 1; cut < 16; cut++) {
		struct seg rd[] = { { a, cut }, { b, 16 - cut + 512 } }, wr[] = { { &st, 1 } };
		memcpy(a, h, cut);
		memcpy(b, h + cut, 16 - cut);
		build(rd, 2, wr, 1);
		CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
		CHECK(parsed.sector == 9);
		CHECK(parsed.ndata == 1);
		CHECK(iov_is(0, b + 16 - cut, 512));
	}
}

TEST(blk_req_out_extra_writable_ignored)
{
	/* Writable bytes before the status are not part of a write. */
	uint8_t h[16], data[512], junk[64], st;
	struct seg rd[] = { { h, 16 }, { data, 512 } },
		   wr[] = { { junk, sizeof(junk) }, { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_OUT, 0);
	build(rd, 2, wr, 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, data, 512));
	CHECK(parsed.status == &st);
}

TEST(blk_req_reserved_header_field_ignored)
{
	uint8_t h[16], st;
	uint32_t ioprio = 0xdeadbeef;
	struct seg rd[] = { { h, 16 } }, wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_FLUSH, 0);
	memcpy(h + 4, &ioprio, 4);
	build(rd, 1, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
}

TEST(blk_req_flush)
{
	uint8_t h[16], st;
	struct seg rd[] = { { h, 16 } }, wr[] = { { &st, 1 } };

	/* The sector of a flush means nothing, even far past the end. */
	hdr(h, VIRTIO_BLK_T_FLUSH, ~0ULL);
	build(rd, 1, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_FLUSH);
	CHECK(parsed.ndata == 0);
	CHECK(parsed.data_len == 0);
	CHECK(parsed.status == &st);
}

TEST(blk_req_get_id)
{
	uint8_t h[16], id[20], st;
	struct seg rd[] = { { h, 16 } }, wr[] = { { id, sizeof(id) }, { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_GET_ID, 0);
	build(rd, 1, wr, 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_GET_ID);
	CHECK(parsed.ndata == 1);
	CHECK(iov_is(0, id, 20));
	CHECK(parsed.status == &st);

	/* Buffer and status in one segment; a buffer that is not a sector multiple is fine. */
	uint8_t both[21];
	struct seg wr1[] = { { both, sizeof(both) } };
	build(rd, 1, wr1, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(iov_is(0, both, 20));
	CHECK(parsed.status == both + 20);
}

TEST(blk_req_discard)
{
	uint8_t h[16], r[16], st;
	struct seg rd[] = { { h, 16 }, { r, 16 } }, wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_DISCARD, 0);
	range(r, 8, 16, 0);
	build(rd, 2, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_DISCARD);
	CHECK(parsed.range_sector == 8);
	CHECK(parsed.range_sectors == 16);
	CHECK(parsed.status == &st);

	/* Up to the last sector exactly. */
	range(r, CAP / 512 - 16, 16, 0);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
}

TEST(blk_req_discard_range_split_across_segments)
{
	uint8_t all[32], a[20], b[12], st;
	struct seg rd[] = { { a, sizeof(a) }, { b, sizeof(b) } }, wr[] = { { &st, 1 } };

	hdr(all, VIRTIO_BLK_T_DISCARD, 0);
	range(all + 16, 100, 7, 0);
	memcpy(a, all, 20);
	memcpy(b, all + 20, 12);
	build(rd, 2, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.range_sector == 100);
	CHECK(parsed.range_sectors == 7);
}

TEST(blk_req_write_zeroes)
{
	uint8_t h[16], r[16], st;
	struct seg rd[] = { { h, 16 }, { r, 16 } }, wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	range(r, 1, 1, 0);
	build(rd, 2, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.type == VIRTIO_BLK_T_WRITE_ZEROES);
	CHECK(parsed.range_sector == 1);
	CHECK(parsed.range_sectors == 1);

	range(r, 2, 3, 1); /* VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP */
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.range_sector == 2);
	CHECK(parsed.range_sectors == 3);
}

TEST(blk_req_discard_bad_ranges)
{
	uint8_t h[16], r[32], st;
	struct seg wr[] = { { &st, 1 } };

	for (int t = 0; t < 2; t++) {
		uint32_t type = t ? VIRTIO_BLK_T_WRITE_ZEROES : VIRTIO_BLK_T_DISCARD;
		hdr(h, type, 0);

		/* Payload sizes other than one 16-byte range. */
		size_t sizes[] = { 0, 8, 15, 17, 32 };
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			struct seg rd[] = { { h, 16 }, { r, sizes[i] } };
			range(r, 0, 1, 0);
			range(r + 16, 0, 1, 0);
			build(rd, sizes[i] ? 2 : 1, wr, 1);
			CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
			CHECK(parsed.status == &st);
		}

		struct seg rd[] = { { h, 16 }, { r, 16 } };
		build(rd, 2, wr, 1);
		range(r, 0, 0, 0); /* zero sectors */
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		range(r, CAP / 512 - 1, 2, 0); /* one past the end */
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		range(r, CAP / 512, 1, 0);
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		range(r, 1ULL << 55, 1, 0); /* sector * 512 overflows */
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		range(r, ~0ULL / 512, 0xffffffffu, 0); /* start + length overflows */
		CHECK(parse(~0ULL) == VIRTIO_BLK_S_IOERR);
		range(r, 0, 0xffffffffu, 0); /* in range only for a huge disk */
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		CHECK(parse(~0ULL & ~511ULL) == VIRTIO_BLK_S_OK);
	}
}

TEST(blk_req_discard_flags)
{
	uint8_t h[16], r[16], st;
	struct seg rd[] = { { h, 16 }, { r, 16 } }, wr[] = { { &st, 1 } };

	build(rd, 2, wr, 1);
	hdr(h, VIRTIO_BLK_T_DISCARD, 0);
	range(r, 0, 1, 1); /* unmap is a write-zeroes flag only */
	CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);
	CHECK(parsed.status == &st);
	range(r, 0, 1, 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);
	range(r, 0, 1, 0x80000000u);
	CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);

	hdr(h, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	range(r, 0, 1, 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);
	range(r, 0, 1, 3);
	CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);
	range(r, 0, 1, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
}

TEST(blk_req_unknown_type)
{
	uint8_t h[16], buf[512], st;
	struct seg rd[] = { { h, 16 }, { buf, sizeof(buf) } }, wr[] = { { &st, 1 } };
	uint32_t types[] = { 2, 3, 5, 7, 9, 10, 12, 14, 0x80000000u, 0xffffffffu };

	build(rd, 2, wr, 1);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		hdr(h, types[i], 0);
		CHECK(parse(CAP) == VIRTIO_BLK_S_UNSUPP);
		CHECK(parsed.type == types[i]);
		CHECK(parsed.status == &st); /* the device still writes UNSUPP back */
	}
}

TEST(blk_req_short_header)
{
	uint8_t h[16], st;
	struct seg wr[] = { { &st, 1 } };

	hdr(h, VIRTIO_BLK_T_FLUSH, 0);
	for (size_t n = 0; n < 16; n++) {
		struct seg rd[] = { { h, n } };
		build(rd, n ? 1 : 0, wr, 1);
		CHECK(parse(CAP) == -EBADMSG);
	}
	/* 15 bytes spread over two segments is still too short. */
	struct seg rd2[] = { { h, 7 }, { h + 7, 8 } };
	build(rd2, 2, wr, 1);
	CHECK(parse(CAP) == -EBADMSG);
	/* The header must be readable: writable bytes do not count. */
	uint8_t w[17];
	struct seg wr2[] = { { w, sizeof(w) } };
	build(NULL, 0, wr2, 1);
	CHECK(parse(CAP) == -EBADMSG);
}

TEST(blk_req_no_writable_byte)
{
	uint8_t h[16], data[512];
	struct seg rd[] = { { h, 16 }, { data, sizeof(data) } };
	uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, 99 };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		hdr(h, types[i], 0);
		build(rd, 2, NULL, 0);
		CHECK(parse(CAP) == -EBADMSG);
	}
}

TEST(blk_req_zero_length_writable_segments)
{
	/* Writable segments that are all empty leave no place for the status. */
	uint8_t h[16], buf[8];
	struct seg rd[] = { { h, 16 } }, wr[] = { { buf, 0 }, { buf + 1, 0 }, { buf + 2, 0 } };

	hdr(h, VIRTIO_BLK_T_IN, 0);
	for (unsigned int n = 1; n <= 3; n++) {
		build(rd, 1, wr, n);
		CHECK(parse(CAP) == -EBADMSG);
	}
	/* A lone empty writable segment after a non-empty one: the status goes in the latter. */
	struct seg wr2[] = { { buf, 0 }, { buf + 4, 1 }, { buf + 5, 0 } };
	build(rd, 1, wr2, 3);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.status == buf + 4);
	CHECK(parsed.ndata == 0);
}

TEST(blk_req_data_not_sector_multiple)
{
	uint8_t h[16], data[1024], st;
	size_t lens[] = { 1, 511, 513, 1000, 1023 };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct seg rd[] = { { h, 16 }, { data, lens[i] } }, wr[] = { { &st, 1 } };
		hdr(h, VIRTIO_BLK_T_OUT, 0);
		build(rd, 2, wr, 1);
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		CHECK(parsed.status == &st);

		struct seg rd1[] = { { h, 16 } }, wr1[] = { { data, lens[i] }, { &st, 1 } };
		hdr(h, VIRTIO_BLK_T_IN, 0);
		build(rd1, 1, wr1, 2);
		CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
		CHECK(parsed.status == &st);
	}
	/* A sector split over two segments is fine: only the total counts. */
	struct seg rd[] = { { h, 16 }, { data, 100 }, { data + 100, 412 } }, wr[] = { { &st, 1 } };
	hdr(h, VIRTIO_BLK_T_OUT, 0);
	build(rd, 3, wr, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == 2);
}

TEST(blk_req_sector_range)
{
	uint8_t h[16], data[1024], st;
	struct seg rd[] = { { h, 16 } }, wr[] = { { data, sizeof(data) }, { &st, 1 } };

	build(rd, 1, wr, 2);
	hdr(h, VIRTIO_BLK_T_IN, CAP / 512 - 2); /* the last two sectors */
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	hdr(h, VIRTIO_BLK_T_IN, CAP / 512 - 1); /* one sector past the end */
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	CHECK(parsed.status == &st);
	hdr(h, VIRTIO_BLK_T_IN, CAP / 512);
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	hdr(h, VIRTIO_BLK_T_IN, 0);
	CHECK(parse(0) == VIRTIO_BLK_S_IOERR); /* an empty disk */
	CHECK(parse(1023) == VIRTIO_BLK_S_IOERR);
	CHECK(parse(1024) == VIRTIO_BLK_S_OK);

	/* sector * 512 overflows 64 bits. */
	hdr(h, VIRTIO_BLK_T_IN, 1ULL << 55);
	CHECK(parse(~0ULL) == VIRTIO_BLK_S_IOERR);
	hdr(h, VIRTIO_BLK_T_IN, ~0ULL);
	CHECK(parse(~0ULL) == VIRTIO_BLK_S_IOERR);
	/* sector * 512 fits, + length overflows. */
	hdr(h, VIRTIO_BLK_T_IN, ~0ULL / 512);
	CHECK(parse(~0ULL) == VIRTIO_BLK_S_IOERR);
	/* The same sector works with no data on a disk that large. */
	struct seg wr0[] = { { &st, 1 } };
	build(rd, 1, wr0, 1);
	CHECK(parse(~0ULL) == VIRTIO_BLK_S_OK);

	/* Writes are checked the same way. */
	struct seg rdo[] = { { h, 16 }, { data, sizeof(data) } };
	build(rdo, 2, wr0, 1);
	hdr(h, VIRTIO_BLK_T_OUT, CAP / 512 - 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	hdr(h, VIRTIO_BLK_T_OUT, ~0ULL / 512);
	CHECK(parse(~0ULL) == VIRTIO_BLK_S_IOERR);
	hdr(h, VIRTIO_BLK_T_OUT, CAP / 512 - 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
}

TEST(blk_req_segment_limit)
{
	static uint8_t data[VIRTIO_BLK_SEG_MAX + 1][512];
	static struct seg wr[VIRTIO_BLK_SEG_MAX + 2], rd[VIRTIO_BLK_SEG_MAX + 2];
	uint8_t h[16], st;

	for (int i = 0; i <= VIRTIO_BLK_SEG_MAX; i++)
		wr[i] = rd[i + 1] = (struct seg){ data[i], 512 };
	rd[0] = (struct seg){ h, 16 };

	/* Exactly seg_max data segments: accepted. */
	hdr(h, VIRTIO_BLK_T_IN, 0);
	wr[VIRTIO_BLK_SEG_MAX] = (struct seg){ &st, 1 };
	build(rd, 1, wr, VIRTIO_BLK_SEG_MAX + 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == VIRTIO_BLK_SEG_MAX);
	CHECK(parsed.data_len == VIRTIO_BLK_SEG_MAX * 512ULL);

	/* One more: IOERR, not an overflow of p->data. */
	wr[VIRTIO_BLK_SEG_MAX] = (struct seg){ data[VIRTIO_BLK_SEG_MAX], 512 };
	wr[VIRTIO_BLK_SEG_MAX + 1] = (struct seg){ &st, 1 };
	build(rd, 1, wr, VIRTIO_BLK_SEG_MAX + 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	CHECK(parsed.ndata <= VIRTIO_BLK_SEG_MAX);
	CHECK(parsed.status == &st);

	/* The same for writes (the header segment does not count). */
	struct seg wst[] = { { &st, 1 } };
	hdr(h, VIRTIO_BLK_T_OUT, 0);
	build(rd, VIRTIO_BLK_SEG_MAX + 1, wst, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == VIRTIO_BLK_SEG_MAX);
	build(rd, VIRTIO_BLK_SEG_MAX + 2, wst, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	CHECK(parsed.ndata <= VIRTIO_BLK_SEG_MAX);

	/* A segment holding both header and data counts as one data segment. */
	static uint8_t first[16 + 512];
	hdr(first, VIRTIO_BLK_T_OUT, 0);
	rd[0] = (struct seg){ first, sizeof(first) };
	build(rd, VIRTIO_BLK_SEG_MAX, wst, 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == VIRTIO_BLK_SEG_MAX);
	CHECK(iov_is(0, first + 16, 512));
}

TEST(blk_req_get_id_segment_limit)
{
	static uint8_t bytes[VIRTIO_BLK_SEG_MAX + 2];
	static struct seg wr[VIRTIO_BLK_SEG_MAX + 2];
	uint8_t h[16];
	struct seg rd[] = { { h, 16 } };

	hdr(h, VIRTIO_BLK_T_GET_ID, 0);
	for (int i = 0; i < VIRTIO_BLK_SEG_MAX + 2; i++)
		wr[i] = (struct seg){ &bytes[i], 1 };
	build(rd, 1, wr, VIRTIO_BLK_SEG_MAX + 1);
	CHECK(parse(CAP) == VIRTIO_BLK_S_OK);
	CHECK(parsed.ndata == VIRTIO_BLK_SEG_MAX);
	build(rd, 1, wr, VIRTIO_BLK_SEG_MAX + 2);
	CHECK(parse(CAP) == VIRTIO_BLK_S_IOERR);
	CHECK(parsed.status == &bytes[VIRTIO_BLK_SEG_MAX + 1]);
}
