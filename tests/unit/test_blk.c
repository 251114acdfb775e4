/*
 * Tests for the virtio-blk device (src/virtio/blk.c) over a temporary image, a
 * memfd-backed guest_mem and a fake transport: a small in-test driver negotiates,
 * writes descriptors and the avail ring, kicks with the device lock held, and runs
 * the event loop until the used ring moves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/loop.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "vmm/disk_resize.h"
#include "vmm/disk_swap.h"
#include "vmm/vm.h"
#include "unit.h"

#define MEM_SIZE (16u << 20)
#define QSIZE 256
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x3000ULL
#define USED_GPA 0x4000ULL
#define HDR_GPA 0x10000ULL /* request headers and status bytes: 32 bytes per slot */
#define DATA_GPA 0x100000ULL
#define IMAGE_SIZE (1u << 20)

#define F_RO 5
#define F_FLUSH 9
#define F_DISCARD 13
#define F_WRITE_ZEROES 14

static struct loop *test_loop; /* shared by every case; a static pointer is not a leak */

struct drv {
	struct guest_mem mem;
	struct virtio_blk *b;
	char path[256];
	int fd; /* the image, to check what reached it */
	uint16_t next_desc, avail_idx;
	unsigned int signals, config_signals;
	uint64_t refuse; /* features the driver does not accept */
};

static struct drv *cur;

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

static void on_signal(struct virtio_dev *d, unsigned int q)
{
	cur->signals++;
}

static void on_config(struct virtio_dev *d)
{
	cur->config_signals++;
}

static void *gp(struct drv *v, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&v->mem, gpa, len);
}

static void put16(struct drv *v, uint64_t gpa, uint16_t x)
{
	guest_mem_write(&v->mem, gpa, &x, 2);
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

static uint16_t used_idx(struct drv *v)
{
	return get16(v, USED_GPA + 2);
}

static void lock(struct drv *v)
{
	pthread_mutex_lock(&v->b->dev.lock);
}

static void unlock(struct drv *v)
{
	pthread_mutex_unlock(&v->b->dev.lock);
}

/* What a driver does from reset to DRIVER_OK; accepts every offered feature. */
static bool drv_start(struct drv *v)
{
	struct virtio_dev *d = &v->b->dev;
	bool ok;

	memset(gp(v, DESC_GPA, 0x4000), 0, 0x4000);
	v->next_desc = v->avail_idx = 0;
	lock(v);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->driver_features = virtio_dev_features(d) & ~v->refuse;
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK);
	ok = d->status & VIRTIO_STATUS_FEATURES_OK;
	d->q[0].size = QSIZE;
	d->q[0].desc_gpa = DESC_GPA;
	d->q[0].avail_gpa = AVAIL_GPA;
	d->q[0].used_gpa = USED_GPA;
	ok = ok && virtio_dev_enable_queue(d, 0);
	virtio_dev_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ok = ok && virtio_dev_live(d);
	unlock(v);
	return ok;
}

struct blk_opts {
	bool readonly, writeback, no_event_idx;
	enum disk_engine engine;
	const char *id;
};

static struct drv *drv_new(const struct blk_opts *o, off_t image_size)
{
	struct drv *v = calloc(1, sizeof(*v));
	const char *dir = getenv("TMPDIR"), *why;

	if (!test_loop)
		test_loop = loop_create();
	if (!v || !test_loop || guest_mem_create(&v->mem, MEM_SIZE)) {
		free(v);
		return NULL;
	}
	snprintf(v->path, sizeof(v->path), "%s/tern-blk-XXXXXX", dir && *dir ? dir : "/tmp");
	v->fd = mkstemp(v->path);
	v->b = calloc(1, sizeof(*v->b));
	if (v->fd < 0 || !v->b || ftruncate(v->fd, image_size))
		goto fail;
	struct disk_open_args a = {
		.path = v->path,
		.readonly = o->readonly,
		.engine = o->engine ? o->engine : DISK_ENGINE_THREADS,
		.loop = test_loop,
	};
	if (disk_open(&v->b->disk, &a, &why)) {
		printf("  note: cannot open the image with engine %d: %s\n", a.engine, why);
		goto fail;
	}
	virtio_blk_init(v->b, &v->mem, "test-blk", o->writeback, o->id);
	v->b->dev.signal_queue = on_signal;
	v->b->dev.signal_config = on_config;
	v->refuse = o->no_event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0;
	cur = v;
	if (!drv_start(v)) {
		disk_close(&v->b->disk);
		goto fail;
	}
	return v;
fail:
	if (v->fd >= 0) {
		close(v->fd);
		unlink(v->path);
	}
	free(v->b);
	guest_mem_destroy(&v->mem);
	free(v);
	return NULL;
}

static void drv_free(struct drv *v)
{
	/* Let late completions land before the engine goes away. */
	for (int i = 0; i < 20; i++)
		loop_run_once(test_loop, 1);
	disk_close(&v->b->disk);
	close(v->fd);
	unlink(v->path);
	free(v->b);
	guest_mem_destroy(&v->mem);
	free(v);
	cur = NULL;
}

