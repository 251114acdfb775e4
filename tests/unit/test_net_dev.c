/*
 * Tests for the virtio-net device (src/virtio/net.c) over a fake backend: a small
 * in-test driver negotiates, posts receive buffers and transmit chains in a memfd-backed
 * guest_mem, kicks with the device lock held, and runs the event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/slirp.h"
#include "backend/tap.h"
#include "core/loop.h"
#include "virtio/net.h"
#include "virtio/virtio.h"
#include "unit.h"

#define MEM_SIZE (32u << 20)
#define QSIZE 256
#define RX_BUF_GPA 0x100000ULL /* 64 KiB per receive buffer slot */
#define TX_BUF_GPA 0x1200000ULL
#define F(b) NET_F(VIRTIO_NET_F_##b)
#define ALL_OFFLOADS                                                                             \
	(F(CSUM) | F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(HOST_TSO4) | \
	 F(HOST_TSO6) | F(HOST_ECN))

static struct loop *test_loop;

/* ---- fake backend ---- */

#define FAKE_FRAMES 512
#define FAKE_MAX 70000

struct fake {
	struct net_backend be;
	uint8_t *in[FAKE_FRAMES];
	size_t in_len[FAKE_FRAMES];
	unsigned int in_head, in_count;
	unsigned int recv_calls;
	unsigned int nsent;
	uint8_t last_sent[FAKE_MAX];
	size_t last_len;
	uint64_t offloads;
	unsigned int offload_calls;
	int send_result;
};

