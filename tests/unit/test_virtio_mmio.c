/*
 * Tests for the virtio-mmio transport (src/virtio/mmio.c) over a fake device and a fake
 * interrupt line: identity registers, feature negotiation, queue programming, interrupt
 * status, device configuration bounds, and hostile accesses at every offset.
 */
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/log.h"
#include "virtio/mmio.h"
#include "virtio/virtio.h"
#include "unit.h"

#define BASE 0xd0000000ULL
#define GSI 5
#define NQ 2
#define QMAX 64
#define CFG_SIZE 12
#define RAM (1u << 20)
#define FEATURES ((1ULL << 0) | (1ULL << 5) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << 35))

enum {
	MAGIC = 0x000,
	VERSION = 0x004,
	DEVICE_ID = 0x008,
	VENDOR_ID = 0x00c,
	DEV_FEAT = 0x010,
	DEV_FEAT_SEL = 0x014,
	DRV_FEAT = 0x020,
	DRV_FEAT_SEL = 0x024,
	QUEUE_SEL = 0x030,
	QUEUE_NUM_MAX = 0x034,
	QUEUE_NUM = 0x038,
	QUEUE_READY = 0x044,
	QUEUE_NOTIFY = 0x050,
	INT_STATUS = 0x060,
	INT_ACK = 0x064,
	STATUS = 0x070,
	DESC_LO = 0x080,
	DESC_HI = 0x084,
	DRIVER_LO = 0x090,
	DRIVER_HI = 0x094,
	DEVICE_LO = 0x0a0,
	DEVICE_HI = 0x0a4,
	CONFIG_GEN = 0x0fc,
	CONFIG = 0x100,
};

struct fx {
	struct guest_mem mem;
	struct bus bus;
	struct virtio_mmio t;
	struct virtio_dev dev;
	struct virtio_dev_ops ops;
	uint8_t cfg[CFG_SIZE];
	unsigned int notifies[NQ], resets, activates, irq_calls;
	int level;
	unsigned int last_gsi;
};

static struct fx *fx_of(struct virtio_dev *d)
{
	return d->priv;
}

static void cfg_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, fx_of(d)->cfg + off, len);
}

static void cfg_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	memcpy(fx_of(d)->cfg + off, data, len);
}

static void notify(struct virtio_dev *d, unsigned int q)
{
	fx_of(d)->notifies[q]++;
}

static bool dev_reset(struct virtio_dev *d)
{
	fx_of(d)->resets++;
	return true;
}

static void activate(struct virtio_dev *d)
{
	fx_of(d)->activates++;
}

static void set_irq(void *ctx, unsigned int gsi, int level)
{
	struct fx *f = ctx;

	f->irq_calls++;
	f->level = level;
	f->last_gsi = gsi;
}

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || guest_mem_create(&f->mem, RAM)) {
		free(f);
		return NULL;
	}
	f->ops = (struct virtio_dev_ops){
		.name = "fake",
		.device_id = 42,
		.features = FEATURES,
		.num_queues = NQ,
		.queue_max = QMAX,
		.config_size = CFG_SIZE,
		.config_read = cfg_read,
		.config_write = cfg_write,
		.notify = notify,
		.activate = activate,
		.reset = dev_reset,
	};
	for (int i = 0; i < CFG_SIZE; i++)
		f->cfg[i] = (uint8_t)(0x10 + i);
	virtio_dev_init(&f->dev, &f->ops, f, &f->mem);
	if (virtio_mmio_attach(&f->t, &f->dev, &f->bus, BASE, GSI, set_irq, f)) {
		guest_mem_destroy(&f->mem);
		free(f);
		return NULL;
	}
	return f;
}

static void fx_free(struct fx *f)
{
	guest_mem_destroy(&f->mem);
	free(f);
}