/* Writes a descriptor chain and publishes it; returns the head. Does not kick. */
static uint16_t add_chain(struct drv *v, const struct seg *s, unsigned int n)
{
	uint16_t head = v->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSIZE);
		uint8_t *dp = gp(v, DESC_GPA + 16ULL * idx, 16);
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
	v->next_desc = (uint16_t)((head + n) % QSIZE);
	put16(v, AVAIL_GPA + 4 + 2ULL * (v->avail_idx % QSIZE), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(v, AVAIL_GPA + 2, ++v->avail_idx);
	return head;
}

static void kick(struct drv *v)
{
	lock(v);
	virtio_dev_notify(&v->b->dev, 0); /* transports call it with the lock held */
	unlock(v);
}

/* Runs the loop until the used index reaches want (or tries x 10 ms passed). */
static bool wait_used_for(struct drv *v, uint16_t want, int tries)
{
	for (int i = 0; i < tries && used_idx(v) != want; i++)
		loop_run_once(test_loop, 10);
	return used_idx(v) == want;
}

static bool wait_used(struct drv *v, uint16_t want)
{
	return wait_used_for(v, want, 500);
}

/* Header at slot's place, data segments, then the status byte (set to 0xff first). */
static uint16_t submit(struct drv *v, unsigned int slot, uint32_t type, uint64_t sector,
		       const struct seg *data, unsigned int ndata)
{
	struct seg s[130];
	uint64_t h = HDR_GPA + 32ULL * slot;
	uint8_t hdr[16] = { 0 };

	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	guest_mem_write(&v->mem, h, hdr, 16);
	*(uint8_t *)gp(v, h + 16, 1) = 0xff;
	s[0] = (struct seg){ h, 16, false };
	for (unsigned int i = 0; i < ndata; i++)
		s[1 + i] = data[i];
	s[1 + ndata] = (struct seg){ h + 16, 1, true };
	return add_chain(v, s, ndata + 2);
}

static uint8_t status_of(struct drv *v, unsigned int slot)
{
	return *(uint8_t *)gp(v, HDR_GPA + 32ULL * slot + 16, 1);
}

/* The used element for head, searched in the entries [from, to). */
static bool used_len_of(struct drv *v, uint16_t head, uint16_t from, uint16_t to, uint32_t *len)
{
	for (uint16_t i = from; i != to; i++) {
		uint64_t e = USED_GPA + 4 + 8ULL * (i % QSIZE);
		if (get32(v, e) == head) {
			*len = get32(v, e + 4);
			return true;
		}
	}
	return false;
}

/* One request, start to finish. Returns its status (or -1 when it did not complete). */
static int request(struct drv *v, uint32_t type, uint64_t sector, const struct seg *data,
		   unsigned int ndata, uint32_t *used_len)
{
	uint16_t before = used_idx(v);
	uint16_t head = submit(v, 0, type, sector, data, ndata);
	uint32_t len = ~0u;

	kick(v);
	if (!wait_used(v, (uint16_t)(before + 1)))
		return -1;
	if (!used_len_of(v, head, before, (uint16_t)(before + 1), &len))
		return -2;
	if (used_len)
		*used_len = len;
	return status_of(v, 0);
}

/* A one-range discard / write-zeroes request. */
static int range_request(struct drv *v, uint32_t type, uint64_t sector, uint32_t n, uint32_t flags)
{
	uint8_t r[16];
	uint64_t gpa = HDR_GPA + 0x8000;

	memcpy(r, &sector, 8);
	memcpy(r + 8, &n, 4);
	memcpy(r + 12, &flags, 4);
	guest_mem_write(&v->mem, gpa, r, 16);
	struct seg s = { gpa, 16, false };
	return request(v, type, sector, &s, 1, NULL);
}