static int fake_send(struct net_backend *be, const struct iovec *iov, unsigned int n)
{
	struct fake *f = (struct fake *)be;
	size_t len = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (len + iov[i].iov_len <= FAKE_MAX)
			memcpy(f->last_sent + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	f->last_len = len;
	f->nsent++;
	return f->send_result;
}

static ssize_t fake_recv(struct net_backend *be, void *buf, size_t len)
{
	struct fake *f = (struct fake *)be;
	uint64_t v;

	f->recv_calls++;
	if (!f->in_count) {
		if (read(be->poll_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
		return -EAGAIN;
	}
	unsigned int i = f->in_head;
	size_t n = f->in_len[i];
	f->in_head = (i + 1) % FAKE_FRAMES;
	f->in_count--;
	if (n > len) {
		free(f->in[i]);
		return -EMSGSIZE;
	}
	memcpy(buf, f->in[i], n);
	free(f->in[i]);
	return (ssize_t)n;
}

static int fake_set_offloads(struct net_backend *be, uint64_t features)
{
	struct fake *f = (struct fake *)be;

	f->offloads = features;
	f->offload_calls++;
	return 0;
}

static void fake_close(struct net_backend *be)
{
	struct fake *f = (struct fake *)be;

	while (f->in_count) {
		free(f->in[f->in_head]);
		f->in_head = (f->in_head + 1) % FAKE_FRAMES;
		f->in_count--;
	}
	close(be->poll_fd);
	free(f);
}

static const struct net_backend_ops fake_ops = {
	.send = fake_send,
	.recv = fake_recv,
	.set_offloads = fake_set_offloads,
	.close = fake_close,
};

static struct fake *fake_new(bool vnet)
{
	struct fake *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->be.ops = &fake_ops;
	f->be.poll_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->be.vnet_hdr = vnet;
	f->be.features = vnet ? ALL_OFFLOADS : 0;
	snprintf(f->be.name, sizeof(f->be.name), "fake");
	return f;
}

/* Queues a frame of len bytes (pattern seeded by tag) as the backend would deliver it. */
static void fake_push(struct fake *f, const uint8_t *hdr, size_t len, uint8_t tag)
{
	size_t h = f->be.vnet_hdr ? NET_HDR_LEN : 0;
	uint8_t *p = malloc(h + len);
	uint64_t one = 1;

	if (h)
		memcpy(p, hdr, h);
	for (size_t i = 0; i < len; i++)
		p[h + i] = (uint8_t)(tag + i * 3);
	unsigned int i = (f->in_head + f->in_count) % FAKE_FRAMES;
	f->in[i] = p;
	f->in_len[i] = h + len;
	f->in_count++;
	if (write(f->be.poll_fd, &one, sizeof(one)) < 0)
		printf("  note: eventfd write failed\n");
}

/* ---- in-test driver ---- */

struct tq {
	uint64_t desc, avail, used;
	uint16_t next_desc, avail_idx;
};

struct drv {
	struct guest_mem mem;
	struct virtio_net *n;
	struct fake *fake;
	struct tq q[3];
	unsigned int rx_slot, tx_slot;
	unsigned int signals[3], config_signals;
};

static struct drv *cur;

static void on_signal(struct virtio_dev *d, unsigned int q)
{
	cur->signals[q]++;
}

static void on_config(struct virtio_dev *d)
{
	cur->config_signals++;
}

static void *gp(struct drv *v, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&v->mem, gpa, len);
}

static uint16_t get16(struct drv *v, uint64_t gpa)
{
	uint16_t x = 0;

	guest_mem_read(&v->mem, gpa, &x, 2);
	return x;
}

static uint32_t get32(struct drv *v, uint64_t gpa)
{
	uint32_t x = 0;

	guest_mem_read(&v->mem, gpa, &x, 4);
	return x;
}

static void put16(struct drv *v, uint64_t gpa, uint16_t x)
{
	guest_mem_write(&v->mem, gpa, &x, 2);
}

static uint16_t used_idx(struct drv *v, unsigned int q)
{
	return get16(v, v->q[q].used + 2);
}

static void used_elem(struct drv *v, unsigned int q, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint64_t e = v->q[q].used + 4 + 8ULL * (i % QSIZE);

	*id = get32(v, e);
	*len = get32(v, e + 4);
}

static uint16_t avail_event(struct drv *v, unsigned int q)
{
	return get16(v, v->q[q].used + 4 + 8ULL * QSIZE);
}

static void lock(struct drv *v)
{
	pthread_mutex_lock(&v->n->dev.lock);
}

static void unlock(struct drv *v)
{
	pthread_mutex_unlock(&v->n->dev.lock);
}

static void kick(struct drv *v, unsigned int q)
{
	lock(v);
	virtio_dev_notify(&v->n->dev, q);
	unlock(v);
}

static void run_loop(void)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(test_loop, 1);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static uint16_t add_chain(struct drv *v, unsigned int qi, const struct seg *s, unsigned int n)
{
	struct tq *q = &v->q[qi];
	uint16_t head = q->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSIZE);
		uint8_t *dp = gp(v, q->desc + 16ULL * idx, 16);
		uint64_t addr = s[i].gpa;
		uint32_t len = s[i].len;
		uint16_t flags =
			(s[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
		uint16_t next = (uint16_t)((idx + 1) % QSIZE);
		memcpy(dp, &addr, 8);
		memcpy(dp + 8, &len, 4);
		memcpy(dp + 12, &flags, 2);
		memcpy(dp + 14, &next, 2);
	}
	q->next_desc = (uint16_t)((head + n) % QSIZE);
	put16(v, q->avail + 4 + 2ULL * (q->avail_idx % QSIZE), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(v, q->avail + 2, ++q->avail_idx);
	return head;
}

/* Posts one receive buffer of len bytes; returns its GPA. */
static uint64_t rx_post(struct drv *v, uint32_t len)
{
	uint64_t gpa = RX_BUF_GPA + 0x10000ULL * (v->rx_slot++ % 256);
	struct seg s = { gpa, len, true };

	memset(gp(v, gpa, len), 0xaa, len);
	add_chain(v, VIRTIO_NET_RXQ, &s, 1);
	return gpa;
}

/* Sends hdr + the given frame bytes as one descriptor; kicks. */
static void tx_send_bytes(struct drv *v, const uint8_t *hdr, const void *frame, uint32_t len)
{
	uint64_t gpa = TX_BUF_GPA + 0x20000ULL * (v->tx_slot++ % 64);
	uint8_t *p = gp(v, gpa, NET_HDR_LEN + len);
	struct seg s = { gpa, NET_HDR_LEN + len, false };

	memcpy(p, hdr, NET_HDR_LEN);
	memcpy(p + NET_HDR_LEN, frame, len);
	add_chain(v, VIRTIO_NET_TXQ, &s, 1);
	kick(v, VIRTIO_NET_TXQ);
}

/* Runs the loop until the receive used index reaches want (up to ms milliseconds). */
static bool wait_rx(struct drv *v, uint16_t want, int ms)
{
	for (int i = 0; i < ms && used_idx(v, VIRTIO_NET_RXQ) != want; i++)
		loop_run_once(test_loop, 1);
	return used_idx(v, VIRTIO_NET_RXQ) == want;
}

/* Sends hdr + a frame of len bytes (pattern tag) as two descriptors; kicks. */
static void tx_send(struct drv *v, const uint8_t *hdr, uint32_t len, uint8_t tag)
{
	uint64_t gpa = TX_BUF_GPA + 0x20000ULL * (v->tx_slot++ % 64);
	uint8_t *p = gp(v, gpa, NET_HDR_LEN + len);
	struct seg s[2] = { { gpa, NET_HDR_LEN, false }, { gpa + NET_HDR_LEN, len, false } };

	memcpy(p, hdr, NET_HDR_LEN);
	for (uint32_t i = 0; i < len; i++)
		p[NET_HDR_LEN + i] = (uint8_t)(tag + i * 3);
	add_chain(v, VIRTIO_NET_TXQ, s, 2);
	kick(v, VIRTIO_NET_TXQ);
}

static bool drv_start(struct drv *v, uint64_t features_mask)
{
	struct virtio_dev *d = &v->n->dev;
	bool ok;

	lock(v);
	virtio_dev_set_status(d, 0);
	for (unsigned int i = 0; i < 3; i++) {
		struct tq *q = &v->q[i];
		memset(gp(v, q->desc, 0x5000), 0, 0x5000); /* descriptors, avail and used rings */
		q->next_desc = q->avail_idx = 0;
	}
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->driver_features = virtio_dev_features(d) & (features_mask | NET_F(VIRTIO_F_VERSION_1));
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK);
	ok = d->status & VIRTIO_STATUS_FEATURES_OK;
	for (unsigned int i = 0; i < 3; i++) {
		d->q[i].size = QSIZE;
		d->q[i].desc_gpa = v->q[i].desc;
		d->q[i].avail_gpa = v->q[i].avail;
		d->q[i].used_gpa = v->q[i].used;
		ok = ok && virtio_dev_enable_queue(d, i);
	}
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ok = ok && virtio_dev_live(d);
	unlock(v);
	return ok;
}

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* A device over be (or over a new fake backend when be is NULL), started by the driver. */
static struct drv *drv_new_be(struct net_backend *be, bool vnet, uint16_t mtu, uint64_t mask)
{
	struct drv *v = calloc(1, sizeof(*v));

	if (!test_loop)
		test_loop = loop_create();
	if (!v || !test_loop || guest_mem_create(&v->mem, MEM_SIZE)) {
		free(v);
		return NULL;
	}
	v->q[0] = (struct tq){ .desc = 0x1000, .avail = 0x4000, .used = 0x5000 };
	v->q[1] = (struct tq){ .desc = 0x8000, .avail = 0xb000, .used = 0xc000 };
	v->q[2] = (struct tq){ .desc = 0x10000, .avail = 0x13000, .used = 0x14000 };
	if (!be) {
		v->fake = fake_new(vnet);
		be = v->fake ? &v->fake->be : NULL;
	}
	v->n = calloc(1, sizeof(*v->n));
	if (!be || !v->n ||
	    virtio_net_init(v->n, &v->mem, "test-net", be, test_mac, mtu, test_loop)) {
		printf("  note: cannot set up the device\n");
		exit(1);
	}
	v->n->dev.signal_queue = on_signal;
	v->n->dev.signal_config = on_config;
	cur = v;
	if (!drv_start(v, mask)) {
		printf("  note: driver start failed\n");
		exit(1);
	}
	return v;
}

static struct drv *drv_new(bool vnet, uint16_t mtu, uint64_t mask)
{
	return drv_new_be(NULL, vnet, mtu, mask);
}

static void drv_free(struct drv *v)
{
	virtio_net_destroy(v->n);
	free(v->n);
	guest_mem_destroy(&v->mem);
	free(v);
	cur = NULL;
}

static const uint8_t zero_hdr[NET_HDR_LEN];

/* ---- tests ---- */

TEST(net_dev_config_and_features)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	struct virtio_dev *d = &v->n->dev;
	uint64_t f = virtio_dev_features(d);
	uint8_t cfg[VIRTIO_NET_CONFIG_SIZE];

	CHECK(d->ops->device_id == VIRTIO_ID_NET && d->ops->num_queues == 3);
	CHECK((f & ALL_OFFLOADS) == ALL_OFFLOADS);
	CHECK(f & F(MAC) && f & F(STATUS) && f & F(MRG_RXBUF));
	CHECK(!(f & F(MTU)) && !(f & F(HOST_UFO)) && !(f & F(GUEST_UFO)));
	CHECK((f & F(CTRL_VQ)) && (f & F(GUEST_ANNOUNCE)));
	/* Nothing a control queue would carry beyond the announce ack: rx mode, VLAN, MAC, MQ. */
	CHECK(!(f & (NET_F(18) | NET_F(19) | NET_F(20) | NET_F(22) | NET_F(23))));
	d->ops->config_read(d, 0, cfg, sizeof(cfg));
	CHECK(!memcmp(cfg, test_mac, 6));
	CHECK(cfg[6] == VIRTIO_NET_S_LINK_UP && cfg[7] == 0);
	CHECK(v->fake->offloads == d->driver_features); /* set at DRIVER_OK */
	drv_free(v);

	/*
	 * A backend without headers gets the transmit offloads the device does itself
	 * (checksum, TSO), none it would have to receive; an MTU is offered when set.
	 */
	v = drv_new(false, 9000, ~0ULL);
	REQUIRE(v);
	d = &v->n->dev;
	f = virtio_dev_features(d);
	CHECK((f & ALL_OFFLOADS) == (F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6)) && (f & F(MTU)));
	d->ops->config_read(d, 10, cfg, 2);
	CHECK(cfg[0] == (9000 & 0xff) && cfg[1] == 9000 >> 8);
	drv_free(v);
}