static uint32_t rd(struct fx *f, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_io(&f->t, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(struct fx *f, uint64_t off, uint32_t v)
{
	virtio_mmio_io(&f->t, off, (uint8_t *)&v, 4, true);
}

static uint64_t device_features(struct fx *f)
{
	wr(f, DEV_FEAT_SEL, 0);
	uint64_t lo = rd(f, DEV_FEAT);
	wr(f, DEV_FEAT_SEL, 1);
	return lo | (uint64_t)rd(f, DEV_FEAT) << 32;
}

static void driver_features(struct fx *f, uint64_t v)
{
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, (uint32_t)v);
	wr(f, DRV_FEAT_SEL, 1);
	wr(f, DRV_FEAT, (uint32_t)(v >> 32));
}

/* Negotiates everything offered; returns the status read back. */
static uint32_t negotiate(struct fx *f)
{
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(f, device_features(f));
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return rd(f, STATUS);
}

static void program_queue(struct fx *f, uint32_t sel, uint32_t num, uint64_t desc, uint64_t avail,
			  uint64_t used)
{
	wr(f, QUEUE_SEL, sel);
	wr(f, QUEUE_NUM, num);
	wr(f, DESC_LO, (uint32_t)desc);
	wr(f, DESC_HI, (uint32_t)(desc >> 32));
	wr(f, DRIVER_LO, (uint32_t)avail);
	wr(f, DRIVER_HI, (uint32_t)(avail >> 32));
	wr(f, DEVICE_LO, (uint32_t)used);
	wr(f, DEVICE_HI, (uint32_t)(used >> 32));
}

#define OK_STATUS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK)

TEST(vmmio_identity)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	CHECK(rd(f, MAGIC) == 0x74726976);
	CHECK(rd(f, VERSION) == 2);
	CHECK(rd(f, DEVICE_ID) == 42);
	CHECK(rd(f, VENDOR_ID) == 0x4e524554);
	CHECK(rd(f, STATUS) == 0);
	CHECK(rd(f, INT_STATUS) == 0);
	CHECK(rd(f, CONFIG_GEN) == 0);
	/* Through the bus: the window is registered at its base, 4 KiB long. */
	uint32_t v = 0;
	CHECK(bus_access(&f->bus, BASE, (uint8_t *)&v, 4, false) && v == 0x74726976);
	CHECK(bus_access(&f->bus, BASE + 0xfff, (uint8_t *)&v, 1, false));
	CHECK(!bus_access(&f->bus, BASE + 0x1000, (uint8_t *)&v, 4, false));
	CHECK(f->dev.transport == &f->t);
	/* Unknown and write-only registers read as zero. */
	CHECK(rd(f, 0x018) == 0);
	CHECK(rd(f, DRV_FEAT) == 0);
	CHECK(rd(f, QUEUE_NOTIFY) == 0);
	CHECK(rd(f, INT_ACK) == 0);
	CHECK(rd(f, QUEUE_NUM) == 0);
	CHECK(rd(f, DESC_LO) == 0);
	fx_free(f);
}

TEST(vmmio_device_feature_select)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	wr(f, DEV_FEAT_SEL, 0);
	CHECK(rd(f, DEV_FEAT) == (uint32_t)FEATURES);
	wr(f, DEV_FEAT_SEL, 1);
	CHECK(rd(f, DEV_FEAT) == (uint32_t)((FEATURES | 1ULL << VIRTIO_F_VERSION_1) >> 32));
	wr(f, DEV_FEAT_SEL, 2);
	CHECK(rd(f, DEV_FEAT) == 0);
	wr(f, DEV_FEAT_SEL, 0xffffffffu);
	CHECK(rd(f, DEV_FEAT) == 0);
	CHECK(device_features(f) == (FEATURES | 1ULL << VIRTIO_F_VERSION_1));
	/* Writing the (read-only) device features changes nothing. */
	wr(f, DEV_FEAT_SEL, 0);
	wr(f, DEV_FEAT, 0xffffffffu);
	CHECK(rd(f, DEV_FEAT) == (uint32_t)FEATURES);
	fx_free(f);
}

