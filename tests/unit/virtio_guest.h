/*
 * A small guest driver for the virtio save/restore tests: split rings in a memfd-backed
 * guest_mem that outlives the device (a restored device finds the rings where the saved
 * one left them, as it finds them in a snapshot's memory file), driven through the
 * virtio-mmio registers so every step takes the path a guest's takes.
 */
#ifndef TERN_TESTS_VIRTIO_GUEST_H
#define TERN_TESTS_VIRTIO_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bus/bus.h"
#include "kvm/guest_mem.h"
#include "virtio/mmio.h"
#include "virtio/virtio.h"

#define VG_MEM (32u << 20)
#define VG_QSIZE 64
#define VG_DESC(q) (0x10000ULL + 0x4000ULL * (q))
#define VG_AVAIL(q) (VG_DESC(q) + 0x1000)
#define VG_USED(q) (VG_DESC(q) + 0x2000)
#define VG_DATA 0x100000ULL /* buffers from here on; the tests pick their own places */
#define VG_BASE 0xd0000000ULL
#define VG_GSI 5

/* virtio-mmio register offsets (the transport keeps its own copy private) */
#define VG_DEV_FEAT 0x010
#define VG_DEV_FEAT_SEL 0x014
#define VG_DRV_FEAT 0x020
#define VG_DRV_FEAT_SEL 0x024
#define VG_QUEUE_SEL 0x030
#define VG_QUEUE_NUM 0x038
#define VG_QUEUE_READY 0x044
#define VG_QUEUE_NOTIFY 0x050
#define VG_INT_STATUS 0x060
#define VG_INT_ACK 0x064
#define VG_STATUS 0x070
#define VG_DESC_LO 0x080
#define VG_DESC_HI 0x084
#define VG_DRIVER_LO 0x090
#define VG_DRIVER_HI 0x094
#define VG_DEVICE_LO 0x0a0
#define VG_DEVICE_HI 0x0a4

#define VG_LIVE                                                                         \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | \
	 VIRTIO_STATUS_DRIVER_OK)

struct vg_guest {
	struct guest_mem mem;
	uint16_t avail[VIRTIO_MAX_QUEUES];
	uint16_t next_desc[VIRTIO_MAX_QUEUES];
};

/* One device on virtio-mmio with a recorded interrupt line. */
struct vg_mmio {
	struct bus bus;
	struct virtio_mmio t;
	int level;
	unsigned int irq_calls;
};

struct vg_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static inline void vg_set_irq(void *ctx, unsigned int gsi, int level)
{
	struct vg_mmio *m = ctx;

	m->irq_calls++;
	m->level = level;
}

static inline int vg_attach(struct vg_mmio *m, struct virtio_dev *d)
{
	memset(m, 0, sizeof(*m));
	return virtio_mmio_attach(&m->t, d, &m->bus, VG_BASE, VG_GSI, vg_set_irq, m);
}

static inline uint32_t vg_rd(struct vg_mmio *m, uint64_t off)
{
	uint32_t v = 0;

	virtio_mmio_io(&m->t, off, (uint8_t *)&v, 4, false);
	return v;
}

static inline void vg_wr(struct vg_mmio *m, uint64_t off, uint32_t v)
{
	virtio_mmio_io(&m->t, off, (uint8_t *)&v, 4, true);
}

static inline uint16_t vg_get16(struct vg_guest *g, uint64_t gpa)
{
	uint16_t x = 0;

	guest_mem_read(&g->mem, gpa, &x, 2);
	return x;
}

static inline uint32_t vg_get32(struct vg_guest *g, uint64_t gpa)
{
	uint32_t x = 0;

	guest_mem_read(&g->mem, gpa, &x, 4);
	return x;
}

static inline void vg_put16(struct vg_guest *g, uint64_t gpa, uint16_t x)
{
	guest_mem_write(&g->mem, gpa, &x, 2);
}

