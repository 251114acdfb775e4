/*
 * Save/restore of the virtio devices on virtio-mmio: virtio-blk (draining requests the
 * paused loop would not complete, a sticky failed flush, the capacity check), virtio-net
 * (offloads re-applied at resume, the guest's MAC kept, an announcement not yet acked), virtio-vsock (connections
 * dropped, TRANSPORT_RESET on the event queue, a held rx buffer given back) and
 * virtio-rng. Each device is driven to DRIVER_OK with progress on its rings, saved, and
 * a device set up as at boot over the same guest memory restores it and goes on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/disk.h"
#include "core/log.h"
#include "core/loop.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmstate/vmstate.h"
#include "devstate.h"
#include "unit.h"
#include "virtio_guest.h"

static struct loop *test_loop; /* shared by every case; a static pointer is not a leak */

static bool setup(struct vg_guest *g)
{
	memset(g, 0, sizeof(*g));
	if (!test_loop)
		test_loop = loop_create();
	return test_loop && guest_mem_create(&g->mem, VG_MEM) == 0;
}

static void run_loop(int n)
{
	for (int i = 0; i < n; i++)
		loop_run_once(test_loop, 1);
}

/* Runs the loop until queue q's used index is want (up to ms milliseconds). */
static bool wait_used(struct vg_guest *g, unsigned int q, uint16_t want, int ms)
{
	for (int i = 0; i < ms && vg_used_idx(g, q) != want; i++)
		loop_run_once(test_loop, 1);
	return vg_used_idx(g, q) == want;
}

static bool same_core(const struct virtio_dev *a, const struct virtio_dev *b)
{
	if (a->status != b->status || a->driver_features != b->driver_features ||
	    a->config_generation != b->config_generation)
		return false;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const struct virtq *x = &a->q[i], *y = &b->q[i];
		if (x->size != y->size || x->ready != y->ready || x->desc_gpa != y->desc_gpa ||
		    x->avail_gpa != y->avail_gpa || x->used_gpa != y->used_gpa ||
		    x->last_avail != y->last_avail || x->used_idx != y->used_idx ||
		    x->signalled_used != y->signalled_used ||
		    x->signalled_valid != y->signalled_valid || x->event_idx != y->event_idx ||
		    x->indirect != y->indirect || x->broken != y->broken)
			return false;
	}
	return true;
}

static bool same_payload(const struct devstate *a, const struct devstate *b)
{
	return a->s && b->s && a->s->len == b->s->len &&
	       !memcmp(a->s->payload, b->s->payload, a->s->len);
}

static int save_virtio(struct vg_mmio *m, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO, VIRTIO_STATE_VERSION))
		return -1;
	int r = virtio_mmio_save(&m->t, &ds->w);
	return r ? r : devstate_finish(ds);
}

static int restore_virtio(struct vg_mmio *m, struct devstate *ds)
{
	struct vmstate_cursor c;
	char err[256] = "";

	devstate_cursor(ds, &c);
	int r = virtio_mmio_restore(&m->t, &c, err, sizeof(err));
	if (r)
		printf("  restore: %s\n", err);
	return r;
}

/* The refusal names the device and mentions want. */
static void check_err(int r, const char *err, const char *name, const char *want)
{
	CHECK(r == -EINVAL);
	CHECK(!strncmp(err, name, strlen(name)));
	if (!strstr(err, want)) {
		printf("  refusal '%s' does not mention '%s'\n", err, want);
		CHECK(false);
	}
}

/* ---- virtio-blk ---- */

#define BLK_HDR_GPA 0x300000ULL	 /* 32 bytes per slot: header, then the status byte */
#define BLK_DATA_GPA 0x400000ULL /* 4 KiB per slot */
#define IMAGE (1u << 20)

struct bfx {
	struct virtio_blk b;
	struct vg_mmio m;
};

static int image_new(char *path, size_t len, off_t size)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/tern-vstate-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd >= 0 && ftruncate(fd, size)) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

static struct bfx *bfx_new(struct vg_guest *g, const char *path, bool readonly,
			   enum disk_engine engine)
{
	struct bfx *f = calloc(1, sizeof(*f));
	struct disk_open_args a = {
		.path = path, .readonly = readonly, .engine = engine, .loop = test_loop
	};
	const char *why;

	if (!f)
		return NULL;
	if (disk_open(&f->b.disk, &a, &why)) {
		printf("  note: cannot open the image with engine %d: %s\n", engine, why);
		free(f);
		return NULL;
	}
	virtio_blk_init(&f->b, &g->mem, "virtio-blk0", true, "disk0");
	if (vg_attach(&f->m, &f->b.dev)) {
		disk_close(&f->b.disk);
		free(f);
		return NULL;
	}
	return f;
}