TEST(vmmio_driver_feature_select)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, 0x21);
	CHECK(f->dev.driver_features == 0x21);
	wr(f, DRV_FEAT_SEL, 1);
	wr(f, DRV_FEAT, 0x9);
	CHECK(f->dev.driver_features == (0x9ULL << 32 | 0x21));
	/* Rewriting one half leaves the other. */
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, 0x1);
	CHECK(f->dev.driver_features == (0x9ULL << 32 | 0x1));
	/* Selectors past the two defined words are ignored. */
	wr(f, DRV_FEAT_SEL, 2);
	wr(f, DRV_FEAT, 0xffffffffu);
	wr(f, DRV_FEAT_SEL, 0x80000000u);
	wr(f, DRV_FEAT, 0xffffffffu);
	CHECK(f->dev.driver_features == (0x9ULL << 32 | 0x1));
	fx_free(f);
}

TEST(vmmio_driver_features_fixed_after_features_ok)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	CHECK(negotiate(f) == OK_STATUS);
	uint64_t agreed = f->dev.driver_features;
	CHECK(agreed == (FEATURES | 1ULL << VIRTIO_F_VERSION_1));
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, 0);
	wr(f, DRV_FEAT_SEL, 1);
	wr(f, DRV_FEAT, 0xffffffffu);
	CHECK(f->dev.driver_features == agreed);
	fx_free(f);
}

TEST(vmmio_features_ok_refused)
{
	struct fx *f = fx_new();
	enum log_level level = log_get_level();

	REQUIRE(f);
	log_set_level(LOG_ERROR);
	/* A feature that was never offered. */
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(f, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 1);
	wr(f, STATUS, OK_STATUS);
	CHECK(rd(f, STATUS) == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER));
	/* Features can still change while FEATURES_OK is not set: the driver retries. */
	driver_features(f, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
	wr(f, STATUS, OK_STATUS);
	CHECK(rd(f, STATUS) == OK_STATUS);
	CHECK(f->dev.driver_features == (1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5));

	/* A legacy driver (no VERSION_1). */
	wr(f, STATUS, 0);
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(f, FEATURES);
	wr(f, STATUS, OK_STATUS);
	CHECK(!(rd(f, STATUS) & VIRTIO_STATUS_FEATURES_OK));
	/* Not even DRIVER_OK makes it stick. */
	wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
	CHECK(!(rd(f, STATUS) & VIRTIO_STATUS_FEATURES_OK));

	/* An unoffered high-word feature. */
	wr(f, STATUS, 0);
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(f, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 63);
	wr(f, STATUS, OK_STATUS);
	CHECK(!(rd(f, STATUS) & VIRTIO_STATUS_FEATURES_OK));

	/* Only VERSION_1: a subset is fine. */
	wr(f, STATUS, 0);
	wr(f, STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(f, 1ULL << VIRTIO_F_VERSION_1);
	wr(f, STATUS, OK_STATUS);
	CHECK(rd(f, STATUS) == OK_STATUS);
	log_set_level(level);
	fx_free(f);
}

TEST(vmmio_queue_num_max)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	for (uint32_t q = 0; q < NQ; q++) {
		wr(f, QUEUE_SEL, q);
		CHECK(rd(f, QUEUE_NUM_MAX) == QMAX);
		CHECK(rd(f, QUEUE_READY) == 0);
	}
	uint32_t absent[] = { NQ, VIRTIO_MAX_QUEUES, 0xffff, 0x10000, 0xffffffffu };
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		wr(f, QUEUE_SEL, absent[i]);
		CHECK(rd(f, QUEUE_NUM_MAX) == 0);
		CHECK(rd(f, QUEUE_READY) == 0);
		/* Programming an absent queue touches nothing. */
		wr(f, QUEUE_NUM, 8);
		wr(f, QUEUE_READY, 1);
		CHECK(rd(f, QUEUE_READY) == 0);
	}
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		CHECK(f->dev.q[q].size == 0 && !f->dev.q[q].ready);
	CHECK(!(f->dev.status & VIRTIO_STATUS_NEEDS_RESET));
	fx_free(f);
}

