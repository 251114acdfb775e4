/*
 * Tests for the split virtqueue device side: a small in-test driver builds rings in a
 * memfd-backed guest_mem; cases cover valid chains (direct, indirect), used ring and
 * interrupt decisions, every malformed-ring rule, ring validation and the iov copies.
 */
#include <errno.h>
#include <string.h>

#include "virtio/queue.h"
#include "virtio/virtio.h"
#include "unit.h"

#define MEM_SIZE (16ULL << 20)
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define TABLE_GPA 0x8000 /* indirect tables */
#define BUF_GPA(i) (0x100000ULL + (uint64_t)(i)*0x1000)

struct drv {
	struct guest_mem m;
	struct virtq q;
	struct virtq_chain c;
	uint16_t avail_idx;
};

static uint8_t *host(struct drv *d, uint64_t gpa)
{
	return d->m.host + gpa;
}

static void wr16(struct drv *d, uint64_t gpa, uint16_t v)
{
	memcpy(host(d, gpa), &v, 2);
}

static uint16_t rd16(struct drv *d, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(d, gpa), 2);
	return v;
}

static uint32_t rd32(struct drv *d, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, host(d, gpa), 4);
	return v;
}

/* A live queue of the given size at DESC_GPA/AVAIL_GPA/USED_GPA. */
static bool drv_init(struct drv *d, uint16_t size, bool event_idx, bool indirect)
{
	memset(d, 0, sizeof(*d));
	if (guest_mem_create(&d->m, MEM_SIZE))
		return false;
	d->q.size = size;
	d->q.desc_gpa = DESC_GPA;
	d->q.avail_gpa = AVAIL_GPA;
	d->q.used_gpa = USED_GPA;
	d->q.event_idx = event_idx;
	d->q.indirect = indirect;
	if (virtq_validate(&d->q, &d->m))
		return false;
	d->q.ready = true;
	return true;
}

static void drv_fini(struct drv *d)
{
	guest_mem_destroy(&d->m);
}

static void put_desc(struct drv *d, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = host(d, table + 16ULL * i);

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* Makes head available: ring entry first, then the index. */
static void drv_publish(struct drv *d, uint16_t head)
{
	wr16(d, AVAIL_GPA + 4 + 2 * (d->avail_idx % d->q.size), head);
	d->avail_idx++;
	wr16(d, AVAIL_GPA + 2, d->avail_idx);
}

/*
 * Writes nr readable then nw writable descriptors at table[first..], each linked to
 * the next slot, with len-byte buffers at BUF_GPA(first + k). Returns first.
 */
static uint16_t drv_chain(struct drv *d, uint64_t table, unsigned int first, unsigned int nr,
			  unsigned int nw, uint32_t len)
{
	unsigned int n = nr + nw;

	for (unsigned int k = 0; k < n; k++) {
		uint16_t flags =
			(k >= nr ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);

		put_desc(d, table, first + k, BUF_GPA(first + k), len, flags,
			 (uint16_t)(first + k + 1));
	}
	return (uint16_t)first;
}

/* Publishes a chain whose descriptors the test already wrote and expects a malformed pop. */
static bool pop_malformed(struct drv *d, uint16_t head)
{
	drv_publish(d, head);
	return virtq_pop(&d->q, &d->m, &d->c) == -EBADMSG && d->q.broken;
}

/* ---- valid chains ---- */

TEST(virtq_pop_empty)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	CHECK(d.q.last_avail == 0);
	CHECK(!d.q.broken);
	drv_fini(&d);
}

TEST(virtq_pop_single)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 3, 1, 0, 100));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.head == 3);
	CHECK(d.c.nread == 1 && d.c.nwrite == 0);
	CHECK(d.c.read_len == 100 && d.c.write_len == 0);
	CHECK(d.c.iov[0].iov_base == host(&d, BUF_GPA(3)));
	CHECK(d.c.iov[0].iov_len == 100);
	CHECK(d.q.last_avail == 1);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	drv_fini(&d);
}