static void bfx_free(struct bfx *f)
{
	if (!f)
		return;
	/* Late completions land before the engine goes. */
	run_loop(5);
	disk_close(&f->b.disk);
	free(f);
}

static uint8_t *gp(struct vg_guest *g, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&g->mem, gpa, len);
}

/* A request in slot (its header, 512 bytes of data unless FLUSH, status); no kick. */
static uint16_t blk_req(struct vg_guest *g, unsigned int slot, uint32_t type, uint64_t sector)
{
	uint64_t h = BLK_HDR_GPA + 32ULL * slot, data = BLK_DATA_GPA + 4096ULL * slot;
	uint8_t hdr[16] = { 0 };
	struct vg_seg s[3];
	unsigned int n = 0;

	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	guest_mem_write(&g->mem, h, hdr, 16);
	*gp(g, h + 16, 1) = 0xff;
	s[n++] = (struct vg_seg){ h, 16, false };
	if (type != VIRTIO_BLK_T_FLUSH)
		s[n++] = (struct vg_seg){ data, 512, type == VIRTIO_BLK_T_IN };
	s[n++] = (struct vg_seg){ h + 16, 1, true };
	return vg_chain(g, 0, s, n);
}

static uint8_t blk_status(struct vg_guest *g, unsigned int slot)
{
	return *gp(g, BLK_HDR_GPA + 32ULL * slot + 16, 1);
}

static bool data_is(struct vg_guest *g, unsigned int slot, uint8_t seed)
{
	const uint8_t *p = gp(g, BLK_DATA_GPA + 4096ULL * slot, 512);

	for (unsigned int i = 0; i < 512; i++)
		if (p[i] != (uint8_t)(seed + i * 7))
			return false;
	return true;
}

static int save_blk(struct bfx *f, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO_BLK, VIRTIO_BLK_STATE_VERSION))
		return -1;
	int r = virtio_blk_save(&f->b, &ds->w);
	return r ? r : devstate_finish(ds);
}

