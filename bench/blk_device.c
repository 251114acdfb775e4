/*
 * Device-side throughput of tern's virtio-blk (src/virtio/blk.c + src/backend/disk*.c)
 * next to the host doing the same I/O on the same file by itself. Built and run by
 * bench/blk (see bench/README.md); it can also be run alone.
 *
 * The tern side is the real device: a struct virtio_blk over a memfd guest_mem, its
 * disk engine (io_uring or the thread pool) and tern's event loop. A small driver in
 * this file plays the guest: it negotiates like a driver does, keeps --qd requests in
 * flight (header, one data descriptor, status byte; 3 descriptors each), kicks the
 * queue the way the MMIO transport does (virtio_dev_notify with the device lock held)
 * and runs the loop, which delivers the completions. No VM and no vCPU: what is
 * measured is the device and the engine, not a guest.
 *
 * The host side is plain system calls on the same file opened the same way:
 * pread/pwrite from one thread (queue depth 1), and io_uring with the same queue depth
 * as the driver (IORING_OP_READ/WRITE).
 *
 * Every runner runs for --seconds, then drains what it has in flight; throughput is
 * bytes completed / time from the first submission to the last completion. Random
 * offsets come from one fixed-seed sequence, the same for every runner.
 *
 * Output: one "result ..." line of key=value pairs per run (bench/blk formats them).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "core/log.h"
#include "core/loop.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"

#define QSIZE 256
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA 0x3000ULL
#define HDR_GPA 0x10000ULL /* 32 bytes per slot: 16-byte header, status byte at +16 */
#define DATA_GPA (1ULL << 20)
#define BUF_MAX (1ULL << 20) /* the largest request: 1 MiB */
#define QD_MAX 64	     /* 3 descriptors per request in a 256-entry queue: 85 at most */

enum pattern { SEQ_READ, SEQ_WRITE, RAND_READ, RAND_WRITE, NPATTERNS };

static const struct {
	const char *name;
	uint32_t bs;
	bool write, random;
} patterns[NPATTERNS] = {
	[SEQ_READ] = { "seq-read", 1u << 20, false, false },
	[SEQ_WRITE] = { "seq-write", 1u << 20, true, false },
	[RAND_READ] = { "rand-read", 4096, false, true },
	[RAND_WRITE] = { "rand-write", 4096, true, true },
};

struct opts {
	const char *path; /* an existing file to use, or NULL for a temporary one */
	const char *dir;
	uint64_t size;
	double seconds;
	unsigned int qd;
	bool cache_writeback, cache_none;
	bool tern_uring, tern_threads, host_sync, host_uring;
	unsigned int only; /* bitmask of patterns; 0 = all */
	unsigned int rounds;
};

/* What one run did. */
struct run {
	unsigned long long ops, bytes, errors;
	double secs;
};

/* The offsets one run visits: sequential wraps around the file; random is 4 KiB aligned. */
struct offsets {
	enum pattern p;
	uint64_t size, next, rng;
};

static void offsets_init(struct offsets *o, enum pattern p, uint64_t size)
{
	o->p = p;
	o->size = size;
	o->next = 0;
	o->rng = 0x9e3779b97f4a7c15ULL; /* the same sequence for every runner */
}