TEST(virtq_pop_multi_read_then_write)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 1, 3, 2, 512));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 6, 0, 2, 16));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.head == 1);
	CHECK(d.c.nread == 3 && d.c.nwrite == 2);
	CHECK(d.c.read_len == 3 * 512 && d.c.write_len == 2 * 512);
	for (unsigned int k = 0; k < 5; k++) {
		CHECK(d.c.iov[k].iov_base == host(&d, BUF_GPA(1 + k)));
		CHECK(d.c.iov[k].iov_len == 512);
	}
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.head == 6);
	CHECK(d.c.nread == 0 && d.c.nwrite == 2 && d.c.write_len == 32);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	CHECK(d.q.last_avail == 2);
	drv_fini(&d);
}

/* Descriptors need not be in table order; the chain follows next. */
TEST(virtq_pop_scattered_next)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	put_desc(&d, DESC_GPA, 2, BUF_GPA(0), 10, VIRTQ_DESC_F_NEXT, 0);
	put_desc(&d, DESC_GPA, 0, BUF_GPA(1), 20, VIRTQ_DESC_F_NEXT, 3);
	put_desc(&d, DESC_GPA, 3, BUF_GPA(2), 30, VIRTQ_DESC_F_WRITE, 1);
	drv_publish(&d, 2);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 2 && d.c.nwrite == 1);
	CHECK(d.c.read_len == 30 && d.c.write_len == 30);
	CHECK(d.c.iov[2].iov_base == host(&d, BUF_GPA(2)));
	drv_fini(&d);
}

/* A chain using every descriptor of the table is the longest allowed. */
TEST(virtq_pop_chain_of_queue_size)
{
	struct drv d;

	REQUIRE(drv_init(&d, VIRTQ_MAX_SIZE, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 0, 100, VIRTQ_MAX_SIZE - 100, 8));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 100 && d.c.nwrite == VIRTQ_MAX_SIZE - 100);
	CHECK(d.c.read_len + d.c.write_len == 8 * VIRTQ_MAX_SIZE);
	drv_fini(&d);
}

/* Zero-length buffers are accepted and produce no segment (their address is never used). */
TEST(virtq_pop_zero_length_skipped)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, 0xfffffffffffff000ULL, 0, VIRTQ_DESC_F_NEXT, 2);
	put_desc(&d, DESC_GPA, 2, BUF_GPA(2), 4, VIRTQ_DESC_F_WRITE, 0);
	drv_publish(&d, 0);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 1 && d.c.nwrite == 1);
	CHECK(d.c.iov[1].iov_base == host(&d, BUF_GPA(2)));
	drv_fini(&d);
}

TEST(virtq_pop_avail_index_wraps)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	d.q.last_avail = 0xfffe;
	d.avail_idx = 0xfffe;
	for (unsigned int k = 0; k < 4; k++)
		drv_publish(&d, drv_chain(&d, DESC_GPA, k, 1, 0, 10 + k));
	CHECK(rd16(&d, AVAIL_GPA + 2) == 2);
	for (unsigned int k = 0; k < 4; k++) {
		REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
		CHECK(d.c.head == k);
		CHECK(d.c.read_len == 10 + k);
	}
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	CHECK(d.q.last_avail == 2);
	drv_fini(&d);
}

/* Exactly size entries outstanding is the most a driver can have. */
TEST(virtq_pop_full_ring)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	for (unsigned int k = 0; k < 8; k++)
		drv_publish(&d, drv_chain(&d, DESC_GPA, k, 0, 1, 64));
	for (unsigned int k = 0; k < 8; k++)
		CHECK(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	CHECK(!d.q.broken);
	drv_fini(&d);
}

TEST(virtq_pop_not_ready)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 0, 1, 0, 8));
	d.q.ready = false;
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 0);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == -EINVAL);
	CHECK(!virtq_should_signal(&d.q, &d.m));
	drv_fini(&d);
}

/* ---- indirect ---- */

TEST(virtq_pop_indirect)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, true));
	drv_chain(&d, TABLE_GPA, 0, 2, 3, 256);
	put_desc(&d, DESC_GPA, 1, TABLE_GPA, 5 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 1);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.head == 1);
	CHECK(d.c.nread == 2 && d.c.nwrite == 3);
	CHECK(d.c.read_len == 512 && d.c.write_len == 768);
	for (unsigned int k = 0; k < 5; k++)
		CHECK(d.c.iov[k].iov_base == host(&d, BUF_GPA(k)));
	drv_fini(&d);
}