static void blk_roundtrip(enum disk_engine engine)
{
	struct vg_guest g;
	struct devstate sv, sb, sv2;
	struct vmstate_cursor c;
	char path[256], other[256], err[256] = "";

	REQUIRE(setup(&g));
	int fd = image_new(path, sizeof(path), IMAGE);
	REQUIRE(fd >= 0);
	struct bfx *a = bfx_new(&g, path, false, engine);
	if (!a) {
		close(fd);
		unlink(path);
		guest_mem_destroy(&g.mem);
		return; /* io_uring unavailable here: the threads case covers the rest */
	}
	REQUIRE(vg_start(&a->m, &g, 1));

	/* A write goes through as usual. */
	uint8_t *p = gp(&g, BLK_DATA_GPA, 512);
	for (unsigned int i = 0; i < 512; i++)
		p[i] = (uint8_t)(0x31 + i * 7);
	blk_req(&g, 0, VIRTIO_BLK_T_OUT, 2);
	vg_kick(&a->m, 0);
	CHECK(wait_used(&g, 0, 1, 2000) && blk_status(&g, 0) == VIRTIO_BLK_S_OK);

	/*
	 * Paused: the loop no longer runs disk completions, so requests kicked just before
	 * stay in flight and the device cannot be saved until drained.
	 */
	REQUIRE(loop_set_paused(test_loop, true) == 0);
	blk_req(&g, 1, VIRTIO_BLK_T_IN, 2);
	blk_req(&g, 2, VIRTIO_BLK_T_FLUSH, 0);
	vg_kick(&a->m, 0);
	run_loop(20);
	CHECK(vg_used_idx(&g, 0) == 1);
	CHECK(!virtio_blk_quiesced(&a->b));
	CHECK(save_blk(a, &sb) == -EBUSY);
	devstate_free(&sb);
	CHECK(save_virtio(&a->m, &sv) == -EBUSY);
	devstate_free(&sv);
	CHECK(virtio_blk_drain(&a->b, 5000) == 0);
	CHECK(virtio_blk_quiesced(&a->b));
	CHECK(vg_used_idx(&g, 0) == 3);
	CHECK(blk_status(&g, 1) == VIRTIO_BLK_S_OK && data_is(&g, 1, 0x31));
	CHECK(blk_status(&g, 2) == VIRTIO_BLK_S_OK);
	CHECK(virtio_blk_drain(&a->b, 0) == 0); /* nothing left: at once */

	/* A request made available but never kicked, and a flush that failed. */
	memset(gp(&g, BLK_DATA_GPA + 4096 * 3, 512), 0, 512);
	blk_req(&g, 3, VIRTIO_BLK_T_IN, 2);
	pthread_mutex_lock(&a->b.dev.lock);
	a->b.disk.flush_failed = true;
	pthread_mutex_unlock(&a->b.dev.lock);
	REQUIRE(save_virtio(&a->m, &sv) == 0);
	REQUIRE(save_blk(a, &sb) == 0);
	CHECK(loop_set_paused(test_loop, false) == 0);

	/* The old process is gone (its image lock too); a new one restores. */
	struct virtio_dev saved = a->b.dev;
	bfx_free(a);
	struct bfx *b = bfx_new(&g, path, false, engine);
	REQUIRE(b);
	devstate_cursor(&sb, &c);
	CHECK(virtio_blk_restore(&b->b, &c, err, sizeof(err)) == 0);
	CHECK(restore_virtio(&b->m, &sv) == 0);
	CHECK(same_core(&saved, &b->b.dev));
	CHECK(b->b.disk.flush_failed);
	REQUIRE(save_virtio(&b->m, &sv2) == 0);
	CHECK(same_payload(&sv, &sv2));
	devstate_free(&sv2);

	virtio_dev_resume_kick(&b->b.dev);
	CHECK(wait_used(&g, 0, 4, 2000) && blk_status(&g, 3) == VIRTIO_BLK_S_OK);
	CHECK(data_is(&g, 3, 0x31));
	/* New requests: a flush still fails after the restore; a read completes. */
	blk_req(&g, 4, VIRTIO_BLK_T_FLUSH, 0);
	vg_kick(&b->m, 0);
	CHECK(wait_used(&g, 0, 5, 2000) && blk_status(&g, 4) == VIRTIO_BLK_S_IOERR);
	uint16_t head = blk_req(&g, 5, VIRTIO_BLK_T_IN, 2);
	vg_kick(&b->m, 0);
	CHECK(wait_used(&g, 0, 6, 2000) && blk_status(&g, 5) == VIRTIO_BLK_S_OK);
	CHECK(vg_used_id(&g, 0, 5) == head && vg_used_len(&g, 0, 5) == 513);
	CHECK(data_is(&g, 5, 0x31));
	bfx_free(b);

	/* Refusals: another capacity, a payload of the wrong size, a read-only disk. */
	int ofd = image_new(other, sizeof(other), 2 * IMAGE);
	REQUIRE(ofd >= 0);
	struct bfx *x = bfx_new(&g, other, false, engine);
	REQUIRE(x);
	devstate_cursor(&sb, &c);
	check_err(virtio_blk_restore(&x->b, &c, err, sizeof(err)), err,
		  "virtio-blk0: ", "capacity: 1048576 bytes in the snapshot, the disk has 2097152");
	CHECK(!x->b.disk.flush_failed);
	bfx_free(x);
	CHECK(ftruncate(ofd, IMAGE) == 0);
	x = bfx_new(&g, other, false, engine);
	REQUIRE(x);
	devstate_altered(&sb, &c, sb.s->len + 1, SIZE_MAX, 0);
	check_err(virtio_blk_restore(&x->b, &c, err, sizeof(err)), err,
		  "virtio-blk0: ", "past the end");
	devstate_altered(&sb, &c, sb.s->len - 1, SIZE_MAX, 0);
	check_err(virtio_blk_restore(&x->b, &c, err, sizeof(err)), err,
		  "virtio-blk0: ", "truncated");
	devstate_altered(&sb, &c, sb.s->len, 8, 2); /* flush_failed: neither 0 nor 1 */
	check_err(virtio_blk_restore(&x->b, &c, err, sizeof(err)), err,
		  "virtio-blk0: ", "malformed");
	CHECK(!x->b.disk.flush_failed);
	bfx_free(x);
	x = bfx_new(&g, other, true, engine);
	REQUIRE(x);
	devstate_cursor(&sv, &c);
	check_err(virtio_mmio_restore(&x->m.t, &c, err, sizeof(err)), err,
		  "virtio-blk0: ", "features: the snapshot's device offered");
	CHECK(x->b.dev.status == 0 && x->b.dev.q[0].size == 0);
	bfx_free(x);

	devstate_free(&sv);
	devstate_free(&sb);
	close(ofd);
	unlink(other);
	close(fd);
	unlink(path);
	guest_mem_destroy(&g.mem);
}

TEST(virtio_state_blk_threads)
{
	blk_roundtrip(DISK_ENGINE_THREADS);
}

TEST(virtio_state_blk_io_uring)
{
	blk_roundtrip(DISK_ENGINE_IO_URING);
}

/* ---- virtio-net over a fake backend ---- */