static void fill(struct drv *v, uint64_t gpa, size_t n, uint8_t seed)
{
	uint8_t *p = gp(v, gpa, n);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

static bool file_is(struct drv *v, off_t off, size_t n, uint8_t seed)
{
	uint8_t buf[8192];
	if (n > sizeof(buf) || pread(v->fd, buf, n, off) != (ssize_t)n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (buf[i] != (uint8_t)(seed + i * 13))
			return false;
	return true;
}

static bool file_zero(struct drv *v, off_t off, size_t n)
{
	uint8_t buf[8192];
	if (n > sizeof(buf) || pread(v->fd, buf, n, off) != (ssize_t)n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (buf[i])
			return false;
	return true;
}

static bool engine_available(enum disk_engine e)
{
	struct blk_opts o = { .engine = e };
	struct drv *v = drv_new(&o, 4096);

	if (!v) {
		printf("  note: engine %d unavailable here; skipped\n", e);
		return false;
	}
	drv_free(v);
	return true;
}

static void roundtrip(enum disk_engine e)
{
	struct blk_opts o = { .writeback = true, .engine = e };
	struct drv *v;
	uint32_t len;

	if (!engine_available(e))
		return;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));

	/* Write 3 sectors from three segments that cut sectors in odd places. */
	fill(v, DATA_GPA, 1536, 7);
	struct seg w[] = { { DATA_GPA, 100, false },
			   { DATA_GPA + 100, 1000, false },
			   { DATA_GPA + 1100, 436, false } };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 4, w, 3, &len) == VIRTIO_BLK_S_OK);
	CHECK(len == 1); /* only the status byte was written */
	CHECK(file_is(v, 4 * 512, 1536, 7));
	CHECK(v->signals > 0);

	/* Read them back somewhere else, in two segments. */
	memset(gp(v, DATA_GPA + 0x10000, 1536), 0, 1536);
	struct seg r[] = { { DATA_GPA + 0x10000, 1024, true }, { DATA_GPA + 0x10400, 512, true } };
	CHECK(request(v, VIRTIO_BLK_T_IN, 4, r, 2, &len) == VIRTIO_BLK_S_OK);
	CHECK(len == 1537);
	CHECK(!memcmp(gp(v, DATA_GPA, 1536), gp(v, DATA_GPA + 0x10000, 1536), 1536));

	/* The last sector of the disk is readable; one past it is not. */
	struct seg one = { DATA_GPA, 512, true };
	CHECK(request(v, VIRTIO_BLK_T_IN, IMAGE_SIZE / 512 - 1, &one, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(request(v, VIRTIO_BLK_T_IN, IMAGE_SIZE / 512, &one, 1, &len) == VIRTIO_BLK_S_IOERR);
	CHECK(len == 1);

	CHECK(v->b->stats.write_ops == 1 && v->b->stats.write_bytes == 1536);
	CHECK(v->b->stats.read_ops >= 2);
	CHECK(v->b->stats.errors == 1);
	drv_free(v);
}

TEST(blk_write_read_roundtrip_threads)
{
	roundtrip(DISK_ENGINE_THREADS);
}

TEST(blk_write_read_roundtrip_io_uring)
{
	roundtrip(DISK_ENGINE_IO_URING);
}

TEST(blk_bad_requests_complete_with_status)
{
	struct blk_opts o = { .writeback = true };
	struct drv *v;
	uint32_t len;

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	struct seg odd = { DATA_GPA, 100, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &odd, 1, &len) == VIRTIO_BLK_S_IOERR);
	CHECK(len == 1);
	CHECK(request(v, 3, 0, NULL, 0, &len) == VIRTIO_BLK_S_UNSUPP);
	struct seg far = { DATA_GPA, 512, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 1ULL << 60, &far, 1, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(v->b->stats.errors == 3);
	/* None of that breaks the device. */
	CHECK(virtio_dev_live(&v->b->dev));
	fill(v, DATA_GPA, 512, 1);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &far, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, 0, 512, 1));
	drv_free(v);
}

static uint64_t capacity(struct drv *v)
{
	uint64_t sectors;

	lock(v);
	v->b->ops.config_read(&v->b->dev, 0, &sectors, 8);
	unlock(v);
	return sectors;
}

/*
 * A raw image grown on the host while the VM runs (PATCH /drives with the same path):
 * vm_disk_grow() gives the device the new capacity, tells the driver once (a
 * configuration change, a new generation), and the new sectors take I/O. The same size
 * again tells it nothing; a smaller file, a migration copying the disk, a disk that is
 * not there: refused, the size as it was. Given a size (tern_size), tern grows the file.
 */
TEST(blk_takes_the_new_size_of_a_grown_image)
{
	struct blk_opts o = { .writeback = true };
	struct drv *v;
	char err[256];

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	struct vm *vm = calloc(1, sizeof(*vm));
	REQUIRE(vm);
	vm->blk[0] = v->b;
	uint64_t last = IMAGE_SIZE / 512;
	struct seg s = { DATA_GPA, 512, false };
	fill(v, DATA_GPA, 512, 5);
	CHECK(request(v, VIRTIO_BLK_T_OUT, last, &s, 1, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(capacity(v) == last);

	REQUIRE(ftruncate(v->fd, 2 * IMAGE_SIZE + 100) == 0);
	unsigned int signals = v->config_signals;
	uint32_t gen = v->b->dev.config_generation;
	CHECK(vm_disk_grow(vm, 0, 0, err, sizeof(err)) == 0);
	CHECK(capacity(v) == 2 * last);
	CHECK(v->config_signals == signals + 1);
	CHECK(v->b->dev.config_generation == gen + 1);
	CHECK(request(v, VIRTIO_BLK_T_OUT, last, &s, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, IMAGE_SIZE, 512, 5));
	CHECK(request(v, VIRTIO_BLK_T_OUT, 2 * last, &s, 1, NULL) == VIRTIO_BLK_S_IOERR);

	/* Unchanged: nothing to tell. */
	CHECK(vm_disk_grow(vm, 0, 0, err, sizeof(err)) == 0);
	CHECK(v->config_signals == signals + 1);
	/* Smaller: refused. */
	REQUIRE(ftruncate(v->fd, IMAGE_SIZE) == 0);
	CHECK(vm_disk_grow(vm, 0, 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "cannot shrink") != NULL);
	CHECK(capacity(v) == 2 * last);
	REQUIRE(ftruncate(v->fd, 2 * IMAGE_SIZE) == 0);
	/* A migration copying the disk: refused. */
	uint8_t log[8] = { 0 };
	REQUIRE(ftruncate(v->fd, 3 * IMAGE_SIZE) == 0);
	atomic_store(&v->b->write_log, log);
	CHECK(vm_disk_grow(vm, 0, 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "migration is under way") != NULL);
	atomic_store(&v->b->write_log, NULL);
	CHECK(capacity(v) == 2 * last);
	CHECK(vm_disk_grow(vm, 1, 0, err, sizeof(err)) == -EINVAL);

	/* tern_size: tern grows the file itself (sparse), in whole sectors, never shrinking. */
	CHECK(vm_disk_grow(vm, 0, 4 * IMAGE_SIZE + 100, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "multiple of 512") != NULL);
	CHECK(vm_disk_grow(vm, 0, IMAGE_SIZE, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "cannot shrink") != NULL);
	CHECK(vm_disk_grow(vm, 0, 4 * IMAGE_SIZE, err, sizeof(err)) == 0);
	struct stat st;
	CHECK(fstat(v->fd, &st) == 0 && st.st_size == 4 * IMAGE_SIZE);
	CHECK(capacity(v) == 4 * last);
	CHECK(v->config_signals == signals + 2);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 4 * last - 1, &s, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, 4 * IMAGE_SIZE - 512, 512, 5));
	free(vm);
	drv_free(v);
}