/* Direct readable buffers, then a table with the writable ones; WRITE on the table is ignored. */
TEST(virtq_pop_indirect_after_direct)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, true));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(10), 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	drv_chain(&d, TABLE_GPA, 0, 1, 1, 64);
	drv_publish(&d, 0);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 2 && d.c.nwrite == 1);
	CHECK(d.c.read_len == 80 && d.c.write_len == 64);
	drv_fini(&d);
}

/* An indirect chain may be longer than a small queue (Linux builds them); the table bounds it. */
TEST(virtq_pop_indirect_longer_than_queue)
{
	struct drv d;

	REQUIRE(drv_init(&d, 2, false, true));
	drv_chain(&d, TABLE_GPA, 0, 1, VIRTQ_MAX_SIZE - 1, 4);
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 16 * VIRTQ_MAX_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 1 && d.c.nwrite == VIRTQ_MAX_SIZE - 1);
	drv_fini(&d);
}

/* Indirect tables carry no alignment requirement. */
TEST(virtq_pop_indirect_unaligned_table)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, true));
	drv_chain(&d, TABLE_GPA + 3, 0, 1, 1, 32);
	put_desc(&d, DESC_GPA, 0, TABLE_GPA + 3, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.nread == 1 && d.c.nwrite == 1);
	drv_fini(&d);
}

/* ---- used ring and interrupts ---- */

TEST(virtq_push_updates_used)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	CHECK(virtq_push(&d.q, &d.m, 2, 1234) == 0);
	CHECK(rd32(&d, USED_GPA + 4) == 2);
	CHECK(rd32(&d, USED_GPA + 8) == 1234);
	CHECK(rd16(&d, USED_GPA + 2) == 1);
	CHECK(virtq_push(&d.q, &d.m, 3, 7) == 0);
	CHECK(rd32(&d, USED_GPA + 12) == 3);
	CHECK(rd32(&d, USED_GPA + 16) == 7);
	CHECK(rd16(&d, USED_GPA + 2) == 2);
	CHECK(virtq_push(&d.q, &d.m, 4, 0) == -EINVAL);
	CHECK(rd16(&d, USED_GPA + 2) == 2);
	CHECK(d.q.used_idx == 2);
	drv_fini(&d);
}

TEST(virtq_push_used_index_wraps)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	d.q.used_idx = 0xffff;
	CHECK(virtq_push(&d.q, &d.m, 1, 9) == 0);
	CHECK(rd32(&d, USED_GPA + 4 + 8 * 3) == 1); /* 0xffff % 4 */
	CHECK(rd16(&d, USED_GPA + 2) == 0);
	CHECK(virtq_push(&d.q, &d.m, 2, 9) == 0);
	CHECK(rd32(&d, USED_GPA + 4) == 2);
	CHECK(rd16(&d, USED_GPA + 2) == 1);
	drv_fini(&d);
}

TEST(virtq_signal_no_interrupt_flag)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(virtq_should_signal(&d.q, &d.m));
	wr16(&d, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	CHECK(virtq_push(&d.q, &d.m, 1, 0) == 0);
	CHECK(!virtq_should_signal(&d.q, &d.m));
	wr16(&d, AVAIL_GPA, 0);
	CHECK(virtq_should_signal(&d.q, &d.m));
	drv_fini(&d);
}

/* used_event lives after the avail ring entries. */
static void set_used_event(struct drv *d, uint16_t v)
{
	wr16(d, AVAIL_GPA + 4 + 2 * d->q.size, v);
}

TEST(virtq_signal_event_idx)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, true, false));
	/* NO_INTERRUPT means nothing with EVENT_IDX. */
	wr16(&d, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	set_used_event(&d, 5);
	/* The first decision after reset has no reference point: signal. */
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(virtq_should_signal(&d.q, &d.m));
	CHECK(d.q.signalled_valid && d.q.signalled_used == 1);
	/* Entries 1..4 do not reach used_event 5. */
	for (unsigned int k = 1; k < 5; k++) {
		CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
		CHECK(!virtq_should_signal(&d.q, &d.m));
	}
	/* Entry 5 is the one the driver asked about. */
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(virtq_should_signal(&d.q, &d.m));
	/* Already past it: no more until the driver moves used_event. */
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(!virtq_should_signal(&d.q, &d.m));
	/* A batch of pushes that steps over used_event signals once. */
	set_used_event(&d, 8);
	for (unsigned int k = 0; k < 4; k++)
		CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(d.q.used_idx == 11);
	CHECK(virtq_should_signal(&d.q, &d.m));
	CHECK(!virtq_should_signal(&d.q, &d.m));
	drv_fini(&d);
}

