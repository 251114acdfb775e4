/*
 * libFuzzer harness for the virtio-blk request parser (src/virtio/blk_req.c): the input
 * describes a descriptor chain as virtq_pop() would return it, with each segment in
 * its own exact-size heap block so that ASan catches any byte read or handed out
 * beyond a segment; the harness then checks every slice blk_parse() returns.
 *
 * Input layout (little-endian):
 *   0      number of segments (0..255, at most VIRTQ_MAX_SIZE)
 *   1      how many of them are device-readable (the rest are writable; clamped)
 *   2..9   disk capacity in bytes (u64)
 *   10     capacity mode: bit 0 set -> capacity as is; clear -> capacity & ~511
 *          (what disk_open produces); bit 1 -> capacity &= 0xffffffff (small disks)
 *   11..   segment lengths, u16 each (masked to 0x3fff), one per segment
 *   then   the bytes of the segments, in chain order (zero-filled when the input ends)
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/blk_req.h"
#include "virtio/queue.h"
#include "fuzz.h"

#define HDR 11u
#define LEN_MASK 0x3fffu

static struct virtq_chain chain;
static struct blk_parsed parsed;

/* Is [p, p+len) inside one segment of iov[0..n)? */
static bool inside(const struct iovec *iov, unsigned int n, const uint8_t *p, size_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;
		if (p >= b && len <= iov[i].iov_len && (size_t)(p - b) <= iov[i].iov_len - len)
			return true;
	}
	return false;
}

static bool in_range(uint64_t sector, uint64_t bytes, uint64_t cap)
{
	uint64_t start, end;

	return !__builtin_mul_overflow(sector, 512, &start) &&
	       !__builtin_add_overflow(start, bytes, &end) && end <= cap;
}

static void check(int r, uint64_t cap)
{
	const struct virtq_chain *c = &chain;
	const struct blk_parsed *p = &parsed;
	const struct iovec *rd = c->iov, *wr = c->iov + c->nread;

	if (r == -EBADMSG) {
		ASSERT(c->read_len < 16 || c->write_len == 0);
		return;
	}
	ASSERT(r == VIRTIO_BLK_S_OK || r == VIRTIO_BLK_S_IOERR || r == VIRTIO_BLK_S_UNSUPP);
	ASSERT(c->read_len >= 16 && c->write_len >= 1);
	/* The status is the last byte of the last non-empty writable segment. */
	ASSERT(inside(wr, c->nwrite, p->status, 1));
	*p->status = (uint8_t)r;
	ASSERT(p->ndata >= 0 && p->ndata <= VIRTIO_BLK_SEG_MAX);

	uint64_t total = 0;
	for (int i = 0; i < p->ndata; i++) {
		const uint8_t *b = p->data[i].iov_base;
		size_t n = p->data[i].iov_len;
		ASSERT(n > 0);
		total += n;
		if (p->type == VIRTIO_BLK_T_OUT) {
			ASSERT(inside(rd, c->nread, b, n));
		} else {
			ASSERT(inside(wr, c->nwrite, b, n));
			ASSERT(p->status < b ||
			       p->status >= b + n); /* data never covers the status */
		}
	}
	ASSERT(total == p->data_len);
	if (r != VIRTIO_BLK_S_OK)
		return;

	switch (p->type) {
	case VIRTIO_BLK_T_IN:
		ASSERT(p->data_len == c->write_len - 1);
		ASSERT(p->data_len % 512 == 0 && in_range(p->sector, p->data_len, cap));
		for (int i = 0; i < p->ndata; i++)
			memset(p->data[i].iov_base, 0xa5, p->data[i].iov_len);
		break;
	case VIRTIO_BLK_T_OUT: {
		ASSERT(p->data_len == c->read_len - 16);
		ASSERT(p->data_len % 512 == 0 && in_range(p->sector, p->data_len, cap));
		/* Read every byte, as the engine will: ASan checks each one. */
		uint8_t sum = 0;
		for (int i = 0; i < p->ndata; i++)
			for (size_t k = 0; k < p->data[i].iov_len; k++)
				sum ^= ((const uint8_t *)p->data[i].iov_base)[k];
		__asm__ volatile("" : : "r"(sum));
		break;
	}
	case VIRTIO_BLK_T_GET_ID:
		ASSERT(p->data_len == c->write_len - 1);
		virtq_iov_write(p->data, (unsigned int)p->ndata, 0, "0123456789abcdefghij", 20);
		break;
	case VIRTIO_BLK_T_FLUSH:
		ASSERT(p->ndata == 0);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		ASSERT(c->read_len == 32);
		ASSERT(p->range_sectors > 0);
		ASSERT(in_range(p->range_sector, (uint64_t)p->range_sectors * 512, cap));
		break;
	default:
		ASSERT(0); /* unknown types are never OK */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	unsigned int n = data[0];
	if (n > VIRTQ_MAX_SIZE)
		n = VIRTQ_MAX_SIZE;
	unsigned int nread = data[1] < n ? data[1] : n;
	uint64_t cap;
	memcpy(&cap, data + 2, 8);
	if (!(data[10] & 1))
		cap &= ~511ULL;
	if (data[10] & 2)
		cap &= 0xffffffffULL;
	if (size < HDR + 2 * (size_t)n)
		return 0;

	const uint8_t *bytes = data + HDR + 2 * n;
	size_t left = size - HDR - 2 * n;
	memset(&chain, 0, sizeof(chain));
	chain.nread = nread;
	chain.nwrite = n - nread;
	for (unsigned int i = 0; i < n; i++) {
		size_t len = (size_t)(data[HDR + 2 * i] | data[HDR + 2 * i + 1] << 8) & LEN_MASK;
		/* Exact size, even for zero: any access to a zero-length segment is a report. */
		uint8_t *seg = malloc(len);
		if (!seg && len)
			__builtin_trap();
		size_t take = len < left ? len : left;
		memcpy(seg, bytes, take);
		memset(seg + take, 0, len - take);
		bytes += take;
		left -= take;
		chain.iov[i] = (struct iovec){ seg, len };
		if (i < nread)
			chain.read_len += len;
		else
			chain.write_len += len;
	}
	int r = blk_parse(&chain, cap, &parsed);
	check(r, cap);
	for (unsigned int i = 0; i < n; i++)
		free(chain.iov[i].iov_base);
	return 0;
}