static bool mem_is(struct drv *v, uint64_t gpa, size_t n, uint8_t seed)
{
	const uint8_t *p = gp(v, gpa, n);
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed + i * 13))
			return false;
	return true;
}

/*
 * A running VM's drive moved onto a qcow2 overlay of its raw image (PATCH /drives with
 * another path, as a snapshot does it): reads after the swap see the image's data through
 * the overlay, writes land in the overlay and leave the image as it was. A path that
 * cannot be opened is refused and the drive stays where it was, still serving; so is a
 * swap while a migration copies the disk. A larger image gives the guest a larger disk.
 */
TEST(blk_moves_onto_an_overlay_of_its_image)
{
	struct blk_opts o = { .writeback = true };
	struct drv *v;
	char err[600], ovl[300], big[300];

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	struct vm *vm = calloc(1, sizeof(*vm));
	REQUIRE(vm);
	vm->blk[0] = v->b;
	vm->loop = test_loop;
	vm->cfg.ndisks = 1;
	vm->cfg.disks[0] = (struct disk_config){ .path = strdup(v->path),
						 .cache = DISK_CACHE_WRITEBACK,
						 .engine = DISK_ENGINE_THREADS,
						 .format = DISK_FORMAT_RAW };
	atomic_store(&vm->pause.want, true); /* paused: the swap neither pauses nor resumes */
	char *paths[3] = { vm->cfg.disks[0].path }; /* the swap keeps the old strings */
	struct seg s = { DATA_GPA, 512, false }, in = { DATA_GPA + 0x10000, 512, true };
	fill(v, DATA_GPA, 512, 7);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &s, 1, NULL) == VIRTIO_BLK_S_OK);

	snprintf(ovl, sizeof(ovl), "%s.qcow2", v->path);
	struct qcow2_create_args ca = { .path = ovl, .backing = v->path, .backing_format = "raw" };
	REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
	unsigned int signals = v->config_signals;
	CHECK(vm_disk_swap(vm, 0, ovl, DISK_FORMAT_QCOW2, err, sizeof(err)) == 0);
	paths[1] = vm->cfg.disks[0].path;
	CHECK(!strcmp(vm->cfg.disks[0].path, ovl) && vm->cfg.disks[0].swapped);
	CHECK(vm->cfg.disks[0].format == DISK_FORMAT_QCOW2 && v->b->disk.qcow);
	CHECK(v->config_signals == signals); /* the same size: nothing to tell */
	CHECK(request(v, VIRTIO_BLK_T_IN, 0, &in, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(mem_is(v, DATA_GPA + 0x10000, 512, 7));
	fill(v, DATA_GPA, 512, 9);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 1, &s, 1, NULL) == VIRTIO_BLK_S_OK);
	fill(v, DATA_GPA, 512, 11);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &s, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, 0, 512, 7) && file_zero(v, 512, 512)); /* the image is untouched */
	CHECK(request(v, VIRTIO_BLK_T_IN, 1, &in, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(mem_is(v, DATA_GPA + 0x10000, 512, 9));

	/* Not there: refused, and the drive goes on with the overlay. */
	CHECK(vm_disk_swap(vm, 0, "/nonexistent/x.img", DISK_FORMAT_AUTO, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "/nonexistent/x.img") && strstr(err, "the guest stays on"));
	CHECK(!strcmp(vm->cfg.disks[0].path, ovl) && v->b->disk.qcow);
	CHECK(virtio_dev_live(&v->b->dev));
	CHECK(request(v, VIRTIO_BLK_T_IN, 0, &in, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(mem_is(v, DATA_GPA + 0x10000, 512, 11));
	/* A migration copying the disk: refused before anything changes. */
	uint8_t log[8] = { 0 };
	atomic_store(&v->b->write_log, log);
	CHECK(vm_disk_swap(vm, 0, v->path, DISK_FORMAT_RAW, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "migration is under way") != NULL);
	atomic_store(&v->b->write_log, NULL);
	CHECK(vm_disk_swap(vm, 1, v->path, DISK_FORMAT_RAW, err, sizeof(err)) == -EINVAL);

	/* A larger raw image: the guest is told its new size. */
	snprintf(big, sizeof(big), "%s.big", v->path);
	int fd = open(big, O_RDWR | O_CREAT | O_EXCL, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, 2 * IMAGE_SIZE) == 0);
	close(fd);
	CHECK(vm_disk_swap(vm, 0, big, DISK_FORMAT_AUTO, err, sizeof(err)) == 0);
	paths[2] = vm->cfg.disks[0].path;
	CHECK(capacity(v) == 2 * IMAGE_SIZE / 512);
	CHECK(v->config_signals == signals + 1);
	CHECK(!v->b->disk.qcow && v->b->disk.format == DISK_FORMAT_RAW);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 2 * IMAGE_SIZE / 512 - 1, &s, 1, NULL) ==
	      VIRTIO_BLK_S_OK);
	unlink(ovl);
	unlink(big);
	for (int i = 0; i < 3; i++)
		if (i == 0 || paths[i] != paths[i - 1])
			free(paths[i]);
	free(vm);
	drv_free(v);
}

