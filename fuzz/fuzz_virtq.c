/*
 * libFuzzer harness for the split virtqueue device side (src/virtio/queue.c): the input
 * is a queue set-up plus a guest RAM image; the harness pops, copies, pushes and signals
 * as a device would and traps on any segment outside guest RAM or inconsistent chain.
 *
 * Input layout (little-endian):
 *   0      size selector: 0..8 -> 1 << n, 9 -> 0, 10 -> 512, else the raw byte
 *   1      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 skip virtq_validate
 *   2..7   desc, avail, used ring GPAs (u16 each)
 *   8..11  initial last_avail, used_idx (u16 each)
 *   12     rounds (1..64)
 *   13     number of pokes (0..8), each 4 bytes right after the header: u16 gpa, u16 value;
 *          poke (round % n) is written before each round, as a driver racing the device
 *   14     bytes of each writable chain the "device" fills (x 16)
 *   15     offset of that fill in the writable part
 *   then   the guest RAM image from GPA 0 (the rest of the 64 KiB is zero)
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvm/guest_mem.h"
#include "virtio/queue.h"
#include "fuzz.h"

#define RAM_SIZE (64u << 10)
#define HDR 16u
#define MAX_ROUNDS 64u
#define MAX_POKES 8u

static struct guest_mem mem;
static uint8_t scratch[RAM_SIZE];

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (guest_mem_create(&mem, RAM_SIZE))
		__builtin_trap();
	return 0;
}

static uint16_t pick_size(uint8_t b)
{
	if (b <= 8)
		return (uint16_t)(1u << b);
	if (b == 9)
		return 0;
	if (b == 10)
		return 512;
	return b;
}

/* Every segment must be a range of the guest mapping; the counts and sums must agree. */
static void check_chain(const struct virtq *q, const struct virtq_chain *c)
{
	uint64_t rd = 0, wr = 0;
	uintptr_t lo = (uintptr_t)mem.host, hi = lo + RAM_SIZE;

	ASSERT(c->head < q->size);
	ASSERT(c->nread + c->nwrite <= VIRTQ_MAX_SIZE);
	for (unsigned int i = 0; i < c->nread + c->nwrite; i++) {
		uintptr_t b = (uintptr_t)c->iov[i].iov_base;

		ASSERT(c->iov[i].iov_len > 0);
		ASSERT(b >= lo && b < hi && c->iov[i].iov_len <= hi - b);
		if (i < c->nread)
			rd += c->iov[i].iov_len;
		else
			wr += c->iov[i].iov_len;
	}
	ASSERT(rd == c->read_len && wr == c->write_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_chain c;
	struct virtq q;
	const uint8_t *pokes;
	unsigned int rounds, npokes;
	size_t fill, fill_off;

	if (size < HDR)
		return 0;
	npokes = data[13] % (MAX_POKES + 1);
	if (size < HDR + 4 * npokes)
		return 0;
	pokes = data + HDR;
	rounds = 1 + data[12] % MAX_ROUNDS;
	fill = (size_t)data[14] * 16;
	fill_off = data[15];

	memset(mem.host, 0, RAM_SIZE);
	size_t img = size - HDR - 4 * npokes;
	memcpy(mem.host, data + HDR + 4 * npokes, img < RAM_SIZE ? img : RAM_SIZE);

	memset(&q, 0, sizeof(q));
	q.size = pick_size(data[0]);
	q.event_idx = data[1] & 1;
	q.indirect = data[1] & 2;
	q.desc_gpa = get16(data + 2);
	q.avail_gpa = get16(data + 4);
	q.used_gpa = get16(data + 6);
	q.last_avail = get16(data + 8);
	q.used_idx = get16(data + 10);
	if (virtq_validate(&q, &mem)) {
		if (!(data[1] & 4)) {
			ASSERT(virtq_pop(&q, &mem, &c) == 0); /* not ready */
			return 0;
		}
	}
	q.ready = true;

	for (unsigned int r = 0; r < rounds; r++) {
		if (npokes) {
			const uint8_t *p = pokes + 4 * (r % npokes);
			uint16_t v = get16(p + 2);

			guest_mem_write(&mem, get16(p), &v, 2);
		}
		int ret = virtq_pop(&q, &mem, &c);
		if (ret < 0) {
			ASSERT(ret == -EBADMSG && q.broken);
			ASSERT(virtq_pop(&q, &mem, &c) == -EBADMSG);
			virtq_reset(&q);
			ASSERT(!q.broken && virtq_pop(&q, &mem, &c) == 0);
			break;
		}
		if (ret == 1) {
			check_chain(&q, &c);
			size_t n = virtq_iov_read(c.iov, c.nread, 0, scratch, sizeof(scratch));
			ASSERT(n == (c.read_len < sizeof(scratch) ? c.read_len : sizeof(scratch)));
			n = virtq_iov_read(c.iov, c.nread, c.read_len / 2, scratch, 7);
			ASSERT(n <= 7);
			size_t w = virtq_iov_write(c.iov + c.nread, c.nwrite, fill_off, scratch,
						   fill < sizeof(scratch) ? fill : sizeof(scratch));
			ASSERT(w <= c.write_len && (w == 0 || fill_off + w <= c.write_len));
			ASSERT(virtq_push(&q, &mem, c.head, (uint32_t)(w ? fill_off + w : 0)) == 0);
		}
		(void)virtq_should_signal(&q, &mem);
		virtq_set_avail_event(&q, &mem);
	}
	return 0;
}
