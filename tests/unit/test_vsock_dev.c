/*
 * Tests for the virtio-vsock device (src/virtio/vsock.c) with real Unix sockets in a
 * temporary directory and a small in-test guest driver: it programs the rx, tx and
 * event queues in a memfd-backed guest_mem, posts receive buffers, sends packets on the
 * tx queue, kicks with the device lock held (as transports do), and runs the event loop.
 * The driver keeps the guest's side of the credit rules, so the tests can check tern's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"
#include "unit.h"

#define MEM_SIZE (32u << 20)
#define QSIZE 256
#define CID 3
#define RX_PAYLOAD 4096
#define RX_BUF (VSOCK_HDR_SIZE + RX_PAYLOAD)
#define RX_DATA_GPA 0x100000ULL /* QSIZE rx buffers, 0x1100 apart */
#define RX_STRIDE 0x1100ULL
#define TX_DATA_GPA 0x400000ULL /* 128 tx slots: header + up to 64 KiB */
#define TX_STRIDE 0x10100ULL
#define TX_SLOTS 128

static const uint64_t ring_gpa[3] = { 0x10000, 0x20000, 0x30000 };
#define DESC(q) (ring_gpa[q])
#define AVAIL(q) (ring_gpa[q] + 0x1000)
#define USED(q) (ring_gpa[q] + 0x2000)

static struct loop *test_loop;

struct drv {
	struct guest_mem mem;
	struct virtio_vsock *v;
	char dir[64], path[128];
	uint16_t avail[3], used_seen[3];
	unsigned int tx_slot;
	bool hold_rx;	      /* do not repost rx buffers as they come back */
	uint16_t held[QSIZE]; /* rx buffers kept back while hold_rx */
	unsigned int nheld;
	unsigned int interrupts; /* queue interrupts */
	unsigned int config_irqs;
};

static struct drv *cur;

static void on_signal(struct virtio_dev *d, unsigned int q)
{
	cur->interrupts++;
}

static void on_config(struct virtio_dev *d)
{
	cur->config_irqs++;
}

static void put16(struct drv *g, uint64_t gpa, uint16_t x)
{
	guest_mem_write(&g->mem, gpa, &x, 2);
}

static uint16_t get16(struct drv *g, uint64_t gpa)
{
	uint16_t x = 0;
	guest_mem_read(&g->mem, gpa, &x, 2);
	return x;
}

static uint32_t get32(struct drv *g, uint64_t gpa)
{
	uint32_t x = 0;
	guest_mem_read(&g->mem, gpa, &x, 4);
	return x;
}

static void put_desc(struct drv *g, unsigned int q, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t d[16];

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	guest_mem_write(&g->mem, DESC(q) + 16ULL * i, d, 16);
}

static void publish(struct drv *g, unsigned int q, uint16_t head)
{
	put16(g, AVAIL(q) + 4 + 2ULL * (g->avail[q] % QSIZE), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(g, AVAIL(q) + 2, ++g->avail[q]);
}

static void kick(struct drv *g, unsigned int q)
{
	pthread_mutex_lock(&g->v->dev.lock);
	virtio_dev_notify(&g->v->dev, q);
	pthread_mutex_unlock(&g->v->dev.lock);
}

static void rx_post(struct drv *g, uint16_t i)
{
	put_desc(g, VSOCK_RXQ, i, RX_DATA_GPA + RX_STRIDE * i, RX_BUF, VIRTQ_DESC_F_WRITE, 0);
	publish(g, VSOCK_RXQ, i);
}

static bool drv_start(struct drv *g, unsigned int nrx)
{
	struct virtio_dev *d = &g->v->dev;
	bool ok;

	memset(guest_mem_ptr(&g->mem, 0x10000, 0x30000), 0, 0x30000);
	memset(g->avail, 0, sizeof(g->avail));
	memset(g->used_seen, 0, sizeof(g->used_seen));
	g->tx_slot = 0;
	pthread_mutex_lock(&d->lock);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->driver_features = virtio_dev_features(d);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK);
	ok = d->status & VIRTIO_STATUS_FEATURES_OK;
	for (unsigned int q = 0; q < 3; q++) {
		d->q[q].size = QSIZE;
		d->q[q].desc_gpa = DESC(q);
		d->q[q].avail_gpa = AVAIL(q);
		d->q[q].used_gpa = USED(q);
		ok = ok && virtio_dev_enable_queue(d, q);
	}
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ok = ok && virtio_dev_live(d);
	pthread_mutex_unlock(&d->lock);
	for (unsigned int i = 0; i < nrx; i++)
		rx_post(g, (uint16_t)i);
	kick(g, VSOCK_RXQ);
	return ok;
}

static struct drv *drv_new(unsigned int nrx)
{
	struct drv *g = calloc(1, sizeof(*g));
	const char *t = getenv("TMPDIR"), *why;

	if (!test_loop)
		test_loop = loop_create();
	if (!g || !test_loop || guest_mem_create(&g->mem, MEM_SIZE)) {
		free(g);
		return NULL;
	}
	snprintf(g->dir, sizeof(g->dir), "%s/tvs-XXXXXX", t && *t && strlen(t) < 40 ? t : "/tmp");
	g->v = calloc(1, sizeof(*g->v));
	if (!g->v || !mkdtemp(g->dir))
		goto fail;
	snprintf(g->path, sizeof(g->path), "%s/v.sock", g->dir);
	int r = virtio_vsock_init(g->v, &g->mem, test_loop, CID, g->path, &why);
	if (r) {
		printf("  virtio_vsock_init: %s: %s\n", why, strerror(-r));
		goto fail;
	}
	g->v->dev.signal_queue = on_signal;
	g->v->dev.signal_config = on_config;
	cur = g;
	if (!drv_start(g, nrx)) {
		virtio_vsock_destroy(g->v);
		goto fail;
	}
	return g;
fail:
	rmdir(g->dir);
	free(g->v);
	guest_mem_destroy(&g->mem);
	free(g);
	return NULL;
}

static void drv_free(struct drv *g)
{
	virtio_vsock_destroy(g->v);
	rmdir(g->dir);
	free(g->v);
	guest_mem_destroy(&g->mem);
	free(g);
	cur = NULL;
}

static void pump(int ms)
{
	loop_run_once(test_loop, ms);
}

/* ---- guest packets ---- */

static struct vsock_hdr ghdr(uint16_t op, uint32_t guest_port, uint32_t host_port)
{
	return (struct vsock_hdr){
		.src_cid = CID,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = guest_port,
		.dst_port = host_port,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = 65536,
	};
}