TEST(blk_too_many_segments_is_ioerr)
{
	struct blk_opts o = { 0 };
	struct drv *v;
	struct seg s[VIRTIO_BLK_SEG_MAX + 1];

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	for (unsigned int i = 0; i <= VIRTIO_BLK_SEG_MAX; i++)
		s[i] = (struct seg){ DATA_GPA + 512ULL * i, 512, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, s, VIRTIO_BLK_SEG_MAX + 1, NULL) ==
	      VIRTIO_BLK_S_IOERR);
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, s, VIRTIO_BLK_SEG_MAX, NULL) == VIRTIO_BLK_S_OK);
	CHECK(virtio_dev_live(&v->b->dev));
	drv_free(v);
}

TEST(blk_get_id)
{
	struct blk_opts o = { .id = "tern-test-id" };
	struct drv *v;
	uint32_t len;
	uint8_t want[20] = "tern-test-id";

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	memset(gp(v, DATA_GPA, 20), 0xaa, 20);
	struct seg id = { DATA_GPA, 20, true };
	CHECK(request(v, VIRTIO_BLK_T_GET_ID, 0, &id, 1, &len) == VIRTIO_BLK_S_OK);
	CHECK(len == 21);
	CHECK(!memcmp(gp(v, DATA_GPA, 20), want, 20)); /* NUL-padded */

	/* A shorter buffer gets what fits. */
	memset(gp(v, DATA_GPA, 20), 0xaa, 20);
	id.len = 4;
	CHECK(request(v, VIRTIO_BLK_T_GET_ID, 0, &id, 1, &len) == VIRTIO_BLK_S_OK);
	CHECK(len == 5);
	CHECK(!memcmp(gp(v, DATA_GPA, 4), "tern", 4));
	CHECK(*(uint8_t *)gp(v, DATA_GPA + 4, 1) == 0xaa);
	drv_free(v);

	/* A 20-character id fills the field with no terminator; no id reads as zeros. */
	const char *ids[] = { "abcdefghijklmnopqrst", "abcdefghijklmnopqrstuvwxyz", NULL };
	for (int i = 0; i < 3; i++) {
		o.id = ids[i];
		REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
		memset(gp(v, DATA_GPA, 24), 0xaa, 24);
		id.len = 24;
		CHECK(request(v, VIRTIO_BLK_T_GET_ID, 0, &id, 1, &len) == VIRTIO_BLK_S_OK);
		CHECK(len == 21);
		if (ids[i])
			CHECK(!memcmp(gp(v, DATA_GPA, 20), ids[i], 20));
		else
			CHECK(!memcmp(gp(v, DATA_GPA, 20), (uint8_t[20]){ 0 }, 20));
		CHECK(*(uint8_t *)gp(v, DATA_GPA + 20, 1) == 0xaa);
		drv_free(v);
	}
}

TEST(blk_flush_writeback_and_not)
{
	struct blk_opts o = { .writeback = true };
	struct drv *v;
	uint8_t wb;

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	CHECK(virtio_dev_features(&v->b->dev) & (1ULL << F_FLUSH));
	v->b->ops.config_read(&v->b->dev, 32, &wb, 1);
	CHECK(wb == 1);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_OK);
	CHECK(v->b->stats.flush_ops == 1);
	drv_free(v);

	/* cache=none: every write is durable, there is nothing to flush. */
	o.writeback = false;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	CHECK(!(virtio_dev_features(&v->b->dev) & (1ULL << F_FLUSH)));
	v->b->ops.config_read(&v->b->dev, 32, &wb, 1);
	CHECK(wb == 0);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_UNSUPP);
	drv_free(v);
}

/*
 * fdatasync fails on a pipe (-EINVAL): swapping one in under the image makes the
 * engine report a flush error. Once that happened, no later flush may succeed.
 */