#define RX_GPA 0x500000ULL
#define TX_GPA 0x600000ULL
#define CTRL_GPA 0x700000ULL /* command header; the ack byte at +0x10 */
#define FRAME 60
#define NET_OFFLOADS_ALL                                                   \
	(NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_GUEST_CSUM) |       \
	 NET_F(VIRTIO_NET_F_GUEST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO6) | \
	 NET_F(VIRTIO_NET_F_GUEST_ECN) | NET_F(VIRTIO_NET_F_HOST_TSO4) |   \
	 NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN))

struct fake_be {
	struct net_backend be;
	uint8_t frame[NET_HDR_LEN + FRAME];
	unsigned int waiting, sent;
	uint64_t offloads;
	unsigned int offload_calls;
};

static int fake_send(struct net_backend *be, const struct iovec *iov, unsigned int n)
{
	((struct fake_be *)be)->sent++;
	return 0;
}

static ssize_t fake_recv(struct net_backend *be, void *buf, size_t len)
{
	struct fake_be *f = (struct fake_be *)be;
	uint64_t v;

	if (!f->waiting) {
		if (read(be->poll_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
		return -EAGAIN;
	}
	f->waiting--;
	memcpy(buf, f->frame, sizeof(f->frame));
	return sizeof(f->frame);
}

static int fake_set_offloads(struct net_backend *be, uint64_t features)
{
	struct fake_be *f = (struct fake_be *)be;

	f->offloads = features;
	f->offload_calls++;
	return 0;
}

static void fake_close(struct net_backend *be)
{
	close(be->poll_fd);
	free(be);
}

static const struct net_backend_ops fake_ops = {
	.send = fake_send,
	.recv = fake_recv,
	.set_offloads = fake_set_offloads,
	.close = fake_close,
};

static struct fake_be *fake_new(void)
{
	struct fake_be *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->be.ops = &fake_ops;
	f->be.poll_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->be.vnet_hdr = true;
	f->be.features = NET_OFFLOADS_ALL;
	snprintf(f->be.name, sizeof(f->be.name), "fake");
	for (unsigned int i = 0; i < FRAME; i++)
		f->frame[NET_HDR_LEN + i] = (uint8_t)i;
	return f;
}

static void fake_push(struct fake_be *f)
{
	uint64_t one = 1;

	f->waiting++;
	if (write(f->be.poll_fd, &one, sizeof(one)) < 0)
		printf("  note: eventfd write failed\n");
}

struct nfx {
	struct virtio_net n;
	struct fake_be *be;
	struct vg_mmio m;
};

static struct nfx *nfx_new(struct vg_guest *g, uint8_t mac0, uint16_t mtu)
{
	struct nfx *f = calloc(1, sizeof(*f));
	uint8_t mac[6] = { 0x52, 0x54, 0, 0, 0, mac0 };

	if (!f || !(f->be = fake_new())) {
		free(f);
		return NULL;
	}
	if (virtio_net_init(&f->n, &g->mem, "virtio-net0", &f->be->be, mac, mtu, test_loop) ||
	    vg_attach(&f->m, &f->n.dev)) {
		fake_close(&f->be->be);
		free(f);
		return NULL;
	}
	return f;
}

static void nfx_free(struct nfx *f)
{
	virtio_net_destroy(&f->n);
	free(f);
}

static int save_net(struct nfx *f, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO_NET, VIRTIO_NET_STATE_VERSION))
		return -1;
	int r = virtio_net_save(&f->n, &ds->w);
	return r ? r : devstate_finish(ds);
}

static uint16_t rx_post(struct vg_guest *g, unsigned int slot)
{
	struct vg_seg s = { RX_GPA + 0x1000ULL * slot, 2048, true };

	return vg_chain(g, VIRTIO_NET_RXQ, &s, 1);
}

/* The status field of the net config space, read as the guest reads it. */
static uint16_t net_status(struct vg_mmio *m)
{
	uint16_t st = 0;

	virtio_mmio_io(&m->t, 0x100 + 6, (uint8_t *)&st, 2, false);
	return st;
}

/* ANNOUNCE_ACK through the control queue; returns the ack byte. */
static uint8_t net_ack_announce(struct vg_guest *g, struct vg_mmio *m)
{
	struct vg_seg s[2] = { { CTRL_GPA, 2, false }, { CTRL_GPA + 0x10, 1, true } };
	uint8_t *p = gp(g, CTRL_GPA, 0x11);

	p[0] = VIRTIO_NET_CTRL_ANNOUNCE;
	p[1] = VIRTIO_NET_CTRL_ANNOUNCE_ACK;
	p[0x10] = 0xee;
	vg_chain(g, VIRTIO_NET_CTRLQ, s, 2);
	vg_kick(m, VIRTIO_NET_CTRLQ);
	return p[0x10];
}