/* Sends one packet on the tx queue and kicks; true when the device returned it. */
static bool tx_send(struct drv *g, const struct vsock_hdr *h, const void *data, uint32_t len)
{
	unsigned int slot = g->tx_slot++ % TX_SLOTS;
	uint64_t gpa = TX_DATA_GPA + TX_STRIDE * slot;
	uint16_t d0 = (uint16_t)(2 * slot), d1 = (uint16_t)(2 * slot + 1);
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, raw);
	guest_mem_write(&g->mem, gpa, raw, sizeof(raw));
	if (len)
		guest_mem_write(&g->mem, gpa + VSOCK_HDR_SIZE, data, len);
	put_desc(g, VSOCK_TXQ, d0, gpa, VSOCK_HDR_SIZE, len ? VIRTQ_DESC_F_NEXT : 0, d1);
	if (len)
		put_desc(g, VSOCK_TXQ, d1, gpa + VSOCK_HDR_SIZE, len, 0, 0);
	publish(g, VSOCK_TXQ, d0);
	kick(g, VSOCK_TXQ);
	return get16(g, USED(VSOCK_TXQ) + 2) == g->avail[VSOCK_TXQ];
}

static bool tx_ctl(struct drv *g, uint16_t op, uint32_t gport, uint32_t hport, uint32_t flags)
{
	struct vsock_hdr h = ghdr(op, gport, hport);

	h.flags = flags;
	return tx_send(g, &h, NULL, 0);
}

/* Takes the next packet the device put in the rx queue (payload up to RX_PAYLOAD bytes). */
static bool rx_get(struct drv *g, struct vsock_hdr *h, uint8_t *payload)
{
	uint16_t seen = g->used_seen[VSOCK_RXQ];
	uint8_t raw[VSOCK_HDR_SIZE];

	if (get16(g, USED(VSOCK_RXQ) + 2) == seen)
		return false;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint64_t e = USED(VSOCK_RXQ) + 4 + 8ULL * (seen % QSIZE);
	uint16_t id = (uint16_t)get32(g, e);
	uint32_t len = get32(g, e + 4);
	g->used_seen[VSOCK_RXQ]++;
	uint64_t gpa = RX_DATA_GPA + RX_STRIDE * id;
	guest_mem_read(&g->mem, gpa, raw, sizeof(raw));
	vsock_hdr_decode(raw, h);
	if (len != VSOCK_HDR_SIZE + h->len || h->len > RX_PAYLOAD) {
		printf("  rx: used len %u for a packet of len %u\n", len, h->len);
		h->op = 0xdead;
	} else if (payload && h->len) {
		guest_mem_read(&g->mem, gpa + VSOCK_HDR_SIZE, payload, h->len);
	}
	if (g->hold_rx) {
		g->held[g->nheld++] = id;
	} else {
		rx_post(g, id);
		kick(g, VSOCK_RXQ);
	}
	return true;
}

/* Runs the loop until a packet arrives (up to ~2 s). */
static bool rx_wait(struct drv *g, struct vsock_hdr *h, uint8_t *payload)
{
	for (int i = 0; i < 400; i++) {
		if (rx_get(g, h, payload))
			return true;
		pump(5);
	}
	return false;
}

static void rx_release_held(struct drv *g)
{
	g->hold_rx = false;
	for (unsigned int i = 0; i < g->nheld; i++)
		rx_post(g, g->held[i]);
	g->nheld = 0;
	kick(g, VSOCK_RXQ);
}

/* Nothing arrives in the rx queue for a while. */
static bool rx_quiet(struct drv *g)
{
	struct vsock_hdr h;

	for (int i = 0; i < 10; i++) {
		pump(2);
		if (rx_get(g, &h, NULL)) {
			printf("  unexpected rx packet op %u len %u\n", h.op, h.len);
			return false;
		}
	}
	return true;
}

/* ---- host side ---- */

static int unix_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memcpy(a.sun_path, path, strlen(path) + 1);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memcpy(a.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int accept_wait(int lfd)
{
	for (int i = 0; i < 200; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		pump(5);
	}
	return -1;
}

static bool host_write(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s);
}

/* Reads exactly n bytes from a non-blocking socket, running the loop meanwhile. */
static bool host_read_n(int fd, void *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 400 && got < n; i++) {
		ssize_t r = read(fd, (uint8_t *)buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return false;
		pump(5);
	}
	return got == n;
}

/* The host socket reaches EOF (or reset) within ~2 s, discarding data. */
static bool host_sees_close(int fd)
{
	char buf[4096];

	for (int i = 0; i < 400; i++) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0 || (r < 0 && errno != EAGAIN))
			return true;
		if (r < 0)
			pump(5);
	}
	return false;
}

/*
 * Host-initiated connection to guest port gport, accepted by the guest with buf_alloc:
 * returns the host fd and the host port tern assigned (from "OK n\n").
 */
static int host_open(struct drv *g, uint32_t gport, uint32_t buf_alloc, uint32_t *hport)
{
	struct vsock_hdr h;
	char line[64], want[64];
	int fd = unix_connect(g->path);

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	if (fd < 0 || !host_write(fd, line) || !rx_wait(g, &h, NULL))
		goto fail;
	if (h.op != VSOCK_OP_REQUEST || h.dst_port != gport || h.dst_cid != CID ||
	    h.src_cid != VSOCK_HOST_CID || h.type != VSOCK_TYPE_STREAM ||
	    h.buf_alloc != VSOCK_CONN_BUF) {
		printf("  expected REQUEST to %u, got op %u to %u\n", gport, h.op, h.dst_port);
		goto fail;
	}
	*hport = h.src_port;
	struct vsock_hdr r = ghdr(VSOCK_OP_RESPONSE, gport, h.src_port);
	r.buf_alloc = buf_alloc;
	if (!tx_send(g, &r, NULL, 0))
		goto fail;
	snprintf(want, sizeof(want), "OK %u\n", *hport);
	memset(line, 0, sizeof(line));
	if (!host_read_n(fd, line, strlen(want)) || strcmp(line, want)) {
		printf("  expected '%s', got '%s'\n", want, line);
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 9));
}

/* ---- tests ---- */

TEST(vsock_config_and_features)
{
	struct drv *g = drv_new(8);
	uint64_t cid = 0;

	REQUIRE(g);
	g->v->dev.ops->config_read(&g->v->dev, 0, &cid, 8);
	CHECK(cid == CID);
	CHECK(g->v->dev.ops->device_id == VIRTIO_ID_VSOCK && g->v->dev.ops->num_queues == 3);
	CHECK(virtio_dev_has(&g->v->dev, VIRTIO_F_VERSION_1));
	drv_free(g);
}