TEST(net_dev_tx)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	uint32_t id, len;

	tx_send(v, zero_hdr, 60, 1);
	CHECK(v->fake->nsent == 1 && v->fake->last_len == NET_HDR_LEN + 60);
	CHECK(!memcmp(v->fake->last_sent, zero_hdr, NET_HDR_LEN));
	CHECK(v->fake->last_sent[NET_HDR_LEN] == 1 && v->fake->last_sent[NET_HDR_LEN + 1] == 4);
	CHECK(used_idx(v, VIRTIO_NET_TXQ) == 1 && v->signals[VIRTIO_NET_TXQ] >= 1);
	used_elem(v, VIRTIO_NET_TXQ, 0, &id, &len);
	CHECK(id == 0 && len == 0);
	/* A GSO frame the driver may send: passed through with its header. */
	uint8_t h[NET_HDR_LEN] = { VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   VIRTIO_NET_HDR_GSO_TCPV4,
				   54,
				   0,
				   0xa8,
				   0x05,
				   34,
				   0,
				   16,
				   0,
				   9,
				   9 };
	tx_send(v, h, 20000, 2);
	CHECK(v->fake->nsent == 2 && v->fake->last_len == NET_HDR_LEN + 20000);
	CHECK(v->fake->last_sent[1] == VIRTIO_NET_HDR_GSO_TCPV4 && v->fake->last_sent[10] == 0);
	/* Runt, oversized and bad-header frames are dropped; their chains still come back. */
	tx_send(v, zero_hdr, 10, 3);
	tx_send(v, zero_hdr, NET_MAX_FRAME + 1, 4);
	h[1] = VIRTIO_NET_HDR_GSO_UDP;
	tx_send(v, h, 2000, 5);
	CHECK(v->fake->nsent == 2 && v->n->stats.tx_dropped == 3);
	CHECK(used_idx(v, VIRTIO_NET_TXQ) == 5);
	/* The backend refusing a frame counts an error, nothing more. */
	v->fake->send_result = -EIO;
	tx_send(v, zero_hdr, 100, 6);
	CHECK(v->n->stats.tx_errors == 1 && used_idx(v, VIRTIO_NET_TXQ) == 6);
	CHECK(virtio_dev_live(&v->n->dev));
	CHECK(v->n->stats.tx_frames == 2);
	drv_free(v);
}

TEST(net_dev_tx_full_ring)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);

	/* A full ring: one budget's worth per pass, the rest after the loop comes back. */
	for (int i = 0; i < QSIZE; i++) {
		uint64_t gpa = TX_BUF_GPA + 0x100ULL * i;
		struct seg s = { gpa, NET_HDR_LEN + 60, false };
		memset(gp(v, gpa, NET_HDR_LEN + 60), 0, NET_HDR_LEN + 60);
		add_chain(v, VIRTIO_NET_TXQ, &s, 1);
	}
	kick(v, VIRTIO_NET_TXQ);
	run_loop();
	CHECK(v->fake->nsent == QSIZE && used_idx(v, VIRTIO_NET_TXQ) == QSIZE);
	tx_send(v, zero_hdr, 60, 1); /* the ring wraps */
	CHECK(v->fake->nsent == QSIZE + 1 && used_idx(v, VIRTIO_NET_TXQ) == QSIZE + 1);
	drv_free(v);
}