TEST(vmmio_queue_programming)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	REQUIRE(negotiate(f) == OK_STATUS);
	program_queue(f, 1, 16, 0x1000, 0x2000, 0x3000);
	struct virtq *q = &f->dev.q[1];
	CHECK(q->size == 16);
	CHECK(q->desc_gpa == 0x1000 && q->avail_gpa == 0x2000 && q->used_gpa == 0x3000);
	CHECK(!q->ready);
	/* The high halves land in the upper 32 bits. */
	wr(f, DESC_HI, 0x12);
	CHECK(q->desc_gpa == 0x1200001000ULL);
	wr(f, DESC_HI, 0);
	wr(f, QUEUE_READY, 1);
	CHECK(rd(f, QUEUE_READY) == 1);
	CHECK(q->ready);
	CHECK(q->indirect); /* negotiated INDIRECT_DESC reaches the queue */
	CHECK(!q->event_idx);

	/* Once ready, the queue's registers are frozen. */
	program_queue(f, 1, 32, 0x5000, 0x6000, 0x7000);
	CHECK(q->size == 16);
	CHECK(q->desc_gpa == 0x1000 && q->avail_gpa == 0x2000 && q->used_gpa == 0x3000);
	/* The other queue is independent. */
	CHECK(f->dev.q[0].size == 0);

	/* Disabled again (before DRIVER_OK), it can be reprogrammed. */
	wr(f, QUEUE_SEL, 1);
	wr(f, QUEUE_READY, 0);
	CHECK(rd(f, QUEUE_READY) == 0);
	program_queue(f, 1, 32, 0x5000, 0x6000, 0x7000);
	CHECK(q->size == 32 && q->desc_gpa == 0x5000);
	wr(f, QUEUE_READY, 1);
	CHECK(q->ready);

	/* After DRIVER_OK nothing about any queue changes, ready or not. */
	wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
	CHECK(f->activates == 1);
	program_queue(f, 0, 8, 0x8000, 0x9000, 0xa000);
	CHECK(f->dev.q[0].size == 0 && f->dev.q[0].desc_gpa == 0);
	wr(f, QUEUE_READY, 1);
	CHECK(!f->dev.q[0].ready);
	program_queue(f, 1, 8, 0x8000, 0x9000, 0xa000);
	CHECK(q->size == 32 && q->desc_gpa == 0x5000);
	CHECK(!(f->dev.status & VIRTIO_STATUS_NEEDS_RESET));

	/* Notifications reach the device for ready queues only. */
	wr(f, QUEUE_NOTIFY, 1);
	CHECK(f->notifies[1] == 1);
	wr(f, QUEUE_NOTIFY, 0);
	CHECK(f->notifies[0] == 0);
	wr(f, QUEUE_NOTIFY, NQ);
	wr(f, QUEUE_NOTIFY, 0xffffffffu);
	CHECK(f->notifies[0] == 0 && f->notifies[1] == 1);
	fx_free(f);
}

TEST(vmmio_notify_before_driver_ok_ignored)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	REQUIRE(negotiate(f) == OK_STATUS);
	program_queue(f, 0, 8, 0x1000, 0x2000, 0x3000);
	wr(f, QUEUE_READY, 1);
	wr(f, QUEUE_NOTIFY, 0);
	CHECK(f->notifies[0] == 0);
	wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
	wr(f, QUEUE_NOTIFY, 0);
	CHECK(f->notifies[0] == 1);
	fx_free(f);
}