TEST(vsock_host_connect_roundtrip)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;
	uint8_t buf[RX_PAYLOAD];
	char text[16] = { 0 };
	uint32_t hport = 0;

	REQUIRE(g);
	int fd = host_open(g, 1234, 65536, &hport);
	REQUIRE(fd >= 0);
	CHECK(hport == VSOCK_EPHEMERAL_BASE);
	CHECK(virtio_vsock_find(g->v, hport, 1234)->state == VSOCK_ESTABLISHED);
	/* host -> guest */
	REQUIRE(host_write(fd, "hello"));
	REQUIRE(rx_wait(g, &h, buf));
	CHECK(h.op == VSOCK_OP_RW && h.len == 5 && !memcmp(buf, "hello", 5));
	CHECK(h.src_port == hport && h.dst_port == 1234 && h.buf_alloc == VSOCK_CONN_BUF);
	/* guest -> host */
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 1234, hport);
	w.len = 5;
	REQUIRE(tx_send(g, &w, "world", 5));
	CHECK(host_read_n(fd, text, 5) && !strcmp(text, "world"));
	/* A second connection to the same guest port gets the next host port. */
	uint32_t hport2 = 0;
	int fd2 = host_open(g, 1234, 65536, &hport2);
	CHECK(fd2 >= 0 && hport2 == VSOCK_EPHEMERAL_BASE + 1);
	/* The guest closes cleanly: SHUTDOWN both ways, tern answers RST, the host sees EOF. */
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 1234, hport,
		       VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.src_port == hport && h.dst_port == 1234);
	CHECK(host_sees_close(fd));
	CHECK(virtio_vsock_find(g->v, hport, 1234) == NULL);
	/* The host closes the other one: the guest gets SHUTDOWN both ways, answers RST. */
	close(fd2);
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_SHUTDOWN && h.flags == 3 && h.src_port == hport2);
	CHECK(virtio_vsock_find(g->v, hport2, 1234)->state == VSOCK_CLOSING);
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 1234, hport2, 0));
	CHECK(virtio_vsock_find(g->v, hport2, 1234) == NULL);
	CHECK(g->v->nconns == 0);
	CHECK(g->interrupts > 0);
	close(fd);
	drv_free(g);
}

/* Data the host sends right behind its CONNECT line is not eaten by the handshake. */
TEST(vsock_host_connect_pipelined)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;
	uint8_t buf[RX_PAYLOAD];

	REQUIRE(g);
	int fd = unix_connect(g->path);
	REQUIRE(fd >= 0);
	REQUIRE(host_write(fd, "CONNECT 80\nGET /"));
	REQUIRE(rx_wait(g, &h, NULL));
	REQUIRE(h.op == VSOCK_OP_REQUEST && h.dst_port == 80);
	uint32_t hport = h.src_port;
	/* No data before the guest accepted. */
	CHECK(rx_quiet(g));
	struct vsock_hdr r = ghdr(VSOCK_OP_RESPONSE, 80, hport);
	REQUIRE(tx_send(g, &r, NULL, 0));
	REQUIRE(rx_wait(g, &h, buf));
	CHECK(h.op == VSOCK_OP_RW && h.len == 5 && !memcmp(buf, "GET /", 5));
	char ok[32] = { 0 };
	CHECK(host_read_n(fd, ok, 13) && !strcmp(ok, "OK 1073741824"));
	close(fd);
	drv_free(g);
}

/* No guest listener: the guest answers RST and the host connection is closed, no "OK". */
TEST(vsock_host_connect_refused_by_guest)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;
	char buf[8];

	REQUIRE(g);
	int fd = unix_connect(g->path);
	REQUIRE(fd >= 0 && host_write(fd, "CONNECT 9\n"));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_REQUEST);
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 9, h.src_port, 0));
	CHECK(host_sees_close(fd));
	CHECK(read(fd, buf, sizeof(buf)) <= 0);
	CHECK(g->v->nconns == 0);
	close(fd);
	drv_free(g);
}

/* A bad line, and no line at all within the handshake time: closed, nothing to the guest. */
TEST(vsock_host_bad_handshake)
{
	struct drv *g = drv_new(32);

	REQUIRE(g);
	g->v->handshake_timeout_ns = 200000000ULL;
	g->v->tick_ns = 20000000ULL;
	int a = unix_connect(g->path), b = unix_connect(g->path), c = unix_connect(g->path);
	REQUIRE(a >= 0 && b >= 0 && c >= 0);
	REQUIRE(host_write(a, "HELLO 5\n"));
	REQUIRE(host_write(b, "CONNECT 5")); /* never finished */
	REQUIRE(host_write(c, "CONNECT 12345678901234567890\n"));
	CHECK(host_sees_close(a));
	CHECK(host_sees_close(c));
	CHECK(host_sees_close(b)); /* by the timeout */
	CHECK(rx_quiet(g));
	CHECK(g->v->nconns == 0 && g->v->stats.host_refused == 3);
	close(a);
	close(b);
	close(c);
	drv_free(g);
}

/* The guest does not answer a REQUEST: the host connection times out, the guest gets RST. */
TEST(vsock_host_connect_timeout)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;

	REQUIRE(g);
	g->v->connect_timeout_ns = 200000000ULL;
	g->v->tick_ns = 20000000ULL;
	int fd = unix_connect(g->path);
	REQUIRE(fd >= 0 && host_write(fd, "CONNECT 5\n"));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_REQUEST);
	CHECK(host_sees_close(fd));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.dst_port == 5);
	CHECK(g->v->nconns == 0);
	close(fd);
	drv_free(g);
}