static void flush_failure(enum disk_engine e)
{
	struct blk_opts o = { .writeback = true, .engine = e };
	struct drv *v;
	int p[2];

	if (!engine_available(e))
		return;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	int fd = v->b->disk.fd;
	int saved = dup(fd);
	REQUIRE(saved >= 0 && pipe(p) == 0);
	REQUIRE(dup2(p[0], fd) == fd);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(v->b->disk.flush_failed);
	REQUIRE(dup2(saved, fd) == fd);
	close(saved);
	close(p[0]);
	close(p[1]);

	/* The image is back, flushing would work, but the lost writes stay lost. */
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_IOERR);
	/* Writes and reads still work. */
	fill(v, DATA_GPA, 512, 3);
	struct seg s = { DATA_GPA, 512, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 1, &s, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, 512, 512, 3));
	/* A device reset does not make the page cache trustworthy again either. */
	lock(v);
	virtio_dev_set_status(&v->b->dev, 0);
	unlock(v);
	REQUIRE(drv_start(v));
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_IOERR);
	drv_free(v);
}

TEST(blk_flush_failure_is_sticky_threads)
{
	flush_failure(DISK_ENGINE_THREADS);
}

TEST(blk_flush_failure_is_sticky_io_uring)
{
	flush_failure(DISK_ENGINE_IO_URING);
}

TEST(blk_flush_failed_flag)
{
	struct blk_opts o = { .writeback = true };
	struct drv *v;

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_OK);
	v->b->disk.flush_failed = true;
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(v->b->stats.flush_ops == 1); /* the second never reached the engine */
	drv_free(v);
}

TEST(blk_readonly)
{
	struct blk_opts o = { .readonly = true, .writeback = true };
	struct drv *v;

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	uint64_t f = virtio_dev_features(&v->b->dev);
	CHECK(f & (1ULL << F_RO));
	CHECK(!(f & (1ULL << F_FLUSH)));
	CHECK(!(f & (1ULL << F_DISCARD)));
	CHECK(!(f & (1ULL << F_WRITE_ZEROES)));

	fill(v, DATA_GPA, 512, 9);
	struct seg w = { DATA_GPA, 512, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &w, 1, NULL) == VIRTIO_BLK_S_IOERR);
	CHECK(file_zero(v, 0, 512));
	struct seg r = { DATA_GPA, 512, true };
	CHECK(request(v, VIRTIO_BLK_T_IN, 0, &r, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(*(uint8_t *)gp(v, DATA_GPA, 1) == 0);
	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, 0, 1, 0) == VIRTIO_BLK_S_IOERR);
	CHECK(range_request(v, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0) == VIRTIO_BLK_S_IOERR);
	CHECK(request(v, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_UNSUPP);
	drv_free(v);
}

static void discard(enum disk_engine e)
{
	struct blk_opts o = { .engine = e };
	struct drv *v;

	if (!engine_available(e))
		return;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	uint64_t f = virtio_dev_features(&v->b->dev);
	CHECK(f & (1ULL << F_DISCARD));
	CHECK(f & (1ULL << F_WRITE_ZEROES));
	CHECK(!(f & (1ULL << F_RO)));

	fill(v, DATA_GPA, 8192, 5);
	struct seg w = { DATA_GPA, 8192, false };
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &w, 1, NULL) == VIRTIO_BLK_S_OK);
	REQUIRE(file_is(v, 0, 8192, 5));

	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, 2, 4, 0) == VIRTIO_BLK_S_OK);
	CHECK(range_request(v, VIRTIO_BLK_T_WRITE_ZEROES, 8, 2, 1) == VIRTIO_BLK_S_OK);
	CHECK(range_request(v, VIRTIO_BLK_T_WRITE_ZEROES, 12, 1, 0) == VIRTIO_BLK_S_OK);
	CHECK(file_zero(v, 2 * 512, 4 * 512));
	CHECK(file_zero(v, 8 * 512, 2 * 512));
	CHECK(file_zero(v, 12 * 512, 512));
	uint8_t buf[8192];
	CHECK(pread(v->fd, buf, sizeof(buf), 0) == sizeof(buf));
	for (int s = 0; s < 16; s++) {
		bool zero = (s >= 2 && s < 6) || s == 8 || s == 9 || s == 12;
		uint8_t *p = gp(v, DATA_GPA + 512ULL * s, 512);
		if (zero)
			CHECK(!memcmp(buf + 512 * s, (uint8_t[512]){ 0 }, 512));
		else
			CHECK(!memcmp(buf + 512 * s, p, 512));
	}
	/* The guest reads the zeros back too. */
	memset(gp(v, DATA_GPA + 0x10000, 512), 0xff, 512);
	struct seg r = { DATA_GPA + 0x10000, 512, true };
	CHECK(request(v, VIRTIO_BLK_T_IN, 3, &r, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(!memcmp(gp(v, DATA_GPA + 0x10000, 512), (uint8_t[512]){ 0 }, 512));

	/* Bad ranges and flags. */
	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, IMAGE_SIZE / 512, 1, 0) == VIRTIO_BLK_S_IOERR);
	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, 0, 0, 0) == VIRTIO_BLK_S_IOERR);
	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, 0, 1, 1) == VIRTIO_BLK_S_UNSUPP);
	CHECK(range_request(v, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 2) == VIRTIO_BLK_S_UNSUPP);
	CHECK(v->b->stats.discard_ops == 3);

	/* Where punching does not work the requests are unsupported. */
	v->b->disk.can_punch = false;
	CHECK(range_request(v, VIRTIO_BLK_T_DISCARD, 0, 1, 0) == VIRTIO_BLK_S_UNSUPP);
	CHECK(range_request(v, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0) == VIRTIO_BLK_S_UNSUPP);
	drv_free(v);
}