TEST(net_dev_tx_no_vnet_backend)
{
	struct drv *v = drv_new(false, 0, ~0ULL);
	REQUIRE(v);

	tx_send(v, zero_hdr, 60, 7);
	CHECK(v->fake->nsent == 1 && v->fake->last_len == 60); /* no header for this backend */
	CHECK(v->fake->last_sent[0] == 7);
	/*
	 * A partial checksum is completed by the device: the sum over [34, 60) plus what the
	 * field held before (the pseudo-header's sum, to a driver) then holds.
	 */
	uint8_t h[NET_HDR_LEN] = { VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 6, 0 };
	tx_send(v, h, 60, 8);
	CHECK(v->fake->nsent == 2 && v->fake->last_len == 60 && v->n->stats.tx_dropped == 0);
	uint32_t s = (uint32_t)((uint8_t)(8 + 40 * 3) << 8 | (uint8_t)(8 + 41 * 3));
	for (int i = 34; i < 60; i += 2)
		s += (uint32_t)(v->fake->last_sent[i] << 8 | v->fake->last_sent[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	CHECK(s == 0xffff);
	/* A TSO frame (Ethernet, IPv4, TCP, 3000 bytes at MSS 1000) leaves as three frames. */
	static uint8_t t[14 + 40 + 3000];
	memset(t, 0, sizeof(t));
	t[12] = 0x08;
	t[14] = 0x45;
	t[23] = 6;
	t[14 + 20 + 12] = 5 << 4;
	uint8_t th[NET_HDR_LEN] = {
		VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 0, 0xe8, 3, 34, 0, 16, 0
	};
	tx_send_bytes(v, th, t, sizeof(t));
	CHECK(v->fake->nsent == 5 && v->fake->last_len == 54 + 1000);
	/* A TSO header over a frame that is not TCP is dropped as a whole. */
	t[23] = 17;
	tx_send_bytes(v, th, t, sizeof(t));
	CHECK(v->fake->nsent == 5 && v->n->stats.tx_errors == 1);
	drv_free(v);
}

TEST(net_dev_tx_malformed)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	uint64_t gpa = TX_BUF_GPA;
	struct seg s[2] = { { gpa, NET_HDR_LEN + 60, false }, { gpa + 100, 10, true } };

	/* A writable descriptor on the transmit queue breaks the spec: the device stops. */
	add_chain(v, VIRTIO_NET_TXQ, s, 2);
	kick(v, VIRTIO_NET_TXQ);
	CHECK(v->n->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(v->config_signals == 1 && v->fake->nsent == 0);
	/* A reset brings it back. */
	CHECK(drv_start(v, ~0ULL));
	tx_send(v, zero_hdr, 60, 1);
	CHECK(v->fake->nsent == 1);
	/* A header shorter than 12 bytes: also malformed. */
	s[0] = (struct seg){ gpa, 8, false };
	add_chain(v, VIRTIO_NET_TXQ, s, 1);
	kick(v, VIRTIO_NET_TXQ);
	CHECK(v->n->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	drv_free(v);
}

/* Reads what receive buffer gpa holds: header fields and whether the data matches. */
static bool rx_frame_ok(struct drv *v, uint64_t gpa, size_t off, size_t len, uint8_t tag,
			size_t start)
{
	const uint8_t *p = gp(v, gpa, off + len);

	for (size_t i = 0; i < len; i++)
		if (p[off + i] != (uint8_t)(tag + (start + i) * 3))
			return false;
	return true;
}

TEST(net_dev_rx_mergeable)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	uint64_t b[4];
	uint32_t id, len;

	for (int i = 0; i < 4; i++)
		b[i] = rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 60, 10);
	fake_push(v->fake, zero_hdr, 2000, 20); /* 2012 bytes: two buffers */
	run_loop();
	CHECK(v->n->stats.rx_frames == 2);
	REQUIRE(used_idx(v, VIRTIO_NET_RXQ) == 3);
	CHECK(v->signals[VIRTIO_NET_RXQ] >= 1);
	used_elem(v, VIRTIO_NET_RXQ, 0, &id, &len);
	CHECK(id == 0 && len == NET_HDR_LEN + 60);
	CHECK(get16(v, b[0] + 10) == 1 && rx_frame_ok(v, b[0], NET_HDR_LEN, 60, 10, 0));
	used_elem(v, VIRTIO_NET_RXQ, 1, &id, &len);
	CHECK(id == 1 && len == 1526);
	used_elem(v, VIRTIO_NET_RXQ, 2, &id, &len);
	CHECK(id == 2 && len == 2012 - 1526);
	CHECK(get16(v, b[1] + 10) == 2);
	CHECK(rx_frame_ok(v, b[1], NET_HDR_LEN, 1514, 20, 0));
	CHECK(rx_frame_ok(v, b[2], 0, 2000 - 1514, 20, 1514));
	CHECK(!v->n->rx_stalled);
	drv_free(v);
}

TEST(net_dev_rx_no_buffers_not_polled)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);

	/* Frames arrive, the driver has posted nothing: the backend is not read at all. */
	for (int i = 0; i < 5; i++)
		fake_push(v->fake, zero_hdr, 100, (uint8_t)i);
	run_loop();
	CHECK(v->fake->recv_calls == 0);
	CHECK(v->fake->in_count == 5);
	CHECK(v->n->rx_stalled && v->n->stats.rx_stalls == 1);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 0);
	/* More frames keep waking the device; it still does not read. */
	fake_push(v->fake, zero_hdr, 100, 5);
	run_loop();
	CHECK(v->fake->recv_calls == 0 && v->n->stats.rx_stalls == 1);
	/* With EVENT_IDX the device asked to be kicked at the first new buffer. */
	CHECK(avail_event(v, VIRTIO_NET_RXQ) == v->q[0].avail_idx);
	/* Two buffers and a kick: two frames move, the rest wait again. */
	rx_post(v, 1526);
	rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 2 && v->fake->in_count == 4);
	CHECK(v->n->rx_stalled && v->n->stats.rx_stalls == 2);
	CHECK(v->fake->recv_calls == 2);
	/* Enough buffers: everything drains, and the next read finds the backend empty. */
	for (int i = 0; i < 8; i++)
		rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 6 && v->fake->in_count == 0);
	CHECK(!v->n->rx_stalled && v->n->stats.rx_frames == 6); /* buffers left: not stalled */
	/* Transmit is unaffected by a stalled receive. */
	CHECK(virtio_dev_live(&v->n->dev));
	drv_free(v);
}