TEST(vsock_guest_connect)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;
	uint8_t buf[RX_PAYLOAD];
	char path[160], text[16] = { 0 };

	REQUIRE(g);
	snprintf(path, sizeof(path), "%s_5000", g->path);
	int lfd = unix_listen(path);
	REQUIRE(lfd >= 0);
	/* REQUEST to host port 5000 from guest port 777. */
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 777, 5000, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RESPONSE && h.src_port == 5000 && h.dst_port == 777);
	CHECK(h.buf_alloc == VSOCK_CONN_BUF && h.fwd_cnt == 0);
	int fd = accept_wait(lfd);
	REQUIRE(fd >= 0);
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 777, 5000);
	w.len = 4;
	REQUIRE(tx_send(g, &w, "ping", 4));
	CHECK(host_read_n(fd, text, 4) && !strcmp(text, "ping"));
	REQUIRE(host_write(fd, "pong"));
	REQUIRE(rx_wait(g, &h, buf));
	CHECK(h.op == VSOCK_OP_RW && h.len == 4 && !memcmp(buf, "pong", 4));
	CHECK(h.fwd_cnt == 4); /* what the host took so far */
	/* A half-close by the host: SHUTDOWN(SEND) only, the guest may still send. */
	shutdown(fd, SHUT_WR);
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_SHUTDOWN && h.flags == VSOCK_SHUTDOWN_SEND);
	w.len = 4;
	REQUIRE(tx_send(g, &w, "more", 4));
	CHECK(host_read_n(fd, text, 4) && !strcmp(text, "more"));
	/* The guest finishes too: RST, and the host sees EOF. */
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 777, 5000, VSOCK_SHUTDOWN_SEND));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST);
	CHECK(host_sees_close(fd));
	CHECK(g->v->nconns == 0);
	/* A port nobody listens on: RST. */
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 778, 5001, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.src_port == 5001 && h.dst_port == 778);
	CHECK(g->v->nconns == 0);
	close(fd);
	close(lfd);
	unlink(path);
	drv_free(g);
}

/* Packets of no connection get RST (never an RST for an RST); bad packets too. */
TEST(vsock_rst_unknown_connection)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;

	REQUIRE(g);
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 4000, 4001);
	w.len = 3;
	REQUIRE(tx_send(g, &w, "abc", 3));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.src_port == 4001 && h.dst_port == 4000);
	CHECK(h.src_cid == VSOCK_HOST_CID && h.dst_cid == CID);
	REQUIRE(tx_ctl(g, VSOCK_OP_CREDIT_REQUEST, 4000, 4001, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 4000, 4001, 3));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	REQUIRE(tx_ctl(g, VSOCK_OP_RESPONSE, 4000, 4001, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 4000, 4001, 0));
	CHECK(rx_quiet(g));
	/* Unknown type: RST (5.10.6.4). Unknown op, payload on a control packet, bad len too. */
	struct vsock_hdr b = ghdr(VSOCK_OP_REQUEST, 4000, 4001);
	b.type = 2;
	REQUIRE(tx_send(g, &b, NULL, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	b = ghdr(9, 4000, 4001);
	REQUIRE(tx_send(g, &b, NULL, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	b = ghdr(VSOCK_OP_RW, 4000, 4001);
	b.len = 100; /* only 10 bytes follow */
	REQUIRE(tx_send(g, &b, "0123456789", 10));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RST);
	/* Not from the guest's CID, or not to the host: dropped without a word. */
	b = ghdr(VSOCK_OP_REQUEST, 4000, 4001);
	b.src_cid = 99;
	REQUIRE(tx_send(g, &b, NULL, 0));
	b = ghdr(VSOCK_OP_REQUEST, 4000, 4001);
	b.dst_cid = 7;
	REQUIRE(tx_send(g, &b, NULL, 0));
	CHECK(rx_quiet(g));
	CHECK(g->v->stats.dropped == 2);
	CHECK(!(g->v->dev.status & VIRTIO_STATUS_NEEDS_RESET));
	drv_free(g);
}

/* host -> guest, 1 MiB through a 64 KiB guest window: tern never exceeds the credit. */
TEST(vsock_bulk_host_to_guest)
{
	struct drv *g = drv_new(64);
	struct vsock_hdr h;
	static uint8_t buf[RX_PAYLOAD], out[65536];
	const uint32_t total = 1u << 20, window = 65536;
	uint32_t hport = 0, written = 0, received = 0, consumed = 0, reported = 0;
	unsigned int updates = 0;
	bool ok = true;

	REQUIRE(g);
	int fd = host_open(g, 22, window, &hport);
	REQUIRE(fd >= 0);
	for (int iter = 0; iter < 20000 && received < total && ok; iter++) {
		/* The host writes what its socket takes. */
		while (written < total) {
			uint32_t n = total - written < sizeof(out) ? total - written : sizeof(out);
			for (uint32_t i = 0; i < n; i++)
				out[i] = pat(written + i);
			ssize_t r = write(fd, out, n);
			if (r <= 0)
				break;
			written += (uint32_t)r;
		}
		pump(0);
		while (rx_get(g, &h, buf)) {
			if (h.op != VSOCK_OP_RW || h.dst_port != 22) {
				printf("  unexpected op %u\n", h.op);
				ok = false;
				break;
			}
			for (uint32_t i = 0; i < h.len; i++)
				if (buf[i] != pat(received + i))
					ok = false;
			received += h.len;
			/* Credit: the device may never have more in flight than the window. */
			if (received - reported > window) {
				printf("  credit exceeded: %u in flight\n", received - reported);
				ok = false;
			}
		}
		/* The guest application reads slowly, and tells tern every 16 KiB (as Linux). */
		consumed = received - consumed > 8192 ? consumed + 8192 : received;
		if (consumed - reported >= 16384 ||
		    (consumed == received && consumed != reported)) {
			reported = consumed;
			struct vsock_hdr u = ghdr(VSOCK_OP_CREDIT_UPDATE, 22, hport);
			u.buf_alloc = window;
			u.fwd_cnt = reported;
			REQUIRE(tx_send(g, &u, NULL, 0));
			updates++;
		}
	}
	CHECK(ok);
	CHECK(received == total);
	CHECK(updates > 16);
	CHECK(g->v->stats.buffered_max == 0); /* host data is never buffered in tern */
	close(fd);
	drv_free(g);
}

/* guest -> host, 1 MiB, the guest keeping to tern's credit; tern sends CREDIT_UPDATEs. */
TEST(vsock_bulk_guest_to_host)
{
	struct drv *g = drv_new(64);
	struct vsock_hdr h;
	static uint8_t chunk[16384], in[65536];
	const uint32_t total = 1u << 20;
	uint32_t hport = 0, sent = 0, got = 0, peer_alloc = 0, peer_fwd = 0;
	unsigned int credit_updates = 0, waits = 0;
	bool ok = true;

	REQUIRE(g);
	int fd = host_open(g, 23, 65536, &hport);
	REQUIRE(fd >= 0);
	/* The RESPONSE the device saw carried no credit yet: ask for it. */
	REQUIRE(tx_ctl(g, VSOCK_OP_CREDIT_REQUEST, 23, hport, 0));
	for (int iter = 0; iter < 20000 && got < total && ok; iter++) {
		while (rx_get(g, &h, NULL)) {
			if (h.op == VSOCK_OP_CREDIT_UPDATE)
				credit_updates++;
			else if (h.op != VSOCK_OP_RW)
				ok = false;
			peer_alloc = h.buf_alloc;
			peer_fwd = h.fwd_cnt;
		}
		uint32_t credit = peer_alloc - (sent - peer_fwd);
		while (sent < total && credit > 0) {
			uint32_t n = total - sent;
			if (n > sizeof(chunk))
				n = sizeof(chunk);
			if (n > credit)
				n = credit;
			for (uint32_t i = 0; i < n; i++)
				chunk[i] = pat(sent + i);
			struct vsock_hdr w = ghdr(VSOCK_OP_RW, 23, hport);
			w.len = n;
			w.fwd_cnt = 0;
			if (!tx_send(g, &w, chunk, n))
				ok = false;
			sent += n;
			credit -= n;
		}
		if (sent < total && credit == 0)
			waits++;
		/* The host reads at its own pace: at most 32 KiB a round. */
		ssize_t r = read(fd, in, 32768);
		if (r > 0) {
			for (ssize_t i = 0; i < r; i++)
				if (in[i] != pat(got + (uint32_t)i))
					ok = false;
			got += (uint32_t)r;
		}
		pump(0);
	}
	CHECK(ok);
	CHECK(got == total && sent == total);
	CHECK(credit_updates > 0);
	CHECK(g->v->stats.credit_violations == 0);
	CHECK(g->v->stats.buffered_max <= VSOCK_CONN_BUF);
	printf("  %u credit updates, %u waits for credit, most buffered %u\n", credit_updates,
	       waits, g->v->stats.buffered_max);
	close(fd);
	drv_free(g);
}

/*
 * A host peer that never reads: tern holds at most VSOCK_CONN_BUF of the guest's data,
 * gives no more credit, and resets a guest that sends beyond it.
 */
TEST(vsock_host_never_reads)
{
	struct drv *g = drv_new(64);
	struct vsock_hdr h;
	static uint8_t chunk[16384];
	char path[160];
	uint32_t sent = 0, peer_alloc = 0, peer_fwd = 0;

	REQUIRE(g);
	snprintf(path, sizeof(path), "%s_6000", g->path);
	int lfd = unix_listen(path);
	REQUIRE(lfd >= 0);
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 900, 6000, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RESPONSE);
	peer_alloc = h.buf_alloc;
	peer_fwd = h.fwd_cnt;
	int fd = accept_wait(lfd);
	REQUIRE(fd >= 0);
	memset(chunk, 0x5a, sizeof(chunk));
	/* Send as the credit allows until there is none, for a while. */
	for (int round = 0; round < 100; round++) {
		while (rx_get(g, &h, NULL)) {
			peer_alloc = h.buf_alloc;
			peer_fwd = h.fwd_cnt;
		}
		uint32_t credit = peer_alloc - (sent - peer_fwd);
		while (credit) {
			uint32_t n = credit < sizeof(chunk) ? credit : sizeof(chunk);
			struct vsock_hdr w = ghdr(VSOCK_OP_RW, 900, 6000);
			w.len = n;
			REQUIRE(tx_send(g, &w, chunk, n));
			sent += n;
			credit -= n;
		}
		REQUIRE(tx_ctl(g, VSOCK_OP_CREDIT_REQUEST, 900, 6000, 0));
		pump(1);
	}
	while (rx_get(g, &h, NULL)) {
		CHECK(h.op == VSOCK_OP_CREDIT_UPDATE);
		peer_alloc = h.buf_alloc;
		peer_fwd = h.fwd_cnt;
	}
	struct vsock_conn *c = virtio_vsock_find(g->v, 6000, 900);
	REQUIRE(c);
	/* The kernel's socket buffer took some; tern holds the rest, within its window. */
	CHECK(c->buf_len == VSOCK_CONN_BUF);
	CHECK(g->v->stats.buffered_max <= VSOCK_CONN_BUF);
	CHECK(c->rx_cnt - c->fwd_cnt == c->buf_len);
	CHECK(peer_alloc - (sent - peer_fwd) == 0); /* no credit left for the guest */
	printf("  guest sent %u bytes; the socket took %u, tern holds %u\n", sent, c->fwd_cnt,
	       c->buf_len);
	/* Beyond the credit: RST, the host socket closes, the memory goes. */
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 900, 6000);
	w.len = 1;
	REQUIRE(tx_send(g, &w, chunk, 1));
	CHECK(g->v->stats.credit_violations == 1);
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.dst_port == 900);
	CHECK(virtio_vsock_find(g->v, 6000, 900) == NULL);
	CHECK(host_sees_close(fd));
	close(fd);
	close(lfd);
	unlink(path);
	drv_free(g);
}