static uint64_t offsets_next(struct offsets *o)
{
	uint64_t bs = patterns[o->p].bs, blocks = o->size / bs;

	if (!patterns[o->p].random) {
		uint64_t off = o->next;
		o->next = (o->next + bs) % (blocks * bs);
		return off;
	}
	/* xorshift64* */
	o->rng ^= o->rng >> 12;
	o->rng ^= o->rng << 25;
	o->rng ^= o->rng >> 27;
	return ((o->rng * 0x2545f4914f6cdd1dULL) >> 11) % blocks * bs;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_run(const char *cache, enum pattern p, const char *runner, unsigned int qd,
		      const struct run *r, const char *note)
{
	printf("result cache=%s pattern=%s bs=%u runner=%s qd=%u ops=%llu bytes=%llu errors=%llu "
	       "secs=%.6f%s%s\n",
	       cache, patterns[p].name, patterns[p].bs, runner, qd, r->ops, r->bytes, r->errors,
	       r->secs, note ? " note=" : "", note ? note : "");
	fflush(stdout);
}

/* ---- host: pread/pwrite, one thread ---- */

static int host_sync(int fd, uint8_t *buf, enum pattern p, uint64_t size, double seconds,
		     struct run *r)
{
	struct offsets o;
	uint32_t bs = patterns[p].bs;
	bool wr = patterns[p].write;

	offsets_init(&o, p, size);
	memset(r, 0, sizeof(*r));
	double t0 = now(), end = t0 + seconds, t;
	do {
		uint64_t off = offsets_next(&o);
		ssize_t k = wr ? pwrite(fd, buf, bs, (off_t)off) : pread(fd, buf, bs, (off_t)off);
		if (k != (ssize_t)bs) {
			r->errors++;
			if (k < 0 && errno != EINTR)
				return -errno;
		} else {
			r->ops++;
			r->bytes += bs;
		}
		t = now();
	} while (t < end);
	r->secs = t - t0;
	return 0;
}

/* ---- host: io_uring with the driver's queue depth ---- */

static int host_uring(int fd, uint8_t *bufs, unsigned int qd, enum pattern p, uint64_t size,
		      double seconds, struct run *r)
{
	struct io_uring ring;
	struct offsets o;
	uint32_t bs = patterns[p].bs;
	bool wr = patterns[p].write;
	unsigned int inflight = 0;
	int e;

	if ((e = io_uring_queue_init(qd, &ring, 0)) < 0)
		return e;
	offsets_init(&o, p, size);
	memset(r, 0, sizeof(*r));
	double t0 = now(), end = t0 + seconds, t = t0;
	for (unsigned int i = 0; i < qd; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		uint8_t *b = bufs + (uint64_t)i * BUF_MAX;
		if (wr)
			io_uring_prep_write(sqe, fd, b, bs, offsets_next(&o));
		else
			io_uring_prep_read(sqe, fd, b, bs, offsets_next(&o));
		io_uring_sqe_set_data64(sqe, i);
		inflight++;
	}
	io_uring_submit(&ring);
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0, again = 0;
		if ((e = io_uring_wait_cqe(&ring, &cqe)) < 0) {
			if (e == -EINTR)
				continue;
			break;
		}
		t = now();
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			unsigned int i = (unsigned int)io_uring_cqe_get_data64(cqe);
			n++;
			inflight--;
			if (cqe->res != (int)bs) {
				r->errors++;
			} else {
				r->ops++;
				r->bytes += bs;
			}
			if (t < end) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				uint8_t *b = bufs + (uint64_t)i * BUF_MAX;
				if (wr)
					io_uring_prep_write(sqe, fd, b, bs, offsets_next(&o));
				else
					io_uring_prep_read(sqe, fd, b, bs, offsets_next(&o));
				io_uring_sqe_set_data64(sqe, i);
				inflight++;
				again++;
			}
		}
		io_uring_cq_advance(&ring, n);
		if (again)
			io_uring_submit(&ring);
	}
	r->secs = t - t0;
	io_uring_queue_exit(&ring);
	return e < 0 && e != -EINTR ? e : 0;
}

/* ---- tern: the virtio-blk device and its engine, driven through its rings ---- */

struct drv {
	struct guest_mem mem;
	struct virtio_blk *b;
	struct loop *loop;
	uint16_t avail_idx, last_used;
	unsigned long long signals, kicks;
};

static void on_signal(struct virtio_dev *d, unsigned int q)
{
	struct drv *v = ((struct virtio_blk *)d->priv)->dev.transport;
	v->signals++;
}

static void on_config(struct virtio_dev *d)
{
}

static uint8_t *gp(struct drv *v, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&v->mem, gpa, len);
}

static void put16(struct drv *v, uint64_t gpa, uint16_t x)
{
	memcpy(gp(v, gpa, 2), &x, 2);
}