static void tx_send(struct vg_guest *g, struct vg_mmio *m, unsigned int slot)
{
	uint64_t gpa = TX_GPA + 0x1000ULL * slot;
	struct vg_seg s = { gpa, NET_HDR_LEN + FRAME, false };

	memset(gp(g, gpa, NET_HDR_LEN + FRAME), 0, NET_HDR_LEN + FRAME);
	vg_chain(g, VIRTIO_NET_TXQ, &s, 1);
	vg_kick(m, VIRTIO_NET_TXQ);
}

TEST(virtio_state_net)
{
	enum log_level level = log_get_level();
	struct vg_guest g;
	struct devstate sv, sn, sv2;
	struct vmstate_cursor c;
	char err[256] = "";

	log_set_level(LOG_ERROR); /* what the restore tells the user (MAC, CID) */
	REQUIRE(setup(&g));
	struct nfx *a = nfx_new(&g, 0xa, 1500);
	REQUIRE(a && vg_start(&a->m, &g, 3));
	uint64_t negotiated = a->n.dev.driver_features;
	CHECK(a->be->offload_calls == 1 && a->be->offloads == negotiated);
	CHECK((negotiated & NET_OFFLOADS_ALL) == NET_OFFLOADS_ALL);
	rx_post(&g, 0);
	uint16_t second = rx_post(&g, 1);
	vg_kick(&a->m, VIRTIO_NET_RXQ);
	fake_push(a->be);
	CHECK(wait_used(&g, VIRTIO_NET_RXQ, 1, 1000));
	CHECK(vg_used_len(&g, VIRTIO_NET_RXQ, 0) == NET_HDR_LEN + FRAME);
	tx_send(&g, &a->m, 0);
	CHECK(vg_used_idx(&g, VIRTIO_NET_TXQ) == 1 && a->be->sent == 1);
	/* Asked to announce; the snapshot is taken before the driver acks. */
	CHECK(net_ack_announce(&g, &a->m) == VIRTIO_NET_ERR); /* nothing pending: no OK */
	virtio_net_announce(&a->n);
	CHECK(vg_rd(&a->m, VG_INT_STATUS) & VIRTIO_ISR_CONFIG);
	CHECK(net_status(&a->m) == (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE));
	REQUIRE(save_virtio(&a->m, &sv) == 0);
	REQUIRE(save_net(a, &sn) == 0);
	struct virtio_dev saved = a->n.dev;
	nfx_free(a);

	/* Configured with another (say random) MAC: the guest's stays. */
	struct nfx *b = nfx_new(&g, 0xb, 1500);
	REQUIRE(b);
	devstate_cursor(&sn, &c);
	CHECK(virtio_net_restore(&b->n, &c, err, sizeof(err)) == 0);
	CHECK(restore_virtio(&b->m, &sv) == 0);
	CHECK(same_core(&saved, &b->n.dev));
	CHECK(b->n.mac[5] == 0xa);
	/* The announcement is still pending: the guest reads it and acks it here. */
	CHECK(net_status(&b->m) == (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE));
	REQUIRE(save_virtio(&b->m, &sv2) == 0);
	CHECK(same_payload(&sv, &sv2));
	devstate_free(&sv2);
	/* The backend gets the negotiated offloads when the device goes on, as at DRIVER_OK. */
	CHECK(b->be->offload_calls == 0);
	virtio_dev_resume_kick(&b->n.dev);
	CHECK(b->be->offload_calls == 1 && b->be->offloads == negotiated);
	/* The buffer posted before the save takes the next frame. */
	fake_push(b->be);
	CHECK(wait_used(&g, VIRTIO_NET_RXQ, 2, 1000));
	CHECK(vg_used_id(&g, VIRTIO_NET_RXQ, 1) == second);
	tx_send(&g, &b->m, 1);
	CHECK(vg_used_idx(&g, VIRTIO_NET_TXQ) == 2 && b->be->sent == 1);
	CHECK(net_ack_announce(&g, &b->m) == VIRTIO_NET_OK);
	CHECK(net_status(&b->m) == VIRTIO_NET_S_LINK_UP && vg_used_idx(&g, VIRTIO_NET_CTRLQ) == 2);
	nfx_free(b);

	/* Refusals: another MTU, a payload of the wrong size; the MAC stays as configured. */
	struct nfx *x = nfx_new(&g, 0xc, 9000);
	REQUIRE(x);
	devstate_cursor(&sn, &c);
	check_err(virtio_net_restore(&x->n, &c, err, sizeof(err)), err,
		  "virtio-net0: ", "MTU 1500 in the snapshot, 9000 configured");
	nfx_free(x);
	x = nfx_new(&g, 0xc, 1500);
	REQUIRE(x);
	devstate_altered(&sn, &c, sn.s->len + 1, SIZE_MAX, 0);
	check_err(virtio_net_restore(&x->n, &c, err, sizeof(err)), err,
		  "virtio-net0: ", "past the end");
	devstate_altered(&sn, &c, 7, SIZE_MAX, 0);
	check_err(virtio_net_restore(&x->n, &c, err, sizeof(err)), err,
		  "virtio-net0: ", "truncated");
	devstate_altered(&sn, &c, 8, SIZE_MAX, 0); /* version 1's payload: no flags */
	check_err(virtio_net_restore(&x->n, &c, err, sizeof(err)), err,
		  "virtio-net0: ", "truncated");
	devstate_altered(&sn, &c, sn.s->len, 8, 0x03);
	check_err(virtio_net_restore(&x->n, &c, err, sizeof(err)), err,
		  "virtio-net0: ", "flags 0x03");
	CHECK(!x->n.announce);
	CHECK(x->n.mac[5] == 0xc);
	nfx_free(x);

	devstate_free(&sv);
	devstate_free(&sn);
	log_set_level(level);
	guest_mem_destroy(&g.mem);
}