/* A guest with no rx buffers: its rx stalls, tx still flows; rx resumes with buffers. */
TEST(vsock_no_rx_buffers)
{
	struct drv *g = drv_new(16);
	struct vsock_hdr h;
	uint8_t buf[RX_PAYLOAD];
	char text[8] = { 0 };
	uint32_t hport;

	REQUIRE(g);
	int fd = host_open(g, 31, 65536, &hport);
	REQUIRE(fd >= 0);
	/* Use up every rx buffer with data, keeping them. */
	g->hold_rx = true;
	for (int i = 0; i < 400 && g->nheld < 16; i++) {
		if (rx_get(g, &h, NULL))
			continue;
		REQUIRE(host_write(fd, "x"));
		pump(2);
	}
	REQUIRE(g->nheld == 16);
	REQUIRE(host_write(fd, "after"));
	CHECK(rx_quiet(g));
	/* tx still works */
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 31, hport);
	w.len = 4;
	REQUIRE(tx_send(g, &w, "data", 4));
	CHECK(host_read_n(fd, text, 4) && !strcmp(text, "data"));
	/* Unknown-connection packets while rx is full: their RSTs wait, tx goes on. */
	for (int i = 0; i < 3; i++)
		REQUIRE(tx_ctl(g, VSOCK_OP_CREDIT_REQUEST, 1, 2, 0));
	CHECK(g->v->rst_len == 3);
	/* Buffers again: the RSTs first, then the waiting data. */
	rx_release_held(g);
	bool after = false;
	unsigned int rsts = 0;
	for (int i = 0; i < 100 && !after; i++) {
		while (rx_get(g, &h, buf)) {
			if (h.op == VSOCK_OP_RST)
				rsts++;
			if (h.op == VSOCK_OP_RW && h.len >= 5 &&
			    !memcmp(buf + h.len - 5, "after", 5))
				after = true;
		}
		pump(5);
	}
	CHECK(after && rsts == 3);
	close(fd);
	drv_free(g);
}