TEST(net_dev_rx_waits_for_enough_mergeable)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	uint64_t b[3];

	b[0] = rx_post(v, 1000);
	b[1] = rx_post(v, 1000);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 2500, 30); /* 2512 bytes: three buffers */
	run_loop();
	/* Both buffers were given back: nothing used, the frame is held, reading stopped. */
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 0 && v->n->rx_stalled);
	CHECK(v->n->rx_len == NET_HDR_LEN + 2500);
	CHECK(v->n->dev.q[VIRTIO_NET_RXQ].last_avail == 0);
	CHECK(avail_event(v, VIRTIO_NET_RXQ) == 2);
	unsigned int calls = v->fake->recv_calls;
	fake_push(v->fake, zero_hdr, 50, 40);
	run_loop();
	CHECK(v->fake->recv_calls == calls); /* the held frame blocks further reads */
	b[2] = rx_post(v, 1000);
	kick(v, VIRTIO_NET_RXQ);
	/* The third buffer completes the frame; the next frame then waits for a buffer. */
	REQUIRE(used_idx(v, VIRTIO_NET_RXQ) == 3);
	CHECK(get16(v, b[0] + 10) == 3);
	CHECK(rx_frame_ok(v, b[0], NET_HDR_LEN, 988, 30, 0));
	CHECK(rx_frame_ok(v, b[1], 0, 1000, 30, 988));
	CHECK(rx_frame_ok(v, b[2], 0, 512, 30, 1988));
	CHECK(v->n->rx_stalled);
	rx_post(v, 1000);
	kick(v, VIRTIO_NET_RXQ);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 4 && v->n->rx_len == 0);
	CHECK(rx_frame_ok(v, RX_BUF_GPA + 0x30000, NET_HDR_LEN, 50, 40, 0));
	drv_free(v);
}

TEST(net_dev_rx_not_mergeable)
{
	/* Without MRG_RXBUF and TSO: one chain per frame, num_buffers 1. */
	struct drv *v = drv_new(true, 0, ~(F(MRG_RXBUF) | F(GUEST_TSO4) | F(GUEST_TSO6)));
	REQUIRE(v);
	uint64_t b0 = rx_post(v, 1526), b1;
	uint32_t id, len;

	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 2000, 1); /* does not fit: dropped, buffer kept */
	fake_push(v->fake, zero_hdr, 1514, 2);
	run_loop();
	CHECK(v->n->stats.rx_dropped == 1);
	REQUIRE(used_idx(v, VIRTIO_NET_RXQ) == 1);
	used_elem(v, VIRTIO_NET_RXQ, 0, &id, &len);
	CHECK(id == 0 && len == 1526);
	CHECK(get16(v, b0 + 10) == 1 && rx_frame_ok(v, b0, NET_HDR_LEN, 1514, 2, 0));
	/* A chain of several descriptors holds one frame too. */
	uint64_t gpa = RX_BUF_GPA + 0x10000ULL * 100;
	struct seg s[3] = { { gpa, 12, true },
			    { gpa + 0x100, 100, true },
			    { gpa + 0x200, 1500, true } };
	add_chain(v, VIRTIO_NET_RXQ, s, 3);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 300, 3);
	run_loop();
	REQUIRE(used_idx(v, VIRTIO_NET_RXQ) == 2);
	used_elem(v, VIRTIO_NET_RXQ, 1, &id, &len);
	CHECK(len == NET_HDR_LEN + 300);
	b1 = gpa;
	CHECK(get16(v, b1 + 10) == 1);
	CHECK(rx_frame_ok(v, gpa + 0x100, 0, 100, 3, 0));
	CHECK(rx_frame_ok(v, gpa + 0x200, 0, 200, 3, 100));
	drv_free(v);
}

TEST(net_dev_rx_header_fixup)
{
	/* The driver took no GUEST_CSUM: partial checksums are finished, flags cleared. */
	struct drv *v = drv_new(true, 0, ~(F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6)));
	REQUIRE(v);
	uint64_t b = rx_post(v, 1526);
	uint8_t h[NET_HDR_LEN] = { VIRTIO_NET_HDR_F_DATA_VALID, 0 };

	rx_post(v, 1526);

	CHECK(v->fake->offloads == v->n->dev.driver_features);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, h, 100, 1);
	/* A GSO frame the driver cannot take is dropped. */
	uint8_t g[NET_HDR_LEN] = { VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   VIRTIO_NET_HDR_GSO_TCPV4,
				   54,
				   0,
				   0xa8,
				   0x05,
				   34,
				   0,
				   16,
				   0 };
	fake_push(v->fake, g, 3000, 2);
	run_loop();
	REQUIRE(used_idx(v, VIRTIO_NET_RXQ) == 1);
	CHECK(*(uint8_t *)gp(v, b, 1) == 0); /* DATA_VALID cleared */
	CHECK(v->n->stats.rx_dropped == 1);
	drv_free(v);
}