TEST(vmmio_queue_ready_invalid)
{
	struct {
		uint32_t num;
		uint64_t desc, avail, used;
	} bad[] = {
		{ 0, 0x1000, 0x2000, 0x3000 },		      /* no size */
		{ 3, 0x1000, 0x2000, 0x3000 },		      /* not a power of two */
		{ 48, 0x1000, 0x2000, 0x3000 },		      /* not a power of two */
		{ 128, 0x1000, 0x2000, 0x3000 },	      /* above QueueNumMax */
		{ 0x10000, 0x1000, 0x2000, 0x3000 },	      /* does not fit 16 bits */
		{ 0x10008, 0x1000, 0x2000, 0x3000 },	      /* nor this (not truncated to 8) */
		{ 8, RAM, 0x2000, 0x3000 },		      /* descriptors outside RAM */
		{ 8, RAM - 64, 0x2000, 0x3000 },	      /* ... partly */
		{ 8, 0x1000, RAM - 4, 0x3000 },		      /* avail ring outside RAM */
		{ 8, 0x1000, 0x2000, RAM - 8 },		      /* used ring outside RAM */
		{ 8, 0x1000, 0x2000, 0x1000000000ULL },	      /* far above RAM */
		{ 8, 0xfffffffffffffff0ULL, 0x2000, 0x3000 }, /* wraps around */
		{ 8, 0x1008, 0x2000, 0x3000 },		      /* misaligned descriptors */
		{ 8, 0x1000, 0x2001, 0x3000 },		      /* misaligned avail ring */
		{ 8, 0x1000, 0x2000, 0x3002 },		      /* misaligned used ring */
	};
	struct fx *f = fx_new();
	enum log_level level = log_get_level();

	REQUIRE(f);
	log_set_level(LOG_ERROR);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(f, STATUS, 0);
		REQUIRE(negotiate(f) == OK_STATUS);
		unsigned int calls = f->irq_calls;
		uint32_t gen = rd(f, CONFIG_GEN);
		program_queue(f, 0, bad[i].num, bad[i].desc, bad[i].avail, bad[i].used);
		wr(f, QUEUE_READY, 1);
		CHECK(rd(f, QUEUE_READY) == 0);
		CHECK(!f->dev.q[0].ready);
		CHECK(rd(f, STATUS) & VIRTIO_STATUS_NEEDS_RESET);
		/* The driver is told: a config-change interrupt and a new generation. */
		CHECK(rd(f, INT_STATUS) & VIRTIO_ISR_CONFIG);
		CHECK(f->level == 1 && f->irq_calls == calls + 1);
		CHECK(rd(f, CONFIG_GEN) == gen + 1);
		/* DRIVER_OK does not make the device live. */
		wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
		CHECK(!virtio_dev_live(&f->dev));
		CHECK(rd(f, STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	}
	/* After a reset the same queue with sane values works. */
	wr(f, STATUS, 0);
	CHECK(f->level == 0);
	REQUIRE(negotiate(f) == OK_STATUS);
	program_queue(f, 0, QMAX, 0x1000, 0x2000, 0x3000);
	wr(f, QUEUE_READY, 1);
	CHECK(rd(f, QUEUE_READY) == 1);
	CHECK(!(rd(f, STATUS) & VIRTIO_STATUS_NEEDS_RESET));
	log_set_level(level);
	fx_free(f);
}

TEST(vmmio_interrupt_status_and_ack)
{
	struct fx *f = fx_new();
	enum log_level level = log_get_level();

	REQUIRE(f);
	CHECK(f->irq_calls == 0);
	/* A used-buffer notification, as a device completion raises it. */
	f->dev.signal_queue(&f->dev, 0);
	CHECK(rd(f, INT_STATUS) == VIRTIO_ISR_QUEUE);
	CHECK(f->level == 1 && f->last_gsi == GSI && f->irq_calls == 1);
	/* Raising again while up does not toggle the line. */
	f->dev.signal_queue(&f->dev, 1);
	CHECK(f->irq_calls == 1);
	/* A config change adds its bit. */
	f->dev.signal_config(&f->dev);
	CHECK(rd(f, INT_STATUS) == (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG));
	/* Acknowledging one bit keeps the line up; the other lowers it. */
	wr(f, INT_ACK, VIRTIO_ISR_QUEUE);
	CHECK(rd(f, INT_STATUS) == VIRTIO_ISR_CONFIG);
	CHECK(f->level == 1);
	wr(f, INT_ACK, 0);
	CHECK(f->level == 1);
	wr(f, INT_ACK, VIRTIO_ISR_CONFIG);
	CHECK(rd(f, INT_STATUS) == 0);
	CHECK(f->level == 0 && f->irq_calls == 2);
	/* Acknowledging nothing pending does nothing. */
	wr(f, INT_ACK, 0xffffffffu);
	CHECK(f->level == 0 && f->irq_calls == 2);
	/* The interrupt status register is read-only. */
	wr(f, INT_STATUS, 3);
	CHECK(rd(f, INT_STATUS) == 0 && f->level == 0);

	/* NEEDS_RESET raises a config interrupt once. */
	log_set_level(LOG_ERROR);
	pthread_mutex_lock(&f->dev.lock);
	virtio_dev_needs_reset(&f->dev, "test");
	virtio_dev_needs_reset(&f->dev, "test again");
	pthread_mutex_unlock(&f->dev.lock);
	log_set_level(level);
	CHECK(rd(f, INT_STATUS) == VIRTIO_ISR_CONFIG);
	CHECK(rd(f, CONFIG_GEN) == 1);
	CHECK(f->level == 1 && f->irq_calls == 3);
	/* A reset lowers the line. */
	wr(f, STATUS, 0);
	CHECK(rd(f, INT_STATUS) == 0);
	CHECK(f->level == 0 && f->irq_calls == 4);
	fx_free(f);
}

TEST(vmmio_config_space)
{
	struct fx *f = fx_new();
	uint8_t b[8];

	REQUIRE(f);
	/* Any width at any offset inside config_size. */
	for (uint32_t off = 0; off < CFG_SIZE; off++) {
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(b, 0xee, sizeof(b));
			virtio_mmio_io(&f->t, CONFIG + off, b, len, false);
			if (off + len <= CFG_SIZE)
				CHECK(!memcmp(b, f->cfg + off, len));
			else
				CHECK(!memcmp(b, (uint8_t[8]){ 0 }, len)); /* straddles the end */
			CHECK(len == 8 || b[len] == 0xee);
		}
	}
	/* Past config_size: zeros, up to the end of the window. */
	uint64_t offs[] = { CONFIG + CFG_SIZE, CONFIG + 0x100, 0xff8, 0xffc, 0xfff, 0x1000 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (uint32_t len = 1; len <= 8; len *= 2) {
			uint8_t *p = malloc(len); /* exact size: an overflow is an ASan report */
			REQUIRE(p);
			memset(p, 0xee, len);
			virtio_mmio_io(&f->t, offs[i], p, len, false);
			for (uint32_t k = 0; k < len; k++)
				CHECK(p[k] == 0);
			virtio_mmio_io(&f->t, offs[i], p, len, true);
			free(p);
		}
	}
	/* Writes reach config_write inside the bounds only. */
	uint8_t before[CFG_SIZE];
	memcpy(before, f->cfg, CFG_SIZE);
	uint32_t v = 0xa1b2c3d4;
	virtio_mmio_io(&f->t, CONFIG + 4, (uint8_t *)&v, 4, true);
	CHECK(!memcmp(f->cfg + 4, &v, 4));
	memcpy(before + 4, &v, 4);
	uint64_t w = ~0ULL;
	virtio_mmio_io(&f->t, CONFIG + CFG_SIZE - 4, (uint8_t *)&w, 8, true);
	virtio_mmio_io(&f->t, CONFIG + CFG_SIZE, (uint8_t *)&w, 1, true);
	CHECK(!memcmp(f->cfg, before, CFG_SIZE));

	/* A device without config_write ignores config writes. */
	f->ops.config_write = NULL;
	virtio_mmio_io(&f->t, CONFIG, (uint8_t *)&w, 8, true);
	CHECK(!memcmp(f->cfg, before, CFG_SIZE));
	fx_free(f);
}