/* ---- virtio-vsock ---- */

#define VS_RX_GPA 0x700000ULL
#define VS_TX_GPA 0x800000ULL
#define VS_EV_GPA 0x900000ULL
#define VS_RX_BUF (VSOCK_HDR_SIZE + 4096)

struct vfx {
	struct virtio_vsock v;
	struct vg_mmio m;
	char dir[64], path[128];
};

static struct vfx *vfx_new(struct vg_guest *g, uint64_t cid)
{
	struct vfx *f = calloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR"), *why;

	if (!f)
		return NULL;
	snprintf(f->dir, sizeof(f->dir), "%s/tvst-XXXXXX", t && *t && strlen(t) < 40 ? t : "/tmp");
	if (!mkdtemp(f->dir)) {
		free(f);
		return NULL;
	}
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	int r = virtio_vsock_init(&f->v, &g->mem, test_loop, cid, f->path, &why);
	if (r) {
		printf("  virtio_vsock_init: %s: %s\n", why, strerror(-r));
		rmdir(f->dir);
		free(f);
		return NULL;
	}
	if (vg_attach(&f->m, &f->v.dev)) {
		virtio_vsock_destroy(&f->v);
		rmdir(f->dir);
		free(f);
		return NULL;
	}
	return f;
}

static void vfx_free(struct vfx *f)
{
	virtio_vsock_destroy(&f->v);
	rmdir(f->dir);
	free(f);
}

static int save_vsock(struct vfx *f, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO_VSOCK, VIRTIO_VSOCK_STATE_VERSION))
		return -1;
	int r = virtio_vsock_save(&f->v, &ds->w);
	return r ? r : devstate_finish(ds);
}

static uint16_t vs_rx_post(struct vg_guest *g, unsigned int slot)
{
	struct vg_seg s = { VS_RX_GPA + 0x2000ULL * slot, VS_RX_BUF, true };

	return vg_chain(g, VSOCK_RXQ, &s, 1);
}

static void vs_ev_post(struct vg_guest *g, unsigned int slot)
{
	struct vg_seg s = { VS_EV_GPA + 0x100ULL * slot, VSOCK_EVENT_SIZE, true };

	memset(gp(g, s.gpa, 4), 0xee, 4);
	vg_chain(g, VSOCK_EVQ, &s, 1);
}

/* A REQUEST from guest port 1234 to a host port nobody listens on: answered with RST. */
static void vs_connect(struct vg_guest *g, struct vg_mmio *m, uint64_t cid, unsigned int slot)
{
	struct vsock_hdr h = {
		.src_cid = cid,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = 1234,
		.dst_port = 5555,
		.type = VSOCK_TYPE_STREAM,
		.op = VSOCK_OP_REQUEST,
		.buf_alloc = 65536,
	};
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vg_seg s = { VS_TX_GPA + 0x100ULL * slot, VSOCK_HDR_SIZE, false };

	vsock_hdr_encode(&h, raw);
	guest_mem_write(&g->mem, s.gpa, raw, sizeof(raw));
	vg_chain(g, VSOCK_TXQ, &s, 1);
	vg_kick(m, VSOCK_TXQ);
}

static uint16_t rx_op(struct vg_guest *g, uint16_t i)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;

	guest_mem_read(&g->mem, VS_RX_GPA + 0x2000ULL * vg_used_id(g, VSOCK_RXQ, i), raw,
		       sizeof(raw));
	vsock_hdr_decode(raw, &h);
	return h.op;
}