TEST(net_dev_rx_bad_sizes)
{
	struct drv *v = drv_new(false, 0, ~0ULL);
	REQUIRE(v);

	rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, NULL, 10, 1); /* shorter than an Ethernet header */
	fake_push(v->fake, NULL, NET_MAX_FRAME + 1, 2);
	fake_push(v->fake, NULL, 60, 3);
	run_loop();
	CHECK(v->n->stats.rx_dropped == 2);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 1);
	/* This backend has no headers: the device writes a zero one. */
	const uint8_t *p = gp(v, RX_BUF_GPA, NET_HDR_LEN);
	CHECK(p[0] == 0 && p[1] == 0 && p[10] == 1 && p[11] == 0);
	drv_free(v);
}

TEST(net_dev_rx_malformed)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	struct seg s[2] = { { RX_BUF_GPA, 100, false }, { RX_BUF_GPA + 100, 1500, true } };

	add_chain(v, VIRTIO_NET_RXQ, s, 2); /* a readable descriptor on the receive queue */
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 100, 1);
	run_loop();
	CHECK(v->n->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 0);
	/* Reset: offloads go back to none, then the driver starts over and receives. */
	lock(v);
	virtio_dev_set_status(&v->n->dev, 0);
	unlock(v);
	CHECK(v->fake->offloads == 0);
	CHECK(drv_start(v, ~0ULL));
	rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	fake_push(v->fake, zero_hdr, 100, 2);
	run_loop();
	CHECK(used_idx(v, VIRTIO_NET_RXQ) >= 1 && v->n->stats.rx_frames >= 1);
	drv_free(v);
}

TEST(net_dev_rx_before_driver_ok)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);

	/* Frames that arrive while the device is not live wait in the backend. */
	lock(v);
	virtio_dev_set_status(&v->n->dev, 0);
	unlock(v);
	fake_push(v->fake, zero_hdr, 100, 1);
	run_loop();
	CHECK(v->fake->recv_calls == 0 && v->fake->in_count == 1);
	CHECK(drv_start(v, ~0ULL));
	rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 1 && v->fake->in_count == 0);
	drv_free(v);
}

TEST(net_dev_queue_batch_and_unpop)
{
	/* The two queue calls the device relies on, checked directly. */
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	struct virtq *q = &v->n->dev.q[VIRTIO_NET_RXQ];
	struct virtq_chain *c = &v->n->rx_first;
	uint16_t heads[3];
	uint32_t lens[3] = { 10, 20, 30 }, id, len;

	for (int i = 0; i < 3; i++)
		rx_post(v, 100);
	lock(v);
	CHECK(virtq_pop(q, &v->mem, c) == 1 && c->head == 0);
	CHECK(virtq_pop(q, &v->mem, c) == 1 && c->head == 1);
	virtq_unpop(q, 2);
	CHECK(q->last_avail == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(virtq_pop(q, &v->mem, c) == 1 && c->head == i);
		heads[i] = c->head;
	}
	uint16_t bad[1] = { QSIZE };
	CHECK(virtq_push_batch(q, &v->mem, bad, lens, 1) == -EINVAL);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 0);
	CHECK(virtq_push_batch(q, &v->mem, heads, lens, 3) == 0);
	unlock(v);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 3);
	for (uint16_t i = 0; i < 3; i++) {
		used_elem(v, VIRTIO_NET_RXQ, i, &id, &len);
		CHECK(id == i && len == lens[i]);
	}
	drv_free(v);
}

/* ---- control queue ---- */

#define CTRL_GPA 0x1800000ULL /* command header and data; the ack byte at +0x100 */

/* The status field of the device's config space. */
static uint16_t cfg_status(struct drv *v)
{
	struct virtio_dev *d = &v->n->dev;
	uint16_t st = 0;

	lock(v);
	d->ops->config_read(d, 6, &st, 2);
	unlock(v);
	return st;
}

/*
 * Sends class/cmd with data_len data bytes as the Linux driver does (header, data, ack:
 * a descriptor each), kicks, and returns the ack the device wrote (0xee: none written).
 */
static uint8_t ctrl_send(struct drv *v, uint8_t class, uint8_t cmd, uint32_t data_len)
{
	uint8_t *h = gp(v, CTRL_GPA, 2), *ack = gp(v, CTRL_GPA + 0x100, 1);
	struct seg s[3] = { { CTRL_GPA, 2, false } };
	unsigned int n = 1;

	h[0] = class;
	h[1] = cmd;
	*ack = 0xee;
	if (data_len)
		s[n++] = (struct seg){ CTRL_GPA + 0x200, data_len, false };
	s[n++] = (struct seg){ CTRL_GPA + 0x100, 1, true };
	add_chain(v, VIRTIO_NET_CTRLQ, s, n);
	kick(v, VIRTIO_NET_CTRLQ);
	return *ack;
}

TEST(net_dev_ctrl_announce)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	struct virtio_dev *d = &v->n->dev;
	uint32_t gen = d->config_generation, id, len;

	CHECK(cfg_status(v) == VIRTIO_NET_S_LINK_UP);
	/* The announcement: status bit, a new generation, one config interrupt. */
	virtio_net_announce(v->n);
	CHECK(v->config_signals == 1 && d->config_generation == gen + 1);
	CHECK(cfg_status(v) == (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE));
	/* The driver's ack clears it and is answered OK, one byte written. */
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 0) ==
	      VIRTIO_NET_OK);
	CHECK(cfg_status(v) == VIRTIO_NET_S_LINK_UP);
	REQUIRE(used_idx(v, VIRTIO_NET_CTRLQ) == 1);
	used_elem(v, VIRTIO_NET_CTRLQ, 0, &id, &len);
	CHECK(id == 0 && len == 1 && v->signals[VIRTIO_NET_CTRLQ] == 1);
	CHECK(v->config_signals == 1); /* clearing is no config change the driver waits for */
	/* The header may be split over descriptors; the ack may have room for more. */
	virtio_net_announce(v->n);
	uint8_t *h = gp(v, CTRL_GPA, 2);
	h[0] = VIRTIO_NET_CTRL_ANNOUNCE;
	h[1] = VIRTIO_NET_CTRL_ANNOUNCE_ACK;
	struct seg split[3] = { { CTRL_GPA, 1, false },
				{ CTRL_GPA + 1, 1, false },
				{ CTRL_GPA + 0x100, 16, true } };
	add_chain(v, VIRTIO_NET_CTRLQ, split, 3);
	kick(v, VIRTIO_NET_CTRLQ);
	CHECK(*(uint8_t *)gp(v, CTRL_GPA + 0x100, 1) == VIRTIO_NET_OK);
	CHECK(cfg_status(v) == VIRTIO_NET_S_LINK_UP && used_idx(v, VIRTIO_NET_CTRLQ) == 2);
	CHECK(v->n->stats.ctrl_refused == 0);
	/* A reset forgets an announcement the driver never acked. */
	virtio_net_announce(v->n);
	CHECK(cfg_status(v) & VIRTIO_NET_S_ANNOUNCE);
	CHECK(drv_start(v, ~0ULL));
	CHECK(cfg_status(v) == VIRTIO_NET_S_LINK_UP);
	/* Not live: nothing is asked. */
	lock(v);
	virtio_dev_set_status(d, 0);
	unlock(v);
	unsigned int signals = v->config_signals;
	virtio_net_announce(v->n);
	CHECK(v->config_signals == signals && !v->n->announce);
	drv_free(v);
}