/* The connection table is bounded; full means refused (host: closed; guest: RST). */
TEST(vsock_conn_table_limit)
{
	struct drv *g = drv_new(64);
	struct vsock_hdr h;
	int fd[5];
	uint32_t hport[5];

	REQUIRE(g);
	g->v->max_conns = 4;
	for (int i = 0; i < 4; i++) {
		fd[i] = host_open(g, 100 + (uint32_t)i, 65536, &hport[i]);
		REQUIRE(fd[i] >= 0);
	}
	CHECK(g->v->nconns == 4);
	/* A fifth host connection is closed at once. */
	fd[4] = unix_connect(g->path);
	REQUIRE(fd[4] >= 0);
	CHECK(host_sees_close(fd[4]));
	close(fd[4]);
	CHECK(g->v->stats.host_refused == 1);
	/* A guest REQUEST is refused with RST. */
	char path[160];
	snprintf(path, sizeof(path), "%s_7000", g->path);
	int lfd = unix_listen(path);
	REQUIRE(lfd >= 0);
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 55, 7000, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.dst_port == 55);
	/* One closes: room again. */
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 100, hport[0], 0));
	CHECK(host_sees_close(fd[0]));
	close(fd[0]);
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 55, 7000, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RESPONSE && h.dst_port == 55);
	CHECK(g->v->nconns == 4);
	for (int i = 1; i < 4; i++)
		close(fd[i]);
	close(lfd);
	unlink(path);
	drv_free(g);
}

/* A malformed chain: NEEDS_RESET, every connection closed; a driver reset brings it back. */
TEST(vsock_malformed_chain_needs_reset)
{
	struct drv *g = drv_new(32);
	uint32_t hport;

	REQUIRE(g);
	int fd = host_open(g, 40, 65536, &hport);
	REQUIRE(fd >= 0);
	/* A tx buffer shorter than a header. */
	put_desc(g, VSOCK_TXQ, 0, TX_DATA_GPA, 20, 0, 0);
	publish(g, VSOCK_TXQ, 0);
	kick(g, VSOCK_TXQ);
	CHECK(g->v->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(g->config_irqs == 1);
	CHECK(host_sees_close(fd));
	CHECK(g->v->nconns == 0);
	close(fd);
	/* Host connections meanwhile are turned away. */
	fd = unix_connect(g->path);
	REQUIRE(fd >= 0 && host_write(fd, "CONNECT 40\n"));
	CHECK(host_sees_close(fd));
	close(fd);
	/* Reset and start again. */
	pthread_mutex_lock(&g->v->dev.lock);
	virtio_dev_set_status(&g->v->dev, 0);
	pthread_mutex_unlock(&g->v->dev.lock);
	CHECK(g->v->dev.status == 0);
	REQUIRE(drv_start(g, 32));
	fd = host_open(g, 40, 65536, &hport);
	CHECK(fd >= 0);
	close(fd);
	drv_free(g);
}

/* An rx buffer too small for a header is malformed too. */
TEST(vsock_small_rx_buffer_needs_reset)
{
	struct drv *g = drv_new(0);

	REQUIRE(g);
	put_desc(g, VSOCK_RXQ, 0, RX_DATA_GPA, VSOCK_HDR_SIZE - 1, VIRTQ_DESC_F_WRITE, 0);
	publish(g, VSOCK_RXQ, 0);
	kick(g, VSOCK_RXQ);
	CHECK(!(g->v->dev.status & VIRTIO_STATUS_NEEDS_RESET)); /* nothing to send yet */
	int fd = unix_connect(g->path);
	REQUIRE(fd >= 0 && host_write(fd, "CONNECT 1\n"));
	for (int i = 0; i < 100 && !(g->v->dev.status & VIRTIO_STATUS_NEEDS_RESET); i++)
		pump(5);
	CHECK(g->v->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(host_sees_close(fd));
	close(fd);
	drv_free(g);
}

/* The guest closes while tern still holds data for a host that never reads: RST after a while. */
TEST(vsock_close_with_unread_data_times_out)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;
	static uint8_t chunk[16384];
	char path[160];
	uint32_t sent = 0;

	REQUIRE(g);
	g->v->close_timeout_ns = 200000000ULL;
	g->v->tick_ns = 20000000ULL;
	snprintf(path, sizeof(path), "%s_6001", g->path);
	int lfd = unix_listen(path);
	REQUIRE(lfd >= 0);
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 901, 6001, 0));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_RESPONSE);
	int fd = accept_wait(lfd);
	REQUIRE(fd >= 0);
	/* More than the socket takes: some stays in tern. */
	while (sent + sizeof(chunk) <= VSOCK_CONN_BUF) {
		struct vsock_hdr w = ghdr(VSOCK_OP_RW, 901, 6001);
		w.len = sizeof(chunk);
		REQUIRE(tx_send(g, &w, chunk, sizeof(chunk)));
		sent += sizeof(chunk);
	}
	struct vsock_conn *c = virtio_vsock_find(g->v, 6001, 901);
	REQUIRE(c && c->buf_len > 0);
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 901, 6001, 3));
	/* No RST while data waits, then one when the close timeout ends it. */
	CHECK(virtio_vsock_find(g->v, 6001, 901) != NULL);
	bool rst = false;
	for (int i = 0; i < 200 && !rst; i++) {
		if (rx_get(g, &h, NULL))
			rst = h.op == VSOCK_OP_RST && h.dst_port == 901;
		else
			pump(5);
	}
	CHECK(rst);
	CHECK(virtio_vsock_find(g->v, 6001, 901) == NULL);
	CHECK(host_sees_close(fd));
	close(fd);
	close(lfd);
	unlink(path);
	drv_free(g);
}