TEST(virtq_signal_event_idx_wraps)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, true, false));
	d.q.used_idx = 0xfffd;
	d.q.signalled_used = 0xfffd;
	d.q.signalled_valid = true;
	set_used_event(&d, 0xffff);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* entry 0xfffd */
	CHECK(!virtq_should_signal(&d.q, &d.m));
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* 0xfffe */
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* 0xffff: the event */
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* 0x0000 */
	CHECK(d.q.used_idx == 1);
	CHECK(virtq_should_signal(&d.q, &d.m));
	set_used_event(&d, 1);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* entry 1 */
	CHECK(virtq_should_signal(&d.q, &d.m));
	drv_fini(&d);
}

/*
 * A driver that leaves used_event stale for more than 65536 completions, then asks for
 * the next one, still gets its interrupt.
 */
TEST(virtq_signal_event_idx_after_long_silence)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, true, false));
	set_used_event(&d, 0);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(virtq_should_signal(&d.q, &d.m)); /* first one */
	set_used_event(&d, 0);			/* stale from now on */
	unsigned int signals = 0;
	for (unsigned int k = 0; k < 65536 + 100; k++) {
		CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
		signals += virtq_should_signal(&d.q, &d.m);
	}
	/* Entry 0 came round once. */
	CHECK(signals == 1);
	set_used_event(&d, d.q.used_idx);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	CHECK(virtq_should_signal(&d.q, &d.m));
	drv_fini(&d);
}

TEST(virtq_set_avail_event)
{
	struct drv d;
	uint64_t avail_event = USED_GPA + 4 + 8 * 8;

	REQUIRE(drv_init(&d, 8, true, false));
	wr16(&d, avail_event, 0xabcd);
	drv_publish(&d, drv_chain(&d, DESC_GPA, 0, 1, 0, 8));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 1, 1, 0, 8));
	/* Popping alone does not publish avail_event. */
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(rd16(&d, avail_event) == 0xabcd);
	virtq_set_avail_event(&d.q, &d.m);
	CHECK(rd16(&d, avail_event) == 1);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	virtq_set_avail_event(&d.q, &d.m);
	CHECK(rd16(&d, avail_event) == 2);
	/* Without EVENT_IDX the field is left alone. */
	d.q.event_idx = false;
	wr16(&d, avail_event, 0x1111);
	virtq_set_avail_event(&d.q, &d.m);
	CHECK(rd16(&d, avail_event) == 0x1111);
	drv_fini(&d);
}

/* ---- malformed rings ---- */

TEST(virtq_bad_loop)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, BUF_GPA(1), 8, VIRTQ_DESC_F_NEXT, 0);
	CHECK(pop_malformed(&d, 0));
	CHECK(d.q.last_avail == 0);
	drv_fini(&d);
}

TEST(virtq_bad_self_loop)
{
	struct drv d;

	REQUIRE(drv_init(&d, 1, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

/* Every descriptor in one cycle: the walk gives up after size visits. */
TEST(virtq_bad_chain_longer_than_size)
{
	struct drv d;

	REQUIRE(drv_init(&d, 4, false, false));
	for (unsigned int k = 0; k < 4; k++)
		put_desc(&d, DESC_GPA, k, BUF_GPA(k), 8, VIRTQ_DESC_F_NEXT,
			 (uint16_t)((k + 1) % 4));
	CHECK(pop_malformed(&d, 2));
	drv_fini(&d);
}

/* Zero-length buffers add no segment, so only the visit count can stop these loops. */
TEST(virtq_bad_loop_of_empty_buffers)
{
	struct drv d;

	REQUIRE(drv_init(&d, 2, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 0, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, BUF_GPA(1), 0, VIRTQ_DESC_F_NEXT, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
	REQUIRE(drv_init(&d, 2, false, true));
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA, 0, BUF_GPA(0), 0, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, TABLE_GPA, 1, BUF_GPA(1), 0, VIRTQ_DESC_F_NEXT, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_next_out_of_range)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 8);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_len_huge)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 0xffffffff, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_addr_past_ram)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, MEM_SIZE - 4, 8, VIRTQ_DESC_F_WRITE, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, MEM_SIZE, 1, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
	/* The last byte of RAM is fine. */
	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, MEM_SIZE - 1, 1, 0, 0);
	drv_publish(&d, 0);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 1);
	drv_fini(&d);
}