TEST(virtio_state_vsock)
{
	enum log_level level = log_get_level();
	struct vg_guest g;
	struct devstate sv, ss;
	struct vmstate_cursor c;
	char err[256] = "";

	log_set_level(LOG_ERROR); /* what the restore tells the user (MAC, CID) */
	REQUIRE(setup(&g));
	struct vfx *a = vfx_new(&g, 3);
	REQUIRE(a && vg_start(&a->m, &g, 3));
	for (unsigned int i = 0; i < 4; i++)
		vs_rx_post(&g, i);
	vg_kick(&a->m, VSOCK_RXQ);
	vs_ev_post(&g, 0);
	vs_ev_post(&g, 1);
	vg_kick(&a->m, VSOCK_EVQ);
	CHECK(vg_used_idx(&g, VSOCK_EVQ) == 0); /* nothing to announce in a first boot */
	vs_connect(&g, &a->m, 3, 0);
	CHECK(vg_used_idx(&g, VSOCK_TXQ) == 1 && vg_used_idx(&g, VSOCK_RXQ) == 1);
	CHECK(rx_op(&g, 0) == VSOCK_OP_RST);
	/* An rx buffer popped and held (as when a packet waits for the host socket). */
	pthread_mutex_lock(&a->v.dev.lock);
	a->v.dev.q[VSOCK_RXQ].last_avail++;
	a->v.rx_held = true;
	pthread_mutex_unlock(&a->v.dev.lock);
	REQUIRE(save_virtio(&a->m, &sv) == 0);
	REQUIRE(save_vsock(a, &ss) == 0);
	/* The save gave the held buffer back to the ring. */
	CHECK(!a->v.rx_held && a->v.dev.q[VSOCK_RXQ].last_avail == 1);
	struct virtio_dev saved = a->v.dev;
	vfx_free(a);

	/* Another CID in the new configuration; a host program connects before the restore. */
	struct vfx *b = vfx_new(&g, 7);
	REQUIRE(b);
	int hs = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, b->path, strlen(b->path) + 1);
	REQUIRE(hs >= 0 && connect(hs, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	for (int i = 0; i < 50 && b->v.nconns == 0; i++)
		loop_run_once(test_loop, 1);
	CHECK(b->v.nconns == 1);
	devstate_cursor(&ss, &c);
	CHECK(virtio_vsock_restore(&b->v, &c, err, sizeof(err)) == 0);
	CHECK(restore_virtio(&b->m, &sv) == 0);
	CHECK(same_core(&saved, &b->v.dev));
	CHECK(b->v.cid == 7 && b->v.nconns == 0 && b->v.reset_event);
	char byte;
	CHECK(recv(hs, &byte, 1, MSG_DONTWAIT) == 0); /* dropped: the host sees the close */
	close(hs);
	CHECK(vg_used_idx(&g, VSOCK_EVQ) == 0); /* not before the VM goes on */

	/* Going on: the guest learns of the reset through its first event buffer. */
	virtio_dev_resume_kick(&b->v.dev);
	CHECK(vg_used_idx(&g, VSOCK_EVQ) == 1 && !b->v.reset_event);
	CHECK(vg_used_id(&g, VSOCK_EVQ, 0) == 0 && vg_used_len(&g, VSOCK_EVQ, 0) == 4);
	CHECK(vg_get32(&g, VS_EV_GPA) == VSOCK_EVENT_TRANSPORT_RESET);
	virtio_dev_resume_kick(&b->v.dev);
	CHECK(vg_used_idx(&g, VSOCK_EVQ) == 1); /* once */
	/* New traffic with the new CID; its answer lands in the buffer once held. */
	vs_connect(&g, &b->m, 7, 1);
	CHECK(vg_used_idx(&g, VSOCK_TXQ) == 2 && vg_used_idx(&g, VSOCK_RXQ) == 2);
	CHECK(vg_used_id(&g, VSOCK_RXQ, 1) == 1 && rx_op(&g, 1) == VSOCK_OP_RST);
	vfx_free(b);

	/* With no event buffer posted, the reset waits for the driver's next one. */
	struct vg_guest g2;
	struct devstate sv2, ss2;
	REQUIRE(setup(&g2));
	struct vfx *a2 = vfx_new(&g2, 3);
	REQUIRE(a2 && vg_start(&a2->m, &g2, 3));
	REQUIRE(save_virtio(&a2->m, &sv2) == 0);
	REQUIRE(save_vsock(a2, &ss2) == 0);
	vfx_free(a2);
	struct vfx *e = vfx_new(&g2, 3);
	REQUIRE(e);
	devstate_cursor(&ss2, &c);
	CHECK(virtio_vsock_restore(&e->v, &c, err, sizeof(err)) == 0);
	CHECK(restore_virtio(&e->m, &sv2) == 0);
	virtio_dev_resume_kick(&e->v.dev);
	CHECK(e->v.reset_event && vg_used_idx(&g2, VSOCK_EVQ) == 0);
	vs_ev_post(&g2, 0);
	vg_kick(&e->m, VSOCK_EVQ);
	CHECK(!e->v.reset_event && vg_used_idx(&g2, VSOCK_EVQ) == 1);
	CHECK(vg_get32(&g2, VS_EV_GPA) == VSOCK_EVENT_TRANSPORT_RESET);
	vfx_free(e);
	devstate_free(&sv2);
	devstate_free(&ss2);
	guest_mem_destroy(&g2.mem);

	/* Refusals */
	struct vfx *x = vfx_new(&g, 3);
	REQUIRE(x);
	devstate_altered(&ss, &c, ss.s->len + 1, SIZE_MAX, 0);
	check_err(virtio_vsock_restore(&x->v, &c, err, sizeof(err)), err,
		  "virtio-vsock: ", "past the end");
	devstate_altered(&ss, &c, ss.s->len, 0, 2); /* CID 2: the host's */
	check_err(virtio_vsock_restore(&x->v, &c, err, sizeof(err)), err,
		  "virtio-vsock: ", "guest CID 2");
	devstate_altered(&ss, &c, 8, SIZE_MAX, 0);
	check_err(virtio_vsock_restore(&x->v, &c, err, sizeof(err)), err,
		  "virtio-vsock: ", "truncated");
	CHECK(!x->v.reset_event);
	vfx_free(x);

	devstate_free(&sv);
	devstate_free(&ss);
	log_set_level(level);
	guest_mem_destroy(&g.mem);
}

/* ---- virtio-rng ---- */

static int save_rng(struct virtio_rng *r, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO_RNG, VIRTIO_RNG_STATE_VERSION))
		return -1;
	int ret = virtio_rng_save(r, &ds->w);
	return ret ? ret : devstate_finish(ds);
}