TEST(vmmio_non32_register_access_ignored)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	for (uint32_t len = 1; len <= 8; len *= 2) {
		if (len == 4)
			continue;
		uint8_t b[8];
		memset(b, 0xee, sizeof(b));
		virtio_mmio_io(&f->t, MAGIC, b, len, false);
		CHECK(!memcmp(b, (uint8_t[8]){ 0 }, len));
		CHECK(len == 8 || b[len] == 0xee);
		/* A narrow status write does nothing. */
		memset(b, VIRTIO_STATUS_ACKNOWLEDGE, sizeof(b));
		virtio_mmio_io(&f->t, STATUS, b, len, true);
		CHECK(f->dev.status == 0);
		virtio_mmio_io(&f->t, QUEUE_SEL, b, len, true);
		CHECK(f->t.queue_sel == 0);
	}
	/* Unaligned 32-bit accesses too. */
	uint32_t v = 0xffffffffu;
	virtio_mmio_io(&f->t, MAGIC + 1, (uint8_t *)&v, 4, false);
	CHECK(v == 0);
	v = VIRTIO_STATUS_ACKNOWLEDGE;
	virtio_mmio_io(&f->t, STATUS + 2, (uint8_t *)&v, 4, true);
	CHECK(f->dev.status == 0);
	fx_free(f);
}