TEST(virtq_bad_addr_overflow)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, 0xffffffffffffffffULL, 2, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_readable_after_writable)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, BUF_GPA(1), 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	put_desc(&d, DESC_GPA, 2, BUF_GPA(2), 8, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

/* The order rule also spans the switch from the main table into an indirect one. */
TEST(virtq_bad_readable_after_writable_indirect)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA, 0, BUF_GPA(1), 8, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_indirect_nested)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA + 0x100, 0, BUF_GPA(1), 8, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_indirect_not_negotiated)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_chain(&d, TABLE_GPA, 0, 1, 1, 8);
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_indirect_with_next)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	drv_chain(&d, TABLE_GPA, 0, 1, 0, 8);
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, BUF_GPA(5), 8, VIRTQ_DESC_F_WRITE, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_indirect_len)
{
	static const uint32_t lens[] = { 0, 8, 17, 40, 16 * (VIRTQ_MAX_SIZE + 1), 0xfffffff0 };
	struct drv d;

	for (unsigned int k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		REQUIRE(drv_init(&d, 8, false, true));
		drv_chain(&d, TABLE_GPA, 0, 1, 0, 8);
		put_desc(&d, DESC_GPA, 0, TABLE_GPA, lens[k], VIRTQ_DESC_F_INDIRECT, 0);
		CHECK(pop_malformed(&d, 0));
		drv_fini(&d);
	}
}

TEST(virtq_bad_indirect_table_outside_ram)
{
	static const uint64_t addrs[] = { MEM_SIZE - 16, MEM_SIZE, 0xfffffffffffffff0ULL };
	struct drv d;

	for (unsigned int k = 0; k < sizeof(addrs) / sizeof(addrs[0]); k++) {
		REQUIRE(drv_init(&d, 8, false, true));
		put_desc(&d, DESC_GPA, 0, addrs[k], 32, VIRTQ_DESC_F_INDIRECT, 0);
		CHECK(pop_malformed(&d, 0));
		drv_fini(&d);
	}
}

TEST(virtq_bad_indirect_next_out_of_table)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 2);
	put_desc(&d, TABLE_GPA, 2, BUF_GPA(1), 8, 0, 0);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_indirect_loop)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	put_desc(&d, DESC_GPA, 0, TABLE_GPA, 48, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&d, TABLE_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, TABLE_GPA, 1, BUF_GPA(1), 8, VIRTQ_DESC_F_NEXT, 2);
	put_desc(&d, TABLE_GPA, 2, BUF_GPA(2), 8, VIRTQ_DESC_F_NEXT, 1);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

/* Direct buffers plus a full table exceed the segment array: malformed, not overflowed. */
TEST(virtq_bad_too_many_segments)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, true));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(500), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&d, DESC_GPA, 1, TABLE_GPA, 16 * VIRTQ_MAX_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
	drv_chain(&d, TABLE_GPA, 0, VIRTQ_MAX_SIZE, 0, 8);
	CHECK(pop_malformed(&d, 0));
	drv_fini(&d);
}

TEST(virtq_bad_avail_idx_far_ahead)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_chain(&d, DESC_GPA, 0, 1, 0, 8);
	wr16(&d, AVAIL_GPA + 2, 9);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG);
	CHECK(d.q.broken);
	drv_fini(&d);
	/* Behind last_avail (the driver moved idx backwards) is the same thing. */
	REQUIRE(drv_init(&d, 8, false, false));
	d.q.last_avail = 5;
	wr16(&d, AVAIL_GPA + 2, 4);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG);
	drv_fini(&d);
}

TEST(virtq_bad_head_out_of_range)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	CHECK(pop_malformed(&d, 8));
	drv_fini(&d);
	REQUIRE(drv_init(&d, 8, false, false));
	CHECK(pop_malformed(&d, 0xffff));
	drv_fini(&d);
}