/* Reset, ACKNOWLEDGE, DRIVER, every offered feature, FEATURES_OK, queue 0, DRIVER_OK. */
static bool drv_start(struct drv *v)
{
	struct virtio_dev *d = &v->b->dev;
	const uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	bool ok;

	pthread_mutex_lock(&d->lock);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_dev_set_status(d, s);
	d->driver_features = virtio_dev_features(d);
	virtio_dev_set_status(d, s | VIRTIO_STATUS_FEATURES_OK);
	ok = d->status & VIRTIO_STATUS_FEATURES_OK;
	d->q[0].size = QSIZE;
	d->q[0].desc_gpa = DESC_GPA;
	d->q[0].avail_gpa = AVAIL_GPA;
	d->q[0].used_gpa = USED_GPA;
	ok = ok && virtio_dev_enable_queue(d, 0);
	virtio_dev_set_status(d, s | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ok = ok && virtio_dev_live(d);
	pthread_mutex_unlock(&d->lock);
	return ok;
}

static void put_desc(struct drv *v, uint16_t idx, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *dp = gp(v, DESC_GPA + 16ULL * idx, 16);
	memcpy(dp, &addr, 8);
	memcpy(dp + 8, &len, 4);
	memcpy(dp + 12, &flags, 2);
	memcpy(dp + 14, &next, 2);
}

/* Slot i owns descriptors 3i..3i+2 and data buffer i; makes the request and publishes it. */
static void drv_queue(struct drv *v, unsigned int i, enum pattern p, uint64_t off)
{
	uint16_t h = (uint16_t)(3 * i);
	uint64_t hdr = HDR_GPA + 32ULL * i;
	uint32_t type = patterns[p].write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	uint64_t sector = off / VIRTIO_BLK_SECTOR;
	uint8_t *hp = gp(v, hdr, 17);

	memset(hp, 0, 16);
	memcpy(hp, &type, 4);
	memcpy(hp + 8, &sector, 8);
	hp[16] = 0xff;
	put_desc(v, h, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(h + 1));
	put_desc(v, (uint16_t)(h + 1), DATA_GPA + BUF_MAX * i, patterns[p].bs,
		 (uint16_t)(VIRTQ_DESC_F_NEXT | (patterns[p].write ? 0 : VIRTQ_DESC_F_WRITE)),
		 (uint16_t)(h + 2));
	put_desc(v, (uint16_t)(h + 2), hdr + 16, 1, VIRTQ_DESC_F_WRITE, 0);
	put16(v, AVAIL_GPA + 4 + 2ULL * (v->avail_idx % QSIZE), h);
	v->avail_idx++;
}

static void drv_publish_and_kick(struct drv *v)
{
	__atomic_store_n((uint16_t *)gp(v, AVAIL_GPA + 2, 2), v->avail_idx, __ATOMIC_RELEASE);
	pthread_mutex_lock(&v->b->dev.lock);
	virtio_dev_notify(&v->b->dev, 0);
	pthread_mutex_unlock(&v->b->dev.lock);
	v->kicks++;
}

static int tern_run(struct drv *v, unsigned int qd, enum pattern p, uint64_t size, double seconds,
		    struct run *r)
{
	struct offsets o;
	uint32_t bs = patterns[p].bs;
	unsigned int inflight = 0;
	uint16_t *used_idx = (uint16_t *)gp(v, USED_GPA + 2, 2);
	unsigned long long before = v->b->stats.read_ops + v->b->stats.write_ops;

	offsets_init(&o, p, size);
	memset(r, 0, sizeof(*r));
	double t0 = now(), end = t0 + seconds, t = t0;
	for (unsigned int i = 0; i < qd; i++, inflight++)
		drv_queue(v, i, p, offsets_next(&o));
	drv_publish_and_kick(v);
	while (inflight) {
		int n = loop_run_once(v->loop, 1000);
		if (n < 0)
			return n;
		uint16_t u = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);
		if (u == v->last_used)
			continue;
		t = now();
		unsigned int again = 0;
		for (; v->last_used != u; v->last_used++) {
			uint64_t e = USED_GPA + 4 + 8ULL * (v->last_used % QSIZE);
			uint32_t id;
			memcpy(&id, gp(v, e, 4), 4);
			unsigned int i = id / 3;
			inflight--;
			if (id % 3 || i >= qd || *gp(v, HDR_GPA + 32ULL * i + 16, 1) != 0) {
				r->errors++;
				continue;
			}
			r->ops++;
			r->bytes += bs;
			if (t < end) {
				drv_queue(v, i, p, offsets_next(&o));
				inflight++;
				again++;
			}
		}
		/* used_event: interrupt me at the next completion (what a busy driver asks). */
		put16(v, AVAIL_GPA + 4 + 2ULL * QSIZE, v->last_used);
		if (again)
			drv_publish_and_kick(v);
	}
	r->secs = t - t0;
	if (v->b->stats.read_ops + v->b->stats.write_ops - before != r->ops + r->errors)
		return -EPROTO; /* the device saw a different number of requests */
	if (!virtio_dev_live(&v->b->dev))
		return -EPROTO;
	return 0;
}