/* The host hangs up while the guest has not answered the REQUEST yet. */
TEST(vsock_host_gone_before_response)
{
	struct drv *g = drv_new(32);
	struct vsock_hdr h;

	REQUIRE(g);
	int fd = unix_connect(g->path);
	REQUIRE(fd >= 0 && host_write(fd, "CONNECT 44\n"));
	REQUIRE(rx_wait(g, &h, NULL) && h.op == VSOCK_OP_REQUEST);
	uint32_t hport = h.src_port;
	close(fd);
	for (int i = 0; i < 10; i++)
		pump(2);
	struct vsock_hdr r = ghdr(VSOCK_OP_RESPONSE, 44, hport);
	REQUIRE(tx_send(g, &r, NULL, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RST && h.dst_port == 44);
	CHECK(g->v->nconns == 0);
	drv_free(g);
}

/* Many connections at once, data both ways on each, then all closed by the host. */
TEST(vsock_many_connections)
{
	enum { N = 64, BYTES = 10000 };
	struct drv *g = drv_new(128);
	struct vsock_hdr h;
	static uint8_t buf[RX_PAYLOAD], data[BYTES];
	int fd[N];
	uint32_t hport[N], rx[N] = { 0 };

	REQUIRE(g);
	for (uint32_t i = 0; i < BYTES; i++)
		data[i] = pat(i);
	for (int i = 0; i < N; i++) {
		fd[i] = host_open(g, 2000 + (uint32_t)i, 65536, &hport[i]);
		REQUIRE(fd[i] >= 0);
	}
	CHECK(g->v->nconns == N);
	for (int i = 0; i < N; i++)
		REQUIRE(write(fd[i], data, BYTES) == BYTES);
	unsigned int done = 0;
	bool ok = true;
	for (int iter = 0; iter < 2000 && done < N; iter++) {
		while (rx_get(g, &h, buf)) {
			int i = (int)h.dst_port - 2000;
			if (h.op != VSOCK_OP_RW || i < 0 || i >= N || h.src_port != hport[i] ||
			    rx[i] + h.len > BYTES || memcmp(buf, data + rx[i], h.len)) {
				ok = false;
				continue;
			}
			rx[i] += h.len;
			if (rx[i] == BYTES)
				done++;
		}
		pump(1);
	}
	CHECK(ok && done == N);
	for (int i = 0; i < N; i++) {
		struct vsock_hdr w = ghdr(VSOCK_OP_RW, 2000 + (uint32_t)i, hport[i]);
		w.len = BYTES;
		w.fwd_cnt = BYTES;
		REQUIRE(tx_send(g, &w, data, BYTES));
	}
	for (int i = 0; i < N; i++) {
		static uint8_t in[BYTES];
		CHECK(host_read_n(fd[i], in, BYTES) && !memcmp(in, data, BYTES));
		close(fd[i]);
	}
	/* Every host socket closed: a SHUTDOWN each, answered with RST. */
	unsigned int shut = 0;
	for (int iter = 0; iter < 2000 && shut < N; iter++) {
		while (rx_get(g, &h, NULL)) {
			if (h.op == VSOCK_OP_SHUTDOWN && h.flags == 3) {
				shut++;
				REQUIRE(tx_ctl(g, VSOCK_OP_RST, h.dst_port, h.src_port, 0));
			}
		}
		pump(1);
	}
	CHECK(shut == N);
	CHECK(g->v->nconns == 0);
	drv_free(g);
}

/* ---- the guest closes while tern still holds its data ---- */

#define SHUT_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop for about ms milliseconds. */
static void pump_for(unsigned int ms)
{
	uint64_t end = ms_now() + ms;

	while (ms_now() < end)
		pump(1);
}

/*
 * A guest connection from gport to host port hport (listened on by lfd) whose host end
 * does not read yet: the guest sends pattern bytes while tern gives credit, until the
 * host socket is full and tern holds VSOCK_CONN_BUF. Returns the host's fd (*sent: bytes).
 */
static int guest_fill(struct drv *g, uint32_t gport, uint32_t hport, int lfd, uint32_t *sent)
{
	struct vsock_hdr h;
	static uint8_t chunk[16384];
	uint32_t peer_alloc, peer_fwd;
	int fd;

	*sent = 0;
	if (!tx_ctl(g, VSOCK_OP_REQUEST, gport, hport, 0) || !rx_wait(g, &h, NULL) ||
	    h.op != VSOCK_OP_RESPONSE)
		return -1;
	peer_alloc = h.buf_alloc;
	peer_fwd = h.fwd_cnt;
	fd = accept_wait(lfd);
	if (fd < 0)
		return -1;
	for (int round = 0; round < 100; round++) {
		while (rx_get(g, &h, NULL)) {
			peer_alloc = h.buf_alloc;
			peer_fwd = h.fwd_cnt;
		}
		uint32_t credit = peer_alloc - (*sent - peer_fwd);
		while (credit) {
			uint32_t n = credit < sizeof(chunk) ? credit : sizeof(chunk);
			struct vsock_hdr w = ghdr(VSOCK_OP_RW, gport, hport);
			for (uint32_t i = 0; i < n; i++)
				chunk[i] = pat(*sent + i);
			w.len = n;
			if (!tx_send(g, &w, chunk, n))
				goto fail;
			*sent += n;
			credit -= n;
		}
		struct vsock_conn *c = virtio_vsock_find(g->v, hport, gport);
		if (c && c->buf_len == VSOCK_CONN_BUF)
			return fd;
		if (!tx_ctl(g, VSOCK_OP_CREDIT_REQUEST, gport, hport, 0))
			goto fail;
		pump(1);
	}
fail:
	close(fd);
	return -1;
}

/*
 * The host reads at most step bytes every 10 ms, checking the pattern, until EOF (*eof),
 * an error or ~20 s. Returns the bytes read.
 */
static uint32_t host_read_slowly(int fd, uint32_t step, bool *eof)
{
	static uint8_t in[65536];
	uint32_t got = 0;

	*eof = false;
	for (int i = 0; i < 2000; i++) {
		ssize_t r = read(fd, in, step < sizeof(in) ? step : sizeof(in));
		if (r == 0) {
			*eof = true;
			break;
		}
		if (r < 0 && errno != EAGAIN) {
			printf("  host read: %s after %u bytes\n", strerror(errno), got);
			break;
		}
		for (ssize_t j = 0; j < r; j++) {
			if (in[j] != pat(got + (uint32_t)j)) {
				printf("  byte %u is wrong\n", got + (uint32_t)j);
				return got;
			}
		}
		if (r > 0)
			got += (uint32_t)r;
		pump_for(10);
	}
	return got;
}

/* Waits (~2 s) for a packet of op to gport, skipping CREDIT_UPDATEs. */
static bool rx_wait_op(struct drv *g, uint16_t op, uint32_t gport)
{
	struct vsock_hdr h;

	while (rx_wait(g, &h, NULL)) {
		if (h.op == op && h.dst_port == gport)
			return true;
		if (h.op != VSOCK_OP_CREDIT_UPDATE) {
			printf("  expected op %u to %u, got op %u to %u\n", op, gport, h.op,
			       h.dst_port);
			return false;
		}
	}
	return false;
}

/*
 * A guest connection to host port HPORT whose host socket reads nothing yet, so tern
 * holds all the guest could send (its whole buffer). close_timeout_ns: 0 keeps the default.
 */
struct filled {
	struct drv *g;
	char path[160];
	int lfd, fd;
	uint32_t sent;
};

static bool filled_open(struct filled *f, uint32_t gport, uint32_t hport, uint64_t close_timeout_ns)
{
	f->lfd = f->fd = -1;
	f->g = drv_new(64);
	if (!f->g)
		return false;
	if (close_timeout_ns) {
		f->g->v->close_timeout_ns = close_timeout_ns;
		f->g->v->tick_ns = 10000000ULL;
	}
	snprintf(f->path, sizeof(f->path), "%s_%u", f->g->path, hport);
	f->lfd = unix_listen(f->path);
	if (f->lfd >= 0)
		f->fd = guest_fill(f->g, gport, hport, f->lfd, &f->sent);
	return f->fd >= 0;
}

/* Reads the host socket slowly to its end: true if every byte the guest sent came, then EOF. */
static bool filled_read_all(struct filled *f, uint64_t *ms)
{
	bool eof;
	uint64_t t0 = ms_now();
	uint32_t got = host_read_slowly(f->fd, 4096, &eof);

	*ms = ms_now() - t0;
	printf("  host read %u of %u bytes in %llu ms%s\n", got, f->sent, (unsigned long long)*ms,
	       eof ? ", then EOF" : "");
	return got == f->sent && eof;
}

static void filled_close(struct filled *f)
{
	close(f->fd);
	close(f->lfd);
	unlink(f->path);
	drv_free(f->g);
}

/*
 * The guest closes (SHUTDOWN both ways) with 256 KiB still in tern, and the host reads
 * slowly but steadily: draining takes over two close timeouts, yet each one sees progress,
 * so every byte arrives, then EOF, and the guest gets its RST.
 */
TEST(vsock_close_slow_reader_gets_everything)
{
	struct filled f;
	uint64_t ms;

	REQUIRE(filled_open(&f, 902, 6002, 500000000ULL));
	struct drv *g = f.g;
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 902, 6002, SHUT_BOTH));
	CHECK(filled_read_all(&f, &ms));
	CHECK(ms > 500); /* longer than one close timeout */
	CHECK(rx_wait_op(g, VSOCK_OP_RST, 902));
	CHECK(g->v->nconns == 0);
	filled_close(&f);
}