TEST(virtq_broken_until_reset)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	put_desc(&d, DESC_GPA, 0, BUF_GPA(0), 8, VIRTQ_DESC_F_NEXT, 9);
	REQUIRE(pop_malformed(&d, 0));
	/* Even a good chain behind it is not popped. */
	drv_publish(&d, drv_chain(&d, DESC_GPA, 1, 1, 0, 8));
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG);
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG);
	CHECK(d.q.last_avail == 0);
	virtq_reset(&d.q);
	CHECK(!d.q.broken && !d.q.ready && d.q.size == 0);
	CHECK(d.q.last_avail == 0 && d.q.used_idx == 0 && !d.q.signalled_valid);
	CHECK(d.q.desc_gpa == 0 && d.q.avail_gpa == 0 && d.q.used_gpa == 0);
	CHECK(!d.q.event_idx && !d.q.indirect);
	/* The driver sets the queue up again on fresh rings. */
	memset(host(&d, 0), 0, 0x10000);
	d.avail_idx = 0;
	d.q.size = 8;
	d.q.desc_gpa = DESC_GPA;
	d.q.avail_gpa = AVAIL_GPA;
	d.q.used_gpa = USED_GPA;
	REQUIRE(virtq_validate(&d.q, &d.m) == 0);
	d.q.ready = true;
	drv_publish(&d, drv_chain(&d, DESC_GPA, 2, 1, 1, 8));
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(d.c.head == 2);
	drv_fini(&d);
}

/* ---- validation ---- */

static int validate(struct guest_mem *m, uint16_t size, uint64_t desc, uint64_t avail,
		    uint64_t used)
{
	struct virtq q = { .size = size, .desc_gpa = desc, .avail_gpa = avail, .used_gpa = used };

	return virtq_validate(&q, m);
}

TEST(virtq_validate_sizes)
{
	struct guest_mem m;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	for (unsigned int s = 1; s <= VIRTQ_MAX_SIZE; s <<= 1)
		CHECK(validate(&m, (uint16_t)s, DESC_GPA, AVAIL_GPA, USED_GPA) == 0);
	CHECK(validate(&m, 0, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 3, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 6, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 255, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 2 * VIRTQ_MAX_SIZE, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 0x8000, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 0xffff, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	guest_mem_destroy(&m);
}

TEST(virtq_validate_alignment)
{
	struct guest_mem m;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	CHECK(validate(&m, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA + 1, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4) == 0);
	guest_mem_destroy(&m);
}

TEST(virtq_validate_rings_in_ram)
{
	struct guest_mem m;
	const uint64_t s = 256;

	REQUIRE(guest_mem_create(&m, MEM_SIZE) == 0);
	/* Each ring may reach the end of RAM, not one aligned step further. */
	CHECK(validate(&m, 256, MEM_SIZE - 16 * s, AVAIL_GPA, USED_GPA) == 0);
	CHECK(validate(&m, 256, MEM_SIZE - 16 * s + 16, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 256, DESC_GPA, MEM_SIZE - (6 + 2 * s), USED_GPA) == 0);
	CHECK(validate(&m, 256, DESC_GPA, MEM_SIZE - (6 + 2 * s) + 2, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 256, DESC_GPA, AVAIL_GPA, MEM_SIZE - 4 - 8 * s - 4) == 0);
	CHECK(validate(&m, 256, DESC_GPA, AVAIL_GPA, MEM_SIZE - 4 - 8 * s) == -EINVAL);
	CHECK(validate(&m, 8, MEM_SIZE, AVAIL_GPA, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA, 0xfffffffffffffffeULL, USED_GPA) == -EINVAL);
	CHECK(validate(&m, 8, DESC_GPA, AVAIL_GPA, 0xfffffffffffffffcULL) == -EINVAL);
	CHECK(validate(&m, 8, 0xfffffffffffffff0ULL, AVAIL_GPA, USED_GPA) == -EINVAL);
	/* Guest RAM must be there at all. */
	struct guest_mem none;
	guest_mem_layout(&none, MEM_SIZE);
	CHECK(validate(&none, 8, DESC_GPA, AVAIL_GPA, USED_GPA) == -EINVAL);
	guest_mem_destroy(&m);
}

/* A queue the transport enabled without validating cannot be popped into a crash. */
TEST(virtq_pop_unvalidated_queue)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	d.q.used_gpa = MEM_SIZE;
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG);
	CHECK(d.q.broken);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == -EINVAL);
	CHECK(!virtq_should_signal(&d.q, &d.m));
	virtq_set_avail_event(&d.q, &d.m);
	drv_fini(&d);
}