static int tern_open(struct drv *v, struct loop *loop, const char *path, bool direct,
		     enum disk_engine engine, unsigned int qd, const char **why)
{
	struct disk_open_args a = {
		.path = path, .direct = direct, .engine = engine, .loop = loop
	};
	int e;

	memset(v, 0, sizeof(*v));
	v->loop = loop;
	if ((e = guest_mem_create(&v->mem, DATA_GPA + BUF_MAX * qd))) {
		*why = "cannot create guest memory";
		return e;
	}
	/* Touch every page now, so no run pays for first faults. */
	memset(v->mem.host, 0, v->mem.size);
	v->b = calloc(1, sizeof(*v->b));
	if (!v->b) {
		guest_mem_destroy(&v->mem);
		*why = "out of memory";
		return -ENOMEM;
	}
	if ((e = disk_open(&v->b->disk, &a, why))) {
		free(v->b);
		guest_mem_destroy(&v->mem);
		return e;
	}
	virtio_blk_init(v->b, &v->mem, "bench-blk", !direct, "bench");
	v->b->dev.signal_queue = on_signal;
	v->b->dev.signal_config = on_config;
	v->b->dev.transport = v;
	if (!drv_start(v)) {
		disk_close(&v->b->disk);
		free(v->b);
		guest_mem_destroy(&v->mem);
		*why = "the device did not come up";
		return -EPROTO;
	}
	return 0;
}

static void tern_close(struct drv *v)
{
	/* Nothing is in flight after a run; a few turns of the loop for safety. */
	for (int i = 0; i < 5 && v->b->inflight; i++)
		loop_run_once(v->loop, 10);
	disk_close(&v->b->disk);
	free(v->b);
	guest_mem_destroy(&v->mem);
}

/* ---- the file ---- */