TEST(net_dev_ctrl_refused)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);

	/* What tern does not support fails; nothing is answered OK silently. */
	CHECK(ctrl_send(v, 0, 0, 1) == VIRTIO_NET_ERR);	      /* RX promisc */
	CHECK(ctrl_send(v, 1, 1, 6) == VIRTIO_NET_ERR);	      /* MAC_ADDR_SET */
	CHECK(ctrl_send(v, 4, 0, 2) == VIRTIO_NET_ERR);	      /* MQ_VQ_PAIRS_SET */
	CHECK(ctrl_send(v, 0x7f, 0x55, 0) == VIRTIO_NET_ERR); /* no such class */
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, 1, 0) == VIRTIO_NET_ERR);
	/* An ack with nothing pending, or with data, fails (the second leaves the bit set). */
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 0) ==
	      VIRTIO_NET_ERR);
	virtio_net_announce(v->n);
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 4) ==
	      VIRTIO_NET_ERR);
	CHECK(cfg_status(v) & VIRTIO_NET_S_ANNOUNCE);
	CHECK(v->n->stats.ctrl_refused == 7);
	CHECK(used_idx(v, VIRTIO_NET_CTRLQ) == 7 && virtio_dev_live(&v->n->dev));
	drv_free(v);

	/* A driver without GUEST_ANNOUNCE is never asked, and its ack is refused. */
	v = drv_new(true, 0, ~F(GUEST_ANNOUNCE));
	REQUIRE(v);
	virtio_net_announce(v->n);
	CHECK(v->config_signals == 0 && cfg_status(v) == VIRTIO_NET_S_LINK_UP);
	/* A stale bit (say from a restore) is not shown to a driver that cannot ack it. */
	v->n->announce = true;
	CHECK(cfg_status(v) == VIRTIO_NET_S_LINK_UP);
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 0) ==
	      VIRTIO_NET_ERR);
	drv_free(v);
}

/* Sends one control chain of the given segments; true when the device then needs reset. */
static bool ctrl_breaks(struct drv *v, const struct seg *s, unsigned int n)
{
	uint8_t *h = gp(v, CTRL_GPA, 2);

	h[0] = VIRTIO_NET_CTRL_ANNOUNCE;
	h[1] = VIRTIO_NET_CTRL_ANNOUNCE_ACK;
	add_chain(v, VIRTIO_NET_CTRLQ, s, n);
	kick(v, VIRTIO_NET_CTRLQ);
	return v->n->dev.status & VIRTIO_STATUS_NEEDS_RESET;
}

TEST(net_dev_ctrl_malformed)
{
	struct drv *v = drv_new(true, 0, ~0ULL);
	REQUIRE(v);
	struct seg ro_ack[2] = { { CTRL_GPA, 2, false }, { CTRL_GPA + 0x100, 1, false } };
	struct seg no_ack[1] = { { CTRL_GPA, 2, false } };
	struct seg empty_ack[2] = { { CTRL_GPA, 2, false }, { CTRL_GPA + 0x100, 0, true } };
	struct seg short_hdr[2] = { { CTRL_GPA, 1, false }, { CTRL_GPA + 0x100, 1, true } };
	struct seg no_hdr[1] = { { CTRL_GPA + 0x100, 1, true } };
	struct seg outside[2] = { { MEM_SIZE - 1, 2, false }, { CTRL_GPA + 0x100, 1, true } };
	struct {
		const struct seg *s;
		unsigned int n;
	} bad[] = { { ro_ack, 2 },    { no_ack, 1 }, { empty_ack, 2 },
		    { short_hdr, 2 }, { no_hdr, 1 }, { outside, 2 } };

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(drv_start(v, ~0ULL));
		virtio_net_announce(v->n);
		unsigned int signals = v->config_signals;
		*(uint8_t *)gp(v, CTRL_GPA + 0x100, 1) = 0xee;
		CHECK(ctrl_breaks(v, bad[i].s, bad[i].n));
		/* Nothing acked, nothing written, no used entry; the driver hears of it. */
		CHECK(used_idx(v, VIRTIO_NET_CTRLQ) == 0);
		CHECK(*(uint8_t *)gp(v, CTRL_GPA + 0x100, 1) == 0xee);
		CHECK(v->n->announce && v->config_signals == signals + 1);
		/* Broken: no further command is looked at until a reset. */
		CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 0) ==
		      0xee);
	}
	/* After a reset the queue works again. */
	CHECK(drv_start(v, ~0ULL));
	virtio_net_announce(v->n);
	CHECK(ctrl_send(v, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 0) ==
	      VIRTIO_NET_OK);
	drv_free(v);
}