/* ---- iov copies ---- */

/* The rings' addresses are checked again whenever the driver moves them. */
TEST(virtq_rings_moved_are_checked_again)
{
	struct drv d;

	REQUIRE(drv_init(&d, 8, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 0, 1, 0, 64));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0);
	/* Moved past the end of RAM: refused, not served from the last check. */
	d.q.avail_gpa = MEM_SIZE - 2;
	CHECK(virtq_pop(&d.q, &d.m, &d.c) == -EBADMSG && d.q.broken);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == -EINVAL);
	/* Moved within RAM after a reset: the new place is the one used. */
	virtq_reset(&d.q);
	d.q = (struct virtq){ .size = 8,
			      .ready = true,
			      .desc_gpa = DESC_GPA,
			      .avail_gpa = 0x4000,
			      .used_gpa = 0x5000 };
	wr16(&d, 0x4000 + 4, 0);
	wr16(&d, 0x4000 + 2, 1);
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(virtq_push(&d.q, &d.m, 0, 64) == 0);
	CHECK(rd16(&d, 0x5000 + 2) == 1 && rd32(&d, 0x5000 + 8) == 64);
	CHECK(rd16(&d, USED_GPA + 2) == 1); /* the old used ring saw the first push only */
	drv_fini(&d);
}

/* With dirty tracking on, every push marks the used ring's page, cached or not. */
TEST(virtq_push_marks_the_used_ring_dirty)
{
	struct drv d;
	uint8_t bits[(MEM_SIZE >> 12) / 8] = { 0 };

	REQUIRE(drv_init(&d, 8, false, false));
	drv_publish(&d, drv_chain(&d, DESC_GPA, 0, 1, 0, 64));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	CHECK(virtq_push(&d.q, &d.m, 0, 0) == 0); /* checked, and kept, untracked */
	REQUIRE(guest_mem_track_dirty(&d.m) == 0);
	drv_publish(&d, drv_chain(&d, DESC_GPA, 1, 1, 0, 64));
	REQUIRE(virtq_pop(&d.q, &d.m, &d.c) == 1);
	guest_mem_take_dirty(&d.m, bits);
	memset(bits, 0, sizeof(bits));
	CHECK(virtq_push(&d.q, &d.m, 1, 0) == 0);
	guest_mem_take_dirty(&d.m, bits);
	CHECK(bits[(USED_GPA >> 12) / 8] & (1u << ((USED_GPA >> 12) % 8)));
	drv_fini(&d);
}

TEST(virtq_iov_copy)
{
	uint8_t a[3], b[5], c[4], out[16];
	struct iovec iov[] = { { a, sizeof(a) }, { b, sizeof(b) }, { NULL, 0 }, { c, sizeof(c) } };
	const uint8_t src[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };

	CHECK(virtq_iov_write(iov, 4, 0, src, 12) == 12);
	CHECK(a[0] == 0 && a[2] == 2 && b[0] == 3 && b[4] == 7 && c[0] == 8 && c[3] == 11);
	memset(out, 0xee, sizeof(out));
	CHECK(virtq_iov_read(iov, 4, 2, out, 5) == 5);
	CHECK(out[0] == 2 && out[4] == 6 && out[5] == 0xee);
	/* Short: the chain ends first. */
	CHECK(virtq_iov_read(iov, 4, 10, out, 16) == 2);
	CHECK(out[0] == 10 && out[1] == 11);
	/* Offsets at or past the end, and huge ones, copy nothing. */
	CHECK(virtq_iov_read(iov, 4, 12, out, 16) == 0);
	CHECK(virtq_iov_read(iov, 4, UINT64_MAX, out, 16) == 0);
	CHECK(virtq_iov_write(iov, 4, UINT64_MAX - 1, src, 12) == 0);
	CHECK(virtq_iov_read(iov, 0, 0, out, 16) == 0);
	CHECK(virtq_iov_read(iov, 4, 0, out, 0) == 0);
	/* Writes at an offset land across segment edges. */
	CHECK(virtq_iov_write(iov, 4, 7, src, 3) == 3);
	CHECK(b[4] == 0 && c[0] == 1 && c[1] == 2);
	CHECK(virtq_iov_read(iov, 4, 0, out, SIZE_MAX) == 12);
}