static int make_file(const struct opts *o, char *path, size_t n)
{
	int fd;

	if (o->path) {
		snprintf(path, n, "%s", o->path);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	} else {
		snprintf(path, n, "%s/tern-blkbench-XXXXXX", o->dir);
		fd = mkostemp(path, O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	/* Real data everywhere (holes would read faster than a disk's blocks). */
	uint8_t *buf = malloc(BUF_MAX);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	uint64_t x = 0x1234567;
	for (size_t i = 0; i < BUF_MAX / 8; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		memcpy(buf + 8 * i, &x, 8);
	}
	int e = 0;
	for (uint64_t off = 0; off < o->size && !e; off += BUF_MAX) {
		buf[0] = (uint8_t)(off >> 20);
		if (pwrite(fd, buf, BUF_MAX, (off_t)off) != (ssize_t)BUF_MAX)
			e = errno ? -errno : -EIO;
	}
	free(buf);
	if (!e && (ftruncate(fd, (off_t)o->size) < 0 || fdatasync(fd) < 0))
		e = -errno;
	close(fd);
	return e;
}

/* Opens the file the way the disk layer does for this cache mode; *direct says if O_DIRECT held. */
static int host_open(const char *path, bool none, bool *direct)
{
	int fd;

	*direct = false;
	if (!none)
		return open(path, O_RDWR | O_CLOEXEC);
	fd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT | O_DSYNC);
	if (fd < 0 && errno == EINVAL)
		return open(path, O_RDWR | O_CLOEXEC | O_DSYNC); /* tmpfs: as disk_open does */
	*direct = fd >= 0;
	return fd;
}

enum runner { HOST_SYNC, HOST_URING, TERN_URING, TERN_THREADS, NRUNNERS };

/* One run of one runner; prints its result line. Returns 1 on a failure that matters. */
static int run_one(const struct opts *o, struct loop *loop, const char *path, int fd, bool none,
		   bool direct, uint8_t *bufs, enum pattern p, enum runner which)
{
	static const char *const names[NRUNNERS] = { "host-sync", "host-uring", "tern-io_uring",
						     "tern-threads" };
	const bool on[NRUNNERS] = { o->host_sync, o->host_uring, o->tern_uring, o->tern_threads };
	const char *name = names[which], *why = NULL, *cache = none ? "none" : "writeback";
	struct run r;
	struct drv v;
	char note[160];
	int e;

	if (!on[which])
		return 0;
	/* Each run starts with no dirty pages of this file left over from the one before. */
	fdatasync(fd);
	switch (which) {
	case HOST_SYNC:
		e = host_sync(fd, bufs, p, o->size, o->seconds, &r);
		print_run(cache, p, name, 1, &r, e ? strerror(-e) : NULL);
		return e || r.errors;
	case HOST_URING:
		if ((e = host_uring(fd, bufs, o->qd, p, o->size, o->seconds, &r))) {
			snprintf(note, sizeof(note), "unavailable:%s", strerror(-e));
			memset(&r, 0, sizeof(r));
			print_run(cache, p, name, o->qd, &r, note);
			return 0; /* no io_uring on this host: the row says so */
		}
		print_run(cache, p, name, o->qd, &r, NULL);
		return r.errors > 0;
	default:
		break;
	}
	enum disk_engine eng = which == TERN_URING ? DISK_ENGINE_IO_URING : DISK_ENGINE_THREADS;
	if ((e = tern_open(&v, loop, path, none, eng, o->qd, &why))) {
		snprintf(note, sizeof(note), "unavailable:%s:%s", why, strerror(-e));
		memset(&r, 0, sizeof(r));
		print_run(cache, p, name, o->qd, &r, note);
		return eng == DISK_ENGINE_THREADS; /* the thread pool must always work */
	}
	if (v.b->disk.direct != direct) {
		fprintf(stderr, "blk-device: %s opened the file unlike the host side\n", name);
		tern_close(&v);
		return 1;
	}
	e = tern_run(&v, o->qd, p, o->size, o->seconds, &r);
	snprintf(note, sizeof(note), "kicks=%llu,interrupts=%llu,engine=%s%s%s", v.kicks, v.signals,
		 disk_engine_name(&v.b->disk), e ? ",error:" : "", e ? strerror(-e) : "");
	print_run(cache, p, name, o->qd, &r, note);
	tern_close(&v);
	return e || r.errors;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: blk-device [options]\n"
		"  --dir DIR          where the temporary file goes (default $TMPDIR or /tmp)\n"
		"  --file PATH        use (and overwrite) this file instead of a temporary one\n"
		"  --size MIB         file size (default 256)\n"
		"  --seconds S        per run (default 0.4)\n"
		"  --rounds N         runs per runner and pattern, order rotated (default 3)\n"
		"  --qd N             requests in flight for tern and host io_uring, 1..%d "
		"(default 32)\n"
		"  --cache C          writeback|none|both (default both)\n"
		"  --runners LIST     comma list of "
		"tern-io_uring,tern-threads,host-sync,host-uring\n"
		"  --patterns LIST    comma list of seq-read,seq-write,rand-read,rand-write\n",
		QD_MAX);
}

static bool parse_list(char *s, bool (*one)(const char *, struct opts *), struct opts *o)
{
	for (char *t = strtok(s, ","); t; t = strtok(NULL, ","))
		if (!one(t, o))
			return false;
	return true;
}

static bool one_runner(const char *t, struct opts *o)
{
	if (!strcmp(t, "tern-io_uring"))
		o->tern_uring = true;
	else if (!strcmp(t, "tern-threads"))
		o->tern_threads = true;
	else if (!strcmp(t, "host-sync"))
		o->host_sync = true;
	else if (!strcmp(t, "host-uring"))
		o->host_uring = true;
	else
		return false;
	return true;
}