/* ---- the device over real backends ---- */

static size_t arp_who_has_gateway(uint8_t *f)
{
	static const uint8_t req[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
		10,   0,    2,	  15,	0,    0,    0,	  0,	0,    0,    10,	  0,	2,    2,
	};

	memcpy(f, req, sizeof(req));
	return sizeof(req);
}

TEST(net_dev_over_user_backend)
{
	struct slirp_backend_opts o = { 0 };
	struct net_backend *be;
	char err[256];
	uint8_t f[64];

	if (!test_loop)
		test_loop = loop_create();
	REQUIRE(slirp_backend_open(&be, &o, test_loop, err, sizeof(err)) == 0);
	struct drv *v = drv_new_be(be, false, 0, ~0ULL);
	REQUIRE(v);
	CHECK((virtio_dev_features(&v->n->dev) & ALL_OFFLOADS) ==
	      (F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6)));
	uint64_t b = rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	/* The driver asks for the gateway; slirp answers into the receive buffer. */
	tx_send_bytes(v, zero_hdr, f, (uint32_t)arp_who_has_gateway(f));
	REQUIRE(wait_rx(v, 1, 2000));
	const uint8_t *p = gp(v, b, NET_HDR_LEN + 42);
	CHECK(p[10] == 1 && p[0] == 0);
	CHECK(!memcmp(p + NET_HDR_LEN, test_mac, 6));
	CHECK(p[NET_HDR_LEN + 12] == 0x08 && p[NET_HDR_LEN + 13] == 0x06);
	CHECK(p[NET_HDR_LEN + 21] == 2); /* ARP reply */
	/* No buffers: slirp's answers queue (bounded) until the driver posts more. */
	tx_send_bytes(v, zero_hdr, f, 42);
	tx_send_bytes(v, zero_hdr, f, 42);
	for (int i = 0; i < 20; i++)
		loop_run_once(test_loop, 1);
	CHECK(used_idx(v, VIRTIO_NET_RXQ) == 1 && v->n->rx_stalled);
	rx_post(v, 1526);
	rx_post(v, 1526);
	kick(v, VIRTIO_NET_RXQ);
	CHECK(wait_rx(v, 3, 2000));
	drv_free(v);
}

static bool in_netns(void)
{
	const char *e = getenv("TERN_NET_NETNS");

	if (e && !strcmp(e, "1"))
		return true;
	printf("  note: not run: needs a fresh network namespace as root "
	       "(tests/guest/test_net.py runs it with TERN_NET_NETNS=1)\n");
	return false;
}

TEST(net_dev_over_tap_netns)
{
	struct net_backend *be;
	char err[256];
	static uint8_t buf[70000], f[1514];

	if (!in_netns())
		return;
	if (!test_loop)
		test_loop = loop_create();
	REQUIRE(tap_open(&be, "terndev0", 0, err, sizeof(err)) == 0);
	if (system("sysctl -qw net.ipv6.conf.terndev0.disable_ipv6=1 2>/dev/null") != 0)
		printf("  note: IPv6 stays on\n");
	struct drv *v = drv_new_be(be, true, 0, ~0ULL);
	REQUIRE(v);
	int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	struct sockaddr_ll a = { .sll_family = AF_PACKET,
				 .sll_protocol = htons(ETH_P_ALL),
				 .sll_ifindex = (int)if_nametoindex("terndev0"),
				 .sll_halen = 6 };
	REQUIRE(ps >= 0 && bind(ps, (struct sockaddr *)&a, sizeof(a)) == 0);

	/* Guest to host through the transmit queue. */
	memset(f, 0xff, 6);
	memcpy(f + 6, test_mac, 6);
	f[12] = 0x88, f[13] = 0xb5;
	for (int i = 14; i < 1514; i++)
		f[i] = (uint8_t)i;
	tx_send_bytes(v, zero_hdr, f, 1514);
	CHECK(v->n->stats.tx_frames == 1);
	ssize_t n = -1;
	for (int t = 0; t < 200 && n != 1514; t++) {
		struct pollfd p = { ps, POLLIN, 0 };
		if (poll(&p, 1, 10) > 0)
			n = recv(ps, buf, sizeof(buf), 0);
	}
	CHECK(n == 1514 && !memcmp(buf, f, 1514));

	/* Host to guest into mergeable buffers (the host may send its own frames too). */
	for (int i = 0; i < 32; i++)
		rx_post(v, 1000);
	kick(v, VIRTIO_NET_RXQ);
	f[14] = 0x42;
	memset(a.sll_addr, 0xff, 6);
	CHECK(sendto(ps, f, 1514, 0, (struct sockaddr *)&a, sizeof(a)) == 1514);
	uint16_t seen = 0;
	uint64_t found = 0;
	for (int t = 0; t < 2000 && !found; t++) {
		loop_run_once(test_loop, 1);
		while (seen != used_idx(v, VIRTIO_NET_RXQ) && !found) {
			uint32_t id, len;
			used_elem(v, VIRTIO_NET_RXQ, seen, &id, &len);
			/* One descriptor per chain: the head is the buffer slot. */
			uint64_t gpa = RX_BUF_GPA + 0x10000ULL * id;
			uint16_t nb = get16(v, gpa + 10);
			const uint8_t *e = gp(v, gpa + NET_HDR_LEN, 15);
			if (e[12] == 0x88 && e[13] == 0xb5 && e[14] == 0x42) {
				found = gpa;
				CHECK(nb == 2 && len == 1000);
			}
			seen = (uint16_t)(seen + (nb ? nb : 1));
		}
	}
	REQUIRE(found);
	CHECK(!memcmp(gp(v, found + NET_HDR_LEN, 14), f, 14));
	CHECK(!memcmp(gp(v, found + NET_HDR_LEN + 15, 1000 - NET_HDR_LEN - 15), f + 15,
		      1000 - NET_HDR_LEN - 15));
	close(ps);
	drv_free(v);
}