/* Negotiates every offered feature and sets up queues [0, nq) of VG_QSIZE; DRIVER_OK. */
static inline bool vg_start(struct vg_mmio *m, struct vg_guest *g, unsigned int nq)
{
	uint64_t f;

	vg_wr(m, VG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vg_wr(m, VG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vg_wr(m, VG_DEV_FEAT_SEL, 0);
	f = vg_rd(m, VG_DEV_FEAT);
	vg_wr(m, VG_DEV_FEAT_SEL, 1);
	f |= (uint64_t)vg_rd(m, VG_DEV_FEAT) << 32;
	vg_wr(m, VG_DRV_FEAT_SEL, 0);
	vg_wr(m, VG_DRV_FEAT, (uint32_t)f);
	vg_wr(m, VG_DRV_FEAT_SEL, 1);
	vg_wr(m, VG_DRV_FEAT, (uint32_t)(f >> 32));
	vg_wr(m, VG_STATUS,
	      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	memset(guest_mem_ptr(&g->mem, VG_DESC(0), 0x4000ULL * nq), 0, 0x4000ULL * nq);
	for (unsigned int q = 0; q < nq; q++) {
		g->avail[q] = g->next_desc[q] = 0;
		vg_wr(m, VG_QUEUE_SEL, q);
		vg_wr(m, VG_QUEUE_NUM, VG_QSIZE);
		vg_wr(m, VG_DESC_LO, (uint32_t)VG_DESC(q));
		vg_wr(m, VG_DESC_HI, 0);
		vg_wr(m, VG_DRIVER_LO, (uint32_t)VG_AVAIL(q));
		vg_wr(m, VG_DRIVER_HI, 0);
		vg_wr(m, VG_DEVICE_LO, (uint32_t)VG_USED(q));
		vg_wr(m, VG_DEVICE_HI, 0);
		vg_wr(m, VG_QUEUE_READY, 1);
		if (vg_rd(m, VG_QUEUE_READY) != 1)
			return false;
	}
	vg_wr(m, VG_STATUS, VG_LIVE);
	return vg_rd(m, VG_STATUS) == VG_LIVE;
}

/* Writes a chain of n segments and makes it available (no kick). Returns its head. */
static inline uint16_t vg_chain(struct vg_guest *g, unsigned int q, const struct vg_seg *s,
				unsigned int n)
{
	uint16_t head;

	if (g->next_desc[q] + n > VG_QSIZE)
		g->next_desc[q] = 0; /* the tests never have that many chains outstanding */
	head = g->next_desc[q];
	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)(head + i), next = (uint16_t)(idx + 1);
		uint16_t flags = (uint16_t)((i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) |
					    (s[i].write ? VIRTQ_DESC_F_WRITE : 0));
		uint8_t d[16];
		memcpy(d, &s[i].gpa, 8);
		memcpy(d + 8, &s[i].len, 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
		guest_mem_write(&g->mem, VG_DESC(q) + 16ULL * idx, d, 16);
	}
	g->next_desc[q] = (uint16_t)(head + n);
	vg_put16(g, VG_AVAIL(q) + 4 + 2ULL * (g->avail[q] % VG_QSIZE), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vg_put16(g, VG_AVAIL(q) + 2, ++g->avail[q]);
	return head;
}

static inline void vg_kick(struct vg_mmio *m, unsigned int q)
{
	vg_wr(m, VG_QUEUE_NOTIFY, q);
}

static inline uint16_t vg_used_idx(struct vg_guest *g, unsigned int q)
{
	return vg_get16(g, VG_USED(q) + 2);
}

/* Used entry i of queue q: the head it returns and the length written. */
static inline uint32_t vg_used_id(struct vg_guest *g, unsigned int q, uint16_t i)
{
	return vg_get32(g, VG_USED(q) + 4 + 8ULL * (i % VG_QSIZE));
}

static inline uint32_t vg_used_len(struct vg_guest *g, unsigned int q, uint16_t i)
{
	return vg_get32(g, VG_USED(q) + 8 + 8ULL * (i % VG_QSIZE));
}

#endif