static bool one_pattern(const char *t, struct opts *o)
{
	for (unsigned int p = 0; p < NPATTERNS; p++) {
		if (!strcmp(t, patterns[p].name)) {
			o->only |= 1u << p;
			return true;
		}
	}
	return false;
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "dir", required_argument, 0, 'd' },
		{ "file", required_argument, 0, 'f' },
		{ "size", required_argument, 0, 's' },
		{ "seconds", required_argument, 0, 't' },
		{ "qd", required_argument, 0, 'q' },
		{ "cache", required_argument, 0, 'c' },
		{ "runners", required_argument, 0, 'r' },
		{ "patterns", required_argument, 0, 'p' },
		{ "rounds", required_argument, 0, 'n' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *tmp = getenv("TMPDIR");
	bool runners = false;
	char *end;
	int c;

	*o = (struct opts){ .dir = tmp && *tmp ? tmp : "/tmp",
			    .size = 256ULL << 20,
			    .seconds = 0.4,
			    .rounds = 3,
			    .qd = 32,
			    .cache_writeback = true,
			    .cache_none = true };
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 'f':
			o->path = optarg;
			break;
		case 's': {
			unsigned long long m = strtoull(optarg, &end, 10);
			if (*end || m < 16 || m > (1ULL << 20))
				goto bad;
			o->size = m << 20;
			break;
		}
		case 't':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 600))
				goto bad;
			break;
		case 'q': {
			unsigned long q = strtoul(optarg, &end, 10);
			if (*end || q < 1 || q > QD_MAX)
				goto bad;
			o->qd = (unsigned int)q;
			break;
		}
		case 'n': {
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n < 1 || n > 100)
				goto bad;
			o->rounds = (unsigned int)n;
			break;
		}
		case 'c':
			o->cache_writeback =
				!strcmp(optarg, "writeback") || !strcmp(optarg, "both");
			o->cache_none = !strcmp(optarg, "none") || !strcmp(optarg, "both");
			if (!o->cache_writeback && !o->cache_none)
				goto bad;
			break;
		case 'r':
			runners = true;
			if (!parse_list(optarg, one_runner, o))
				goto bad;
			break;
		case 'p':
			if (!parse_list(optarg, one_pattern, o))
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc)
		goto bad;
	if (!runners)
		o->tern_uring = o->tern_threads = o->host_sync = o->host_uring = true;
	return;
bad:
	fprintf(stderr, "blk-device: bad arguments\n");
	usage(stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o;
	char path[4096];
	int e, failures = 0;

	parse(argc, argv, &o);
	log_set_level(LOG_WARN);
	/* There is no loop_destroy: a static pointer keeps LeakSanitizer quiet. */
	static struct loop *loop;
	loop = loop_create();
	uint8_t *bufs = aligned_alloc(4096, BUF_MAX * o.qd);
	if (!loop || !bufs) {
		fprintf(stderr, "blk-device: out of memory\n");
		return 1;
	}
	memset(bufs, 0x5a, BUF_MAX * o.qd);
	double t = now();
	if ((e = make_file(&o, path, sizeof(path)))) {
		fprintf(stderr, "blk-device: cannot create %s: %s\n", path, strerror(-e));
		if (!o.path)
			unlink(path);
		return 1;
	}
	printf("info file=%s size=%llu qd=%u seconds=%.3f rounds=%u prefill_secs=%.3f\n", path,
	       (unsigned long long)o.size, o.qd, o.seconds, o.rounds, now() - t);

	for (int ci = 0; ci < 2; ci++) {
		bool none = ci == 1;
		const char *cache = none ? "none" : "writeback";
		if (none ? !o.cache_none : !o.cache_writeback)
			continue;
		bool direct;
		int fd = host_open(path, none, &direct);
		if (fd < 0) {
			fprintf(stderr, "blk-device: cannot open %s: %s\n", path, strerror(errno));
			failures++;
			continue;
		}
		printf("info cache=%s flags=%s\n", cache,
		       none ? (direct ? "O_DIRECT|O_DSYNC" : "O_DSYNC(no-O_DIRECT-here)") :
			      "page-cache");
		for (unsigned int pi = 0; pi < NPATTERNS; pi++) {
			enum pattern p = (enum pattern)pi;
			if (o.only && !(o.only & (1u << p)))
				continue;
			/* Rounds rotate the order, so no runner always goes first or last. */
			for (unsigned int round = 0; round < o.rounds; round++)
				for (unsigned int j = 0; j < NRUNNERS; j++)
					failures +=
						run_one(&o, loop, path, fd, none, direct, bufs, p,
							(enum runner)((j + round) % NRUNNERS));
		}
		close(fd);
	}
	if (!o.path)
		unlink(path);
	free(bufs);
	return failures ? 1 : 0;
}