TEST(vmmio_status_zero_resets_everything)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	REQUIRE(negotiate(f) == OK_STATUS);
	for (uint32_t q = 0; q < NQ; q++) {
		program_queue(f, q, 8, 0x1000 + 0x1000 * q, 0x4000, 0x5000 + 0x1000 * q);
		wr(f, QUEUE_READY, 1);
		CHECK(rd(f, QUEUE_READY) == 1);
	}
	wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
	wr(f, DEV_FEAT_SEL, 1);
	wr(f, DRV_FEAT_SEL, 1);
	f->dev.signal_queue(&f->dev, 0);
	CHECK(f->level == 1);

	wr(f, STATUS, 0);
	CHECK(rd(f, STATUS) == 0);
	CHECK(f->resets == 1);
	CHECK(f->dev.driver_features == 0);
	CHECK(rd(f, INT_STATUS) == 0 && f->level == 0);
	CHECK(f->t.queue_sel == 0 && f->t.device_features_sel == 0 &&
	      f->t.driver_features_sel == 0);
	CHECK(rd(f, DEV_FEAT) == (uint32_t)FEATURES); /* selector back to word 0 */
	for (uint32_t q = 0; q < NQ; q++) {
		wr(f, QUEUE_SEL, q);
		CHECK(rd(f, QUEUE_READY) == 0);
		CHECK(f->dev.q[q].size == 0 && f->dev.q[q].desc_gpa == 0 &&
		      f->dev.q[q].used_gpa == 0);
	}
	/* The device can be brought up again and is live. */
	REQUIRE(negotiate(f) == OK_STATUS);
	program_queue(f, 0, 8, 0x1000, 0x2000, 0x3000);
	wr(f, QUEUE_READY, 1);
	wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
	CHECK(f->activates == 2);
	wr(f, QUEUE_NOTIFY, 0);
	CHECK(f->notifies[0] == 1);
	fx_free(f);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	/* xorshift64: fixed seed, so a failure replays the same way. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

TEST(vmmio_random_accesses)
{
	struct fx *f = fx_new();
	enum log_level level = log_get_level();

	REQUIRE(f);
	log_set_level(LOG_ERROR);
	for (int round = 0; round < 4; round++) {
		/* Half the rounds start from a working device, so deeper states are reached. */
		if (round & 1) {
			wr(f, STATUS, 0);
			negotiate(f);
			program_queue(f, 0, 8, 0x1000, 0x2000, 0x3000);
			wr(f, QUEUE_READY, 1);
			wr(f, STATUS, OK_STATUS | VIRTIO_STATUS_DRIVER_OK);
		}
		for (uint64_t off = 0; off <= 0x1000; off++) {
			for (uint32_t len = 1; len <= 8; len *= 2) {
				uint8_t *p = malloc(len);
				REQUIRE(p);
				uint64_t how = rng(), v = rng();
				/* Small values for the selectors and status to hit real cases. */
				if (how & 1)
					v &= 0xff;
				memcpy(p, &v, len);
				virtio_mmio_io(&f->t, off, p, len, how & 2);
				free(p);
			}
		}
		/* Whatever happened, the invariants hold. */
		for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
			const struct virtq *vq = &f->dev.q[q];
			CHECK(!vq->ready ||
			      (q < NQ && vq->size <= QMAX && virtq_validate(vq, &f->mem) == 0));
		}
		CHECK(f->level == (f->t.isr != 0));
		CHECK(!(f->dev.driver_features & ~(FEATURES | 1ULL << VIRTIO_F_VERSION_1)) ||
		      !(f->dev.status & VIRTIO_STATUS_FEATURES_OK));
	}
	/* And a reset still brings it back. */
	wr(f, STATUS, 0);
	CHECK(rd(f, STATUS) == 0 && f->level == 0);
	CHECK(negotiate(f) == OK_STATUS);
	log_set_level(level);
	fx_free(f);
}