/*
 * As Linux does when our RST is late (VSOCK_CLOSE_TIMEOUT after close()), the guest
 * resets a connection it had shut down while tern still holds its data: the data is
 * complete, so it still reaches the host, then EOF. The guest forgot the connection:
 * nothing more goes to it, and the same address pair is free for a new connection.
 */
TEST(vsock_guest_rst_after_shutdown_drains)
{
	struct filled f;
	struct vsock_hdr h;
	char text[8] = { 0 };
	uint64_t ms;

	REQUIRE(filled_open(&f, 903, 6003, 500000000ULL));
	struct drv *g = f.g;
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 903, 6003, SHUT_BOTH));
	struct vsock_conn *c = virtio_vsock_find(g->v, 6003, 903);
	REQUIRE(c && c->buf_len == VSOCK_CONN_BUF);
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 903, 6003, 0));
	CHECK(virtio_vsock_find(g->v, 6003, 903) == NULL);
	CHECK(g->v->nconns == 1); /* still draining */
	while (rx_get(g, &h, NULL))
		CHECK(h.op == VSOCK_OP_CREDIT_UPDATE); /* sent before the RST */
	CHECK(rx_quiet(g));			       /* no RST for an RST */
	/* The guest opens a new connection on the same ports: it works. */
	REQUIRE(tx_ctl(g, VSOCK_OP_REQUEST, 903, 6003, 0));
	REQUIRE(rx_wait(g, &h, NULL));
	CHECK(h.op == VSOCK_OP_RESPONSE && h.dst_port == 903 && h.src_port == 6003);
	int fd2 = accept_wait(f.lfd);
	REQUIRE(fd2 >= 0);
	struct vsock_hdr w = ghdr(VSOCK_OP_RW, 903, 6003);
	w.len = 3;
	REQUIRE(tx_send(g, &w, "new", 3));
	CHECK(host_read_n(fd2, text, 3) && !strcmp(text, "new"));
	/* The old host socket gets every byte, then EOF, at a slow reader's pace. */
	CHECK(filled_read_all(&f, &ms));
	CHECK(g->v->nconns == 1);
	CHECK(rx_quiet(g));
	/* The new connection is untouched and closes as usual. */
	c = virtio_vsock_find(g->v, 6003, 903);
	CHECK(c && c->state == VSOCK_ESTABLISHED);
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 903, 6003, SHUT_BOTH));
	CHECK(rx_wait_op(g, VSOCK_OP_RST, 903));
	CHECK(host_sees_close(fd2));
	CHECK(g->v->nconns == 0);
	close(fd2);
	filled_close(&f);
}

/* A draining connection whose host never reads is still bounded by the close timeout. */
TEST(vsock_guest_rst_drain_times_out)
{
	struct filled f;

	REQUIRE(filled_open(&f, 904, 6004, 200000000ULL));
	struct drv *g = f.g;
	int fd = f.fd;
	/* A send-side shutdown is enough: the data is complete. */
	REQUIRE(tx_ctl(g, VSOCK_OP_SHUTDOWN, 904, 6004, VSOCK_SHUTDOWN_SEND));
	uint64_t t0 = ms_now();
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 904, 6004, 0));
	CHECK(g->v->nconns == 1);
	pump_for(50);
	if (ms_now() - t0 < 150) /* well before the timeout, unless the machine stalled */
		CHECK(g->v->nconns == 1);
	for (int i = 0; i < 200 && g->v->nconns; i++)
		pump(5);
	CHECK(g->v->nconns == 0);
	struct vsock_hdr h;
	while (rx_get(g, &h, NULL))
		CHECK(h.op == VSOCK_OP_CREDIT_UPDATE); /* never an RST to the forgotten pair */
	CHECK(host_sees_close(fd));
	filled_close(&f);
}

/* An RST without a shutdown first is an abort: what tern holds is dropped at once. */
TEST(vsock_guest_rst_aborts)
{
	struct filled f;

	REQUIRE(filled_open(&f, 905, 6005, 0));
	struct drv *g = f.g;
	REQUIRE(tx_ctl(g, VSOCK_OP_RST, 905, 6005, 0));
	CHECK(g->v->nconns == 0);
	CHECK(virtio_vsock_find(g->v, 6005, 905) == NULL);
	CHECK(host_sees_close(f.fd));
	filled_close(&f);
}