TEST(blk_discard_write_zeroes_threads)
{
	discard(DISK_ENGINE_THREADS);
}

TEST(blk_discard_write_zeroes_io_uring)
{
	discard(DISK_ENGINE_IO_URING);
}

TEST(blk_malformed_chain_needs_reset)
{
	struct blk_opts o = { 0 };
	struct drv *v;
	enum log_level level = log_get_level();

	log_set_level(LOG_ERROR); /* the guest's mistakes are logged as warnings */
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	/* A header with no writable byte: no place for a status. */
	struct seg bad[] = { { HDR_GPA, 16, false } };
	add_chain(v, bad, 1);
	kick(v);
	CHECK(v->b->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(!virtio_dev_live(&v->b->dev));
	CHECK(v->config_signals == 1);
	CHECK(used_idx(v) == 0);

	/* Further kicks are ignored, even for a good request. */
	fill(v, DATA_GPA, 512, 4);
	struct seg w = { DATA_GPA, 512, false };
	submit(v, 1, VIRTIO_BLK_T_OUT, 0, &w, 1);
	kick(v);
	CHECK(!wait_used_for(v, 1, 20));
	CHECK(file_zero(v, 0, 512));
	CHECK(status_of(v, 1) == 0xff);

	/* The driver cannot clear NEEDS_RESET by writing the status... */
	lock(v);
	virtio_dev_set_status(&v->b->dev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
						  VIRTIO_STATUS_FEATURES_OK |
						  VIRTIO_STATUS_DRIVER_OK);
	unlock(v);
	CHECK(v->b->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	/* ...but a reset does; then I/O works again. */
	lock(v);
	virtio_dev_set_status(&v->b->dev, 0);
	unlock(v);
	CHECK(v->b->dev.status == 0);
	REQUIRE(drv_start(v));
	CHECK(request(v, VIRTIO_BLK_T_OUT, 0, &w, 1, NULL) == VIRTIO_BLK_S_OK);
	CHECK(file_is(v, 0, 512, 4));

	/* A ring-level error (a buffer outside RAM) needs a reset too. */
	struct seg out[] = { { MEM_SIZE - 8, 16, false } };
	add_chain(v, out, 1);
	kick(v);
	CHECK(v->b->dev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(v->config_signals == 2);
	drv_free(v);
	log_set_level(level);
}

static unsigned int free_slots(struct virtio_blk *b)
{
	unsigned int n = 0;
	for (struct blk_inflight *f = b->free; f && n <= 2 * VIRTIO_BLK_QUEUE_SIZE;
	     f = f->next_free)
		n++;
	return n;
}

/*
 * A reset while requests are in the engine: their completions must not touch the new
 * rings, and their slots must come back exactly once (not be handed out while the
 * engine still owns them).
 */
static void reset_inflight(enum disk_engine e)
{
	struct blk_opts o = { .engine = e };
	struct drv *v;

	if (!engine_available(e))
		return;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	struct seg w[8];
	for (unsigned int i = 0; i < 8; i++) {
		w[i] = (struct seg){ DATA_GPA + 4096ULL * i, 4096, false };
		fill(v, w[i].gpa, 4096, (uint8_t)i);
		submit(v, i, VIRTIO_BLK_T_OUT, 8ULL * i, &w[i], 1);
	}
	kick(v);
	CHECK(v->b->stats.write_ops == 8);
	lock(v);
	virtio_dev_set_status(&v->b->dev, 0);
	/* With requests in the engine, the reset is not done: status must not read 0 yet. */
	bool pending = v->b->inflight > 0;
	CHECK(!pending || virtio_dev_status(&v->b->dev) != 0);
	CHECK(!virtio_dev_live(&v->b->dev));
	unlock(v);
	/* The old completions arrive now; they must write nothing back, then status reads 0. */
	for (int i = 0; i < 200 && virtio_dev_status(&v->b->dev) != 0; i++)
		loop_run_once(test_loop, 50);
	CHECK(virtio_dev_status(&v->b->dev) == 0);
	CHECK(v->b->inflight == 0);
	REQUIRE(drv_start(v));
	CHECK(free_slots(v->b) == VIRTIO_BLK_QUEUE_SIZE);
	CHECK(used_idx(v) == 0);
	for (unsigned int i = 0; i < 8; i++)
		CHECK(status_of(v, i) == 0xff);

	/* And the device goes on with all its slots. */
	for (unsigned int i = 0; i < 8; i++)
		submit(v, i, VIRTIO_BLK_T_OUT, 8ULL * i, &w[i], 1);
	kick(v);
	CHECK(wait_used(v, 8));
	for (unsigned int i = 0; i < 8; i++) {
		CHECK(status_of(v, i) == VIRTIO_BLK_S_OK);
		CHECK(file_is(v, 4096 * i, 4096, (uint8_t)i));
	}
	CHECK(free_slots(v->b) == VIRTIO_BLK_QUEUE_SIZE);
	drv_free(v);
}

TEST(blk_reset_with_requests_in_flight_threads)
{
	reset_inflight(DISK_ENGINE_THREADS);
}

TEST(blk_reset_with_requests_in_flight_io_uring)
{
	reset_inflight(DISK_ENGINE_IO_URING);
}

TEST(blk_many_requests_in_flight)
{
	struct blk_opts o = { 0 };
	struct drv *v;
	enum { N = 80 }; /* 3 descriptors each: 240 of the 256 */
	uint16_t head[N];

	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	for (unsigned int i = 0; i < N; i++) {
		struct seg w = { DATA_GPA + 512ULL * i, 512, false };
		fill(v, w.gpa, 512, (uint8_t)(i * 3));
		head[i] = submit(v, i, VIRTIO_BLK_T_OUT, i, &w, 1);
	}
	kick(v);
	CHECK(wait_used(v, N));
	for (unsigned int i = 0; i < N; i++) {
		uint32_t len = 0;
		CHECK(used_len_of(v, head[i], 0, N, &len) && len == 1);
		CHECK(status_of(v, i) == VIRTIO_BLK_S_OK);
		CHECK(file_is(v, 512 * i, 512, (uint8_t)(i * 3)));
	}
	CHECK(v->signals > 0);
	/* EVENT_IDX was negotiated: the device asked for the next kick at avail_idx. */
	CHECK(get16(v, USED_GPA + 4 + 8 * QSIZE) == N);
	CHECK(free_slots(v->b) == VIRTIO_BLK_QUEUE_SIZE);
	drv_free(v);
}

/*
 * Requests that finished together are told of together: without EVENT_IDX a per-request
 * interrupt would make one each; the device makes one per batch of completions.
 */
static void one_interrupt_per_batch(enum disk_engine e)
{
	struct blk_opts o = { .engine = e, .no_event_idx = true };
	struct drv *v;
	enum { N = 32 };

	if (!engine_available(e))
		return;
	REQUIRE((v = drv_new(&o, IMAGE_SIZE)));
	CHECK(!virtio_dev_has(&v->b->dev, VIRTIO_RING_F_EVENT_IDX));
	for (unsigned int i = 0; i < N; i++) {
		struct seg w = { DATA_GPA + 512ULL * i, 512, false };
		fill(v, w.gpa, 512, (uint8_t)i);
		submit(v, i, VIRTIO_BLK_T_OUT, i, &w, 1);
	}
	unsigned int before = v->signals;
	kick(v);
	usleep(300 * 1000); /* the engine finishes them all before the loop looks */
	CHECK(wait_used(v, N));
	for (unsigned int i = 0; i < N; i++)
		CHECK(status_of(v, i) == VIRTIO_BLK_S_OK);
	printf("  note: %u interrupts for %d requests\n", v->signals - before, N);
	CHECK(v->signals - before >= 1 && v->signals - before < N / 2);
	drv_free(v);
}

TEST(blk_one_interrupt_per_batch_of_completions)
{
	one_interrupt_per_batch(DISK_ENGINE_THREADS);
	one_interrupt_per_batch(DISK_ENGINE_IO_URING);
}

TEST(blk_config_space)
{
	struct blk_opts o = { 0 };
	struct drv *v;
	uint8_t c[60];

	REQUIRE((v = drv_new(&o, IMAGE_SIZE + 300))); /* a partial sector does not count */
	CHECK(v->b->ops.config_size == 60);
	v->b->ops.config_read(&v->b->dev, 0, c, sizeof(c));
	uint64_t cap;
	uint32_t u;
	memcpy(&cap, c, 8);
	CHECK(cap == IMAGE_SIZE / 512);
	memcpy(&u, c + 12, 4);
	CHECK(u == VIRTIO_BLK_SEG_MAX);
	memcpy(&u, c + 20, 4);
	CHECK(u == 512);
	memcpy(&u, c + 36, 4);
	CHECK(u == 0xffffffffu >> 9); /* max_discard_sectors */
	memcpy(&u, c + 40, 4);
	CHECK(u == 1); /* max_discard_seg */
	memcpy(&u, c + 44, 4);
	CHECK(u == 1); /* discard_sector_alignment */
	memcpy(&u, c + 48, 4);
	CHECK(u == 0xffffffffu >> 9); /* max_write_zeroes_sectors */
	memcpy(&u, c + 52, 4);
	CHECK(u == 1);	   /* max_write_zeroes_seg */
	CHECK(c[56] == 1); /* write_zeroes_may_unmap */

	/* Narrow reads at any offset see the same bytes. */
	for (uint32_t off = 0; off < 60; off++) {
		for (uint32_t len = 1; len <= 8 && off + len <= 60; len *= 2) {
			uint8_t part[8];
			v->b->ops.config_read(&v->b->dev, off, part, len);
			CHECK(!memcmp(part, c + off, len));
		}
	}
	uint64_t f = virtio_dev_features(&v->b->dev);
	CHECK(f & (1ULL << 2));	 /* SEG_MAX */
	CHECK(f & (1ULL << 6));	 /* BLK_SIZE */
	CHECK(f & (1ULL << 32)); /* VERSION_1 */
	CHECK(f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(f & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	CHECK(!(f & (1ULL << 1))); /* SIZE_MAX is not offered: its field is not filled */
	CHECK(v->b->ops.queue_max == VIRTIO_BLK_QUEUE_SIZE);
	CHECK(v->b->ops.device_id == VIRTIO_ID_BLOCK);
	drv_free(v);
}