static uint16_t rng_req(struct vg_guest *g, unsigned int slot)
{
	struct vg_seg s = { VG_DATA + 0x100ULL * slot, 64, true };

	return vg_chain(g, 0, &s, 1);
}

TEST(virtio_state_rng)
{
	struct vg_guest g;
	struct devstate sv, sr;
	struct vmstate_cursor c;
	struct virtio_rng a = { 0 }, b = { 0 }, x = { 0 };
	struct vg_mmio am, bm, xm;
	char err[256] = "";

	REQUIRE(setup(&g));
	virtio_rng_init(&a, &g.mem);
	REQUIRE(vg_attach(&am, &a.dev) == 0 && vg_start(&am, &g, 1));
	rng_req(&g, 0);
	vg_kick(&am, 0);
	CHECK(vg_used_idx(&g, 0) == 1 && vg_used_len(&g, 0, 0) == 64);
	uint16_t pending = rng_req(&g, 1);
	REQUIRE(save_virtio(&am, &sv) == 0);
	REQUIRE(save_rng(&a, &sr) == 0);
	CHECK(sr.s->len == 0);

	virtio_rng_init(&b, &g.mem);
	REQUIRE(vg_attach(&bm, &b.dev) == 0);
	devstate_cursor(&sr, &c);
	CHECK(virtio_rng_restore(&b, &c, err, sizeof(err)) == 0);
	CHECK(restore_virtio(&bm, &sv) == 0);
	CHECK(same_core(&a.dev, &b.dev));
	virtio_dev_resume_kick(&b.dev);
	CHECK(vg_used_idx(&g, 0) == 2 && vg_used_id(&g, 0, 1) == pending);
	uint16_t head = rng_req(&g, 2);
	vg_kick(&bm, 0);
	CHECK(vg_used_idx(&g, 0) == 3 && vg_used_id(&g, 0, 2) == head);

	virtio_rng_init(&x, &g.mem);
	REQUIRE(vg_attach(&xm, &x.dev) == 0);
	devstate_altered(&sr, &c, 1, SIZE_MAX, 0);
	check_err(virtio_rng_restore(&x, &c, err, sizeof(err)), err,
		  "virtio-rng: ", "this version has none");
	/* A queue bigger than the device's maximum (256) in the core section */
	devstate_altered(&sv, &c, sv.s->len, 30, 0);
	sv.alt[31] = 2; /* queue 0 size 512 */
	check_err(virtio_mmio_restore(&xm.t, &c, err, sizeof(err)), err,
		  "virtio-rng: ", "queue 0: size");
	CHECK(x.dev.status == 0 && !x.dev.q[0].ready);

	devstate_free(&sv);
	devstate_free(&sr);
	guest_mem_destroy(&g.mem);
}
