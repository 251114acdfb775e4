/*
 * Tests for disk images (src/backend/disk.c) and both I/O engines: opening, sizing,
 * OFD locking, O_DIRECT fallback, and reads, writes, flushes and hole punches driven
 * through the event loop, including more requests in flight than io_uring's ring holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/disk.h"
#include "core/loop.h"
#include "unit.h"

#define NMANY 600 /* more than io_uring's ring (256) and its completion ring (512) */

/* One loop for every case: there is no loop_destroy, and a static pointer is not a leak. */
static struct loop *test_loop;

static struct loop *the_loop(void)
{
	if (!test_loop)
		test_loop = loop_create();
	return test_loop;
}

/* A temporary image of size bytes; path is filled in. Returns 0 or -1. */
static int make_image_in(const char *dir, char *path, size_t cap, off_t size)
{
	snprintf(path, cap, "%s/tern-disk-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	int r = ftruncate(fd, size);
	close(fd);
	return r;
}

static int make_image(char *path, size_t cap, off_t size)
{
	const char *dir = getenv("TMPDIR");

	return make_image_in(dir && *dir ? dir : "/tmp", path, cap, size);
}

static int open_disk(struct disk *d, const char *path, bool ro, bool direct, enum disk_engine e,
		     const char **why)
{
	struct disk_open_args a = {
		.path = path, .readonly = ro, .direct = direct, .engine = e, .loop = the_loop()
	};
	*why = NULL;
	return disk_open(d, &a, why);
}

struct tracked {
	struct disk_req r;
	int done;
};

static int completions;

static void on_complete(struct disk_req *r)
{
	((struct tracked *)r)->done++;
	completions++;
}

/* Runs the loop until `want` completions arrived (or about five seconds passed). */
static bool drive(int want)
{
	for (int i = 0; i < 500 && completions < want; i++)
		loop_run_once(the_loop(), 10);
	return completions == want;
}

static void prep(struct tracked *t, enum disk_op op, uint64_t off, uint64_t len, struct iovec *iov,
		 int iovcnt)
{
	memset(t, 0, sizeof(*t));
	t->r = (struct disk_req){ .op = op,
				  .offset = off,
				  .len = len,
				  .iov = iov,
				  .iovcnt = iovcnt,
				  .result = 1,
				  .complete = on_complete };
}

/* Submits one request and waits for it; returns its result. */
static int run1(struct disk *d, enum disk_op op, uint64_t off, uint64_t len, struct iovec *iov,
		int iovcnt)
{
	struct tracked t;

	prep(&t, op, off, len, iov, iovcnt);
	completions = 0;
	disk_submit(d, &t.r);
	CHECK(completions == 0); /* never completed inside disk_submit */
	if (!drive(1) || t.done != 1)
		return -ETIMEDOUT;
	return t.r.result;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

TEST(disk_open_sizes)
{
	const off_t sizes[] = { 0, 511, 512, 1000, 4096, (1 << 20) + 100 };
	const uint64_t want[] = { 0, 0, 512, 512, 4096, 1 << 20 };
	char path[256];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct disk d;
		const char *why;
		REQUIRE(make_image(path, sizeof(path), sizes[i]) == 0);
		int r = open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why);
		CHECK(r == 0);
		if (r == 0) {
			CHECK(d.size == want[i]);
			CHECK(!d.readonly);
			CHECK(!d.block_device);
			CHECK(d.fd >= 0);
			CHECK(d.can_punch); /* /tmp file systems punch holes */
			CHECK(!strcmp(disk_engine_name(&d), "threads"));
			disk_close(&d);
			CHECK(d.fd == -1);
		}
		/* Probing hole punching past the end must not grow the file. */
		struct stat st;
		CHECK(stat(path, &st) == 0 && st.st_size == sizes[i]);
		unlink(path);
	}
}

TEST(disk_open_missing_file)
{
	struct disk d;
	const char *why;

	CHECK(open_disk(&d, "/nonexistent/tern-disk", false, false, DISK_ENGINE_THREADS, &why) ==
	      -ENOENT);
	CHECK(why && strstr(why, "open"));
	CHECK(d.fd == -1);
}

TEST(disk_open_readonly)
{
	char path[256];
	struct disk d;
	const char *why;

	REQUIRE(make_image(path, sizeof(path), 8192) == 0);
	REQUIRE(open_disk(&d, path, true, false, DISK_ENGINE_THREADS, &why) == 0);
	CHECK(d.readonly);
	CHECK(!d.can_punch);
	CHECK(d.size == 8192);
	/* The fd itself refuses writes: a read-only image is read-only below tern too. */
	CHECK((fcntl(d.fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	uint8_t buf[512] = { 1 };
	struct iovec iov = { buf, sizeof(buf) };
	CHECK(run1(&d, DISK_WRITE, 0, 512, &iov, 1) == -EBADF);
	CHECK(run1(&d, DISK_READ, 0, 512, &iov, 1) == 0);
	CHECK(all_bytes(buf, sizeof(buf), 0));
	disk_close(&d);
	unlink(path);
}

TEST(disk_open_lock_conflicts)
{
	char path[256];
	struct disk a, b;
	const char *why;

	REQUIRE(make_image(path, sizeof(path), 4096) == 0);

	/* Read-write twice: the second open finds the image locked. */
	REQUIRE(open_disk(&a, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	CHECK(open_disk(&b, path, false, false, DISK_ENGINE_THREADS, &why) == -EAGAIN);
	CHECK(why && strstr(why, "locked"));
	CHECK(b.fd == -1);
	/* A read-only open cannot share an image being written either. */
	CHECK(open_disk(&b, path, true, false, DISK_ENGINE_THREADS, &why) == -EAGAIN);
	CHECK(why && strstr(why, "locked"));
	disk_close(&a);

	/* Closing released the lock. */
	REQUIRE(open_disk(&a, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	disk_close(&a);

	/* Read-only opens share; a writer then has to wait for both. */
	REQUIRE(open_disk(&a, path, true, false, DISK_ENGINE_THREADS, &why) == 0);
	CHECK(open_disk(&b, path, true, false, DISK_ENGINE_THREADS, &why) == 0);
	struct disk c;
	CHECK(open_disk(&c, path, false, false, DISK_ENGINE_THREADS, &why) == -EAGAIN);
	CHECK(why && strstr(why, "locked"));
	disk_close(&b);
	CHECK(open_disk(&c, path, false, false, DISK_ENGINE_THREADS, &why) == -EAGAIN);
	disk_close(&a);
	CHECK(open_disk(&c, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	disk_close(&c);
	unlink(path);
}

TEST(disk_open_not_a_file)
{
	const char *dir = getenv("TMPDIR");
	char path[256];
	struct disk d;
	const char *why;

	snprintf(path, sizeof(path), "%s/tern-disk-dir-XXXXXX", dir && *dir ? dir : "/tmp");
	REQUIRE(mkdtemp(path));
	/* A directory: read-write open fails in open(); read-only reaches the type check. */
	CHECK(open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why) < 0);
	CHECK(d.fd == -1);
	CHECK(open_disk(&d, path, true, false, DISK_ENGINE_THREADS, &why) == -EINVAL);
	CHECK(why && strstr(why, "not a regular file"));

	/* A FIFO: rejected without waiting for a writer, whatever the mode. */
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo", path);
	REQUIRE(mkfifo(fifo, 0600) == 0);
	CHECK(open_disk(&d, fifo, false, false, DISK_ENGINE_THREADS, &why) == -EINVAL);
	CHECK(why && strstr(why, "not a regular file"));
	CHECK(open_disk(&d, fifo, true, false, DISK_ENGINE_THREADS, &why) == -EINVAL);
	CHECK(why && strstr(why, "not a regular file"));
	CHECK(d.fd == -1);

	/* A character device. */
	CHECK(open_disk(&d, "/dev/null", true, false, DISK_ENGINE_THREADS, &why) == -EINVAL);
	unlink(fifo);
	rmdir(path);
}

/* O_DIRECT where the file system allows it, plain O_DSYNC where it does not (tmpfs, old kernels). */
static void direct_roundtrip(const char *dir, enum disk_engine e)
{
	char path[256];
	struct disk d;
	const char *why;

	if (make_image_in(dir, path, sizeof(path), 1 << 16)) {
		printf("  note: cannot create an image in %s; skipped\n", dir);
		return;
	}
	int r = open_disk(&d, path, false, true, e, &why);
	if (r == -ENOSYS || (r && e == DISK_ENGINE_IO_URING)) {
		printf("  note: io_uring unavailable (%d); skipped\n", r);
		unlink(path);
		return;
	}
	REQUIRE(r == 0);
	int fl = fcntl(d.fd, F_GETFL);
	CHECK(fl & O_DSYNC);
	CHECK(!!(fl & O_DIRECT) == d.direct);
	uint8_t *buf = aligned_alloc(4096, 8192);
	REQUIRE(buf);
	memset(buf, 0x5a, 8192);
	struct iovec iov[2] = { { buf, 4096 }, { buf + 4096, 4096 } };
	CHECK(run1(&d, DISK_WRITE, 4096, 8192, iov, 2) == 0);
	memset(buf, 0, 8192);
	CHECK(run1(&d, DISK_READ, 4096, 8192, iov, 2) == 0);
	CHECK(all_bytes(buf, 8192, 0x5a));
	free(buf);
	disk_close(&d);
	unlink(path);
}

TEST(disk_direct_on_tmpfs_falls_back)
{
	direct_roundtrip("/dev/shm", DISK_ENGINE_THREADS);
	direct_roundtrip("/dev/shm", DISK_ENGINE_IO_URING);
}

TEST(disk_direct_on_tmp)
{
	const char *dir = getenv("TMPDIR");

	direct_roundtrip(dir && *dir ? dir : "/tmp", DISK_ENGINE_THREADS);
	direct_roundtrip(dir && *dir ? dir : "/tmp", DISK_ENGINE_IO_URING);
}

/* The same workload on one engine; skipped with a note when the engine cannot start here. */
static void engine_suite(enum disk_engine e, const char *name)
{
	char path[256];
	struct disk d;
	const char *why;
	const uint64_t size = 1 << 20;

	REQUIRE(make_image(path, sizeof(path), (off_t)size) == 0);
	int r = open_disk(&d, path, false, false, e, &why);
	if (r) {
		printf("  note: engine %s unavailable here (%s: %d); skipped\n", name, why, r);
		unlink(path);
		return;
	}
	CHECK(!strcmp(disk_engine_name(&d), name));
	int fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);

	/* A write from three segments of odd sizes, checked with pread. */
	static uint8_t a[1000], b[2000], c[1096], back[4096];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)i;
	memset(b, 0xb2, sizeof(b));
	memset(c, 0xc3, sizeof(c));
	struct iovec wv[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	CHECK(run1(&d, DISK_WRITE, 8192, 4096, wv, 3) == 0);
	CHECK(pread(fd, back, sizeof(back), 8192) == sizeof(back));
	CHECK(!memcmp(back, a, sizeof(a)));
	CHECK(all_bytes(back + 1000, 2000, 0xb2));
	CHECK(all_bytes(back + 3000, 1096, 0xc3));

	/* Read it back into a different split. */
	static uint8_t r0[512], r1[3584];
	struct iovec rv[2] = { { r0, sizeof(r0) }, { r1, sizeof(r1) } };
	CHECK(run1(&d, DISK_READ, 8192, 4096, rv, 2) == 0);
	CHECK(!memcmp(r0, back, 512));
	CHECK(!memcmp(r1, back + 512, 3584));

	CHECK(run1(&d, DISK_FLUSH, 0, 0, NULL, 0) == 0);

	/* Discard the middle 2 KiB (not block-aligned): it reads back as zeros, the rest stays. */
	CHECK(run1(&d, DISK_DISCARD, 8192 + 1024, 2048, NULL, 0) == 0);
	CHECK(pread(fd, back, sizeof(back), 8192) == sizeof(back));
	CHECK(!memcmp(back, a, 1000));
	CHECK(all_bytes(back + 1024, 2048, 0));
	CHECK(all_bytes(back + 3072, 1024, 0xc3));
	CHECK(back[1000] == 0xb2 && back[1023] == 0xb2);

	/* Write-zeroes over a whole written block. */
	memset(back, 0xee, sizeof(back));
	struct iovec one = { back, sizeof(back) };
	CHECK(run1(&d, DISK_WRITE, 65536, 4096, &one, 1) == 0);
	CHECK(run1(&d, DISK_WRITE_ZEROES, 65536, 4096, NULL, 0) == 0);
	CHECK(pread(fd, back, sizeof(back), 65536) == sizeof(back));
	CHECK(all_bytes(back, sizeof(back), 0));
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == size); /* punching keeps the size */

	/* More requests in flight than io_uring has room for: each writes its own sector. */
	static struct tracked t[NMANY];
	static uint8_t buf[NMANY][512];
	static struct iovec iv[NMANY][2];
	completions = 0;
	for (int i = 0; i < NMANY; i++) {
		memset(buf[i], (uint8_t)(i * 7 + 1), 512);
		iv[i][0] = (struct iovec){ buf[i], 256 };
		iv[i][1] = (struct iovec){ buf[i] + 256, 256 };
		prep(&t[i], DISK_WRITE, 131072 + 512ULL * (uint64_t)i, 512, iv[i], 2);
		disk_submit(&d, &t[i].r);
	}
	CHECK(completions == 0);
	CHECK(drive(NMANY));
	int bad = 0;
	for (int i = 0; i < NMANY; i++)
		bad += t[i].done != 1 || t[i].r.result != 0;
	CHECK(bad == 0);
	bad = 0;
	for (int i = 0; i < NMANY; i++) {
		uint8_t s[512];
		bad += pread(fd, s, 512, 131072 + 512 * i) != 512 ||
		       !all_bytes(s, 512, (uint8_t)(i * 7 + 1));
	}
	CHECK(bad == 0);

	/* And as many reads, mixed with flushes. */
	memset(buf, 0, sizeof(buf));
	completions = 0;
	for (int i = 0; i < NMANY; i++) {
		if (i % 50 == 49)
			prep(&t[i], DISK_FLUSH, 0, 0, NULL, 0);
		else
			prep(&t[i], DISK_READ, 131072 + 512ULL * (uint64_t)i, 512, iv[i], 2);
		disk_submit(&d, &t[i].r);
	}
	CHECK(drive(NMANY));
	bad = 0;
	for (int i = 0; i < NMANY; i++) {
		bad += t[i].done != 1 || t[i].r.result != 0;
		if (i % 50 != 49)
			bad += !all_bytes(buf[i], 512, (uint8_t)(i * 7 + 1));
	}
	CHECK(bad == 0);

	/* Reading past the end of the file leaves the buffer alone and succeeds. */
	memset(back, 0x11, sizeof(back));
	CHECK(run1(&d, DISK_READ, size, 4096, &one, 1) == 0);
	CHECK(all_bytes(back, sizeof(back), 0x11));

	/* An error is reported, not swallowed: a read at a negative offset. */
	CHECK(run1(&d, DISK_READ, 1ULL << 63, 512, &one, 1) < 0);

	close(fd);
	disk_close(&d);
	unlink(path);
}

TEST(disk_engine_io_uring)
{
	engine_suite(DISK_ENGINE_IO_URING, "io_uring");
}

/*
 * A new 4 KiB image at path, opened read-write on io_uring: false (and nothing left
 * behind) where this kernel has no io_uring, after a note that the case is skipped.
 */
static bool open_uring_image(struct disk *d, char *path, size_t cap)
{
	const char *why;

	if (make_image(path, cap, 4096)) {
		CHECK(!"cannot make an image");
		return false;
	}
	if (open_disk(d, path, false, false, DISK_ENGINE_IO_URING, &why)) {
		printf("  note: io_uring unavailable; skipped\n");
		unlink(path);
		return false;
	}
	return true;
}

/*
 * The ring runs the operations the engine makes and refuses any other (an open, a
 * no-op): seccomp cannot see io_uring's work, the ring's restrictions can. The ring is
 * the first member of the engine's state (disk_uring.c).
 */
TEST(disk_io_uring_ring_refuses_other_operations)
{
	char path[256];
	struct disk d;

	if (!open_uring_image(&d, path, sizeof(path)))
		return;
	struct io_uring *ring = d.engine_state;
	/* One at a time: the kernel stops a submission at the first entry it refuses. */
	for (int i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		struct io_uring_cqe *cqe;
		REQUIRE(sqe);
		if (i == 0)
			io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDWR, 0);
		else
			io_uring_prep_nop(sqe);
		CHECK(io_uring_submit(ring) == 1);
		REQUIRE(io_uring_wait_cqe(ring, &cqe) == 0);
		CHECK(cqe->res == -EACCES);
		io_uring_cqe_seen(ring, cqe);
	}
	/* Nor can the ring be changed: a probe of registered operations is a register call. */
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	CHECK(probe == NULL);
	free(probe);
	/* Nor can another file take the image's registered slot. */
	int other = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(other >= 0);
	CHECK(io_uring_register_files_update(ring, 0, &other, 1) < 0);
	close(other);
	uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	CHECK(run1(&d, DISK_READ, 0, 512, &iov, 1) == 0);
	disk_close(&d);
	unlink(path);
}

/* The "UserFiles:" count of the ring's /proc/self/fdinfo, or -1. */
static int ring_user_files(const struct io_uring *ring)
{
	char path[64], line[256];
	int n = -1;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ring->ring_fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "UserFiles: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * The image's file is registered with the ring (reads and writes skip the kernel's file
 * lookup), except for a disk opened unlocked, whose file a migration replaces later under
 * the same number. Closing the disk lets go of the file at once: the image can be opened
 * and locked again right away (the ring's own teardown would be too late).
 */
TEST(disk_io_uring_registers_the_image_file)
{
	char path[256];
	struct disk d;
	const char *why;
	uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };

	if (!open_uring_image(&d, path, sizeof(path)))
		return;
	CHECK(ring_user_files(d.engine_state) == 1);
	memset(buf, 7, sizeof(buf));
	CHECK(run1(&d, DISK_WRITE, 512, 512, &iov, 1) == 0);
	memset(buf, 0, sizeof(buf));
	CHECK(run1(&d, DISK_READ, 512, 512, &iov, 1) == 0);
	CHECK(all_bytes(buf, sizeof(buf), 7));
	disk_close(&d);
	CHECK(disk_lock_holder(path, false) == 0);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_IO_URING, &why) == 0);
	disk_close(&d);

	struct disk_open_args a = { .path = path,
				    .engine = DISK_ENGINE_IO_URING,
				    .format = DISK_FORMAT_RAW,
				    .loop = the_loop(),
				    .no_lock = true };
	REQUIRE(disk_open(&d, &a, &why) == 0);
	CHECK(ring_user_files(d.engine_state) == 0);
	CHECK(disk_reopen_locked(&d, &why) == 0);
	CHECK(run1(&d, DISK_READ, 512, 512, &iov, 1) == 0);
	CHECK(all_bytes(buf, sizeof(buf), 7));
	disk_close(&d);
	unlink(path);
}

/*
 * A tern-vmm killed with its disks open (SIGKILL: no disk_close) leaves the image
 * unlocked by the time it is reaped, as QEMU does: the ring, whose teardown the kernel
 * runs later, must not be what holds the locked open file (ternd's destroy, a qemu-img
 * right after a kill). Several rounds, since the ring's teardown may win the race.
 */
TEST(disk_io_uring_lock_ends_with_a_killed_process)
{
	char path[256];
	struct disk d;
	const char *why;

	if (!open_uring_image(&d, path, sizeof(path)))
		return;
	disk_close(&d);
	for (int round = 0; round < 5; round++) {
		int ready[2];
		REQUIRE(pipe(ready) == 0);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			struct disk_open_args a = { .path = path,
						    .engine = DISK_ENGINE_IO_URING,
						    .format = DISK_FORMAT_RAW,
						    .loop = loop_create() };
			int r = disk_open(&d, &a, &why);
			char ok = r == 0 ? 'y' : 'n';
			if (r)
				fprintf(stderr, "child: cannot open the image (%d): %s\n", r,
					why ? why : "");
			if (write(ready[1], &ok, 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		char ok = 0;
		close(ready[1]);
		CHECK(read(ready[0], &ok, 1) == 1 && ok == 'y');
		close(ready[0]);
		CHECK(disk_lock_holder(path, false) == 1);
		kill(pid, SIGKILL);
		REQUIRE(waitpid(pid, NULL, 0) == pid);
		CHECK(disk_lock_holder(path, false) == 0);
	}
	unlink(path);
}

TEST(disk_engine_threads)
{
	engine_suite(DISK_ENGINE_THREADS, "threads");
}

/* Plugged, requests wait for the unplug that hands them over, and all complete. */
static void plug_holds(enum disk_engine e)
{
	char path[256];
	struct disk d;
	const char *why;
	uint8_t buf[3][512];
	struct iovec iov[3];
	struct tracked t[3];

	REQUIRE(make_image(path, sizeof(path), 1 << 20) == 0);
	REQUIRE(open_disk(&d, path, false, false, e, &why) == 0);
	completions = 0;
	disk_plug(&d);
	disk_plug(&d); /* nested: the outer unplug is the one that counts */
	for (int i = 0; i < 3; i++) {
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		prep(&t[i], DISK_READ, 512ULL * (unsigned int)i, 512, &iov[i], 1);
		disk_submit(&d, &t[i].r);
	}
	disk_unplug(&d);
	for (int i = 0; i < 20; i++)
		loop_run_once(the_loop(), 10);
	/* A worker thread already awake may take them; io_uring's kernel never sees them. */
	CHECK(e == DISK_ENGINE_THREADS || completions == 0);
	disk_unplug(&d);
	CHECK(drive(3));
	for (int i = 0; i < 3; i++)
		CHECK(t[i].done == 1 && t[i].r.result == 0);
	/* Unplugged, a request goes at once. */
	CHECK(run1(&d, DISK_READ, 0, 512, &iov[0], 1) == 0);
	disk_close(&d);
	unlink(path);
}

TEST(disk_plug_holds_requests_until_unplug)
{
	plug_holds(DISK_ENGINE_THREADS);
	plug_holds(DISK_ENGINE_IO_URING);
}

/* How many threads of this process are named name. */
static int threads_named(const char *name)
{
	char path[64], comm[32];
	int n = 0;
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;

	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
		FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, name, strlen(name)) &&
		    comm[strlen(name)] == '\n')
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

/* threads_named(name) once it is want (a new thread names itself), or after a second. */
static int threads_named_soon(const char *name, int want)
{
	int n = threads_named(name);

	for (int i = 0; i < 100 && n != want; i++) {
		loop_run_once(the_loop(), 10);
		n = threads_named(name);
	}
	return n;
}

/*
 * The thread pool starts with 4 workers and grows, up to 32, while requests wait and
 * workers spend long on them. Here every request counts as long (disk_threads_slow_ns 0):
 * 40 submitted under a plug make the workers that take them ask the loop for more; all
 * complete; closing the disk ends every worker (writes: reads of cached data need none). Requests that never wait (one at a time)
 * leave it at 4.
 */
TEST(disk_threads_pool_grows_while_requests_wait)
{
	enum { N = 40 };
	char path[256];
	struct disk d;
	const char *why;
	static uint8_t buf[N][512];
	struct iovec iov[N];
	struct tracked t[N];
	int before = threads_named("disk-io");

	REQUIRE(make_image(path, sizeof(path), 1 << 20) == 0);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	CHECK(threads_named_soon("disk-io", before + 4) == before + 4);
	/* One at a time: no request waits, no worker is added. */
	for (int i = 0; i < 8; i++) {
		iov[0] = (struct iovec){ buf[0], sizeof(buf[0]) };
		CHECK(run1(&d, DISK_READ, 0, 512, &iov[0], 1) == 0);
	}
	CHECK(threads_named("disk-io") == before + 4);
	uint64_t slow = disk_threads_slow_ns;
	disk_threads_slow_ns = 0;
	completions = 0;
	disk_plug(&d);
	for (int i = 0; i < N; i++) {
		/* Writes: a cached read would be answered without a worker. */
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		prep(&t[i], DISK_WRITE, 512ULL * (unsigned int)i, 512, &iov[i], 1);
		disk_submit(&d, &t[i].r);
	}
	disk_unplug(&d);
	CHECK(drive(N));
	disk_threads_slow_ns = slow;
	for (int i = 0; i < N; i++)
		CHECK(t[i].done == 1 && t[i].r.result == 0);
	int grown = threads_named_soon("disk-io", before + 5) - before;
	CHECK(grown > 4 && grown <= 32);
	disk_close(&d);
	CHECK(threads_named("disk-io") == before);
	unlink(path);
}

/* Are all pages of [off, off+len) of fd in the page cache? -1 when it cannot tell. */
static int cached(int fd, off_t off, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = (len + (size_t)pg - 1) / (size_t)pg;
	unsigned char vec[64];
	void *m = n <= sizeof(vec) ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off) : MAP_FAILED;

	if (m == MAP_FAILED)
		return -1;
	int r = mincore(m, len, vec);
	munmap(m, len);
	if (r < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(vec[i] & 1))
			return 0;
	return 1;
}

/*
 * The thread pool answers a small read of cached data on the submitting thread
 * (RWF_NOWAIT) and sends the rest to its workers: a read larger than 64 KiB, a read of
 * data not in the page cache (and, after such a miss, the next read too), a cache=none
 * disk's reads. Every one returns the file's bytes and completes on the loop.
 */
TEST(disk_threads_reads_cached_data_without_a_worker)
{
	enum { SIZE = 1 << 20, BIG = 128 << 10 };
	char path[256];
	struct disk d;
	const char *why;
	static uint8_t want[SIZE], got[BIG];
	struct iovec iov[2];

	for (size_t i = 0; i < SIZE; i++)
		want[i] = (uint8_t)(i * 7 + i / 4096);
	REQUIRE(make_image(path, sizeof(path), SIZE) == 0);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, want, SIZE, 0) == SIZE);
	REQUIRE(fsync(fd) == 0);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	unsigned long long n0 = d.nowait_reads;

	/* Cached (just written), 4 KiB in two iovecs: on the submitting thread. */
	iov[0] = (struct iovec){ got, 1000 };
	iov[1] = (struct iovec){ got + 1000, 4096 - 1000 };
	CHECK(run1(&d, DISK_READ, 8192, 4096, iov, 2) == 0);
	CHECK(!memcmp(got, want + 8192, 4096));
	CHECK(d.nowait_reads == n0 + 1);
	/* 128 KiB: a worker's. */
	iov[0] = (struct iovec){ got, BIG };
	CHECK(run1(&d, DISK_READ, 3 * BIG, BIG, iov, 1) == 0);
	CHECK(!memcmp(got, want + 3 * BIG, BIG));
	CHECK(d.nowait_reads == n0 + 1);

	/* Dropped from the page cache (where the file system lets it go): a miss. */
	REQUIRE(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	if (cached(fd, 65536, 4096) == 0) {
		iov[0] = (struct iovec){ got, 4096 };
		CHECK(run1(&d, DISK_READ, 65536, 4096, iov, 1) == 0);
		CHECK(!memcmp(got, want + 65536, 4096));
		CHECK(d.nowait_reads == n0 + 1);
		/* The miss makes the next read skip the try; the one after tries again. */
		CHECK(run1(&d, DISK_READ, 65536, 4096, iov, 1) == 0);
		CHECK(d.nowait_reads == n0 + 1);
		CHECK(run1(&d, DISK_READ, 65536, 4096, iov, 1) == 0);
		CHECK(!memcmp(got, want + 65536, 4096));
		CHECK(d.nowait_reads == n0 + 2);
	} else {
		printf("    (the page cache kept the file: no miss tried here)\n");
	}
	disk_close(&d);

	/* cache=none: O_DIRECT reads always go to the disk, through a worker. */
	if (open_disk(&d, path, false, true, DISK_ENGINE_THREADS, &why) == 0) {
		uint8_t *al = aligned_alloc(4096, 4096);
		REQUIRE(al);
		iov[0] = (struct iovec){ al, 4096 };
		CHECK(run1(&d, DISK_READ, 4096, 4096, iov, 1) == 0);
		CHECK(!memcmp(al, want + 4096, 4096));
		CHECK(d.nowait_reads == 0);
		free(al);
		disk_close(&d);
	}
	close(fd);
	unlink(path);
}

/*
 * tmpfs refuses RWF_NOWAIT, but its files are memory: the thread pool reads a small
 * request of one on the submitting thread all the same (without the flag), and every
 * read returns the file's bytes. /dev/shm is tmpfs where it exists.
 */
TEST(disk_threads_reads_a_tmpfs_image_without_a_worker)
{
	char path[256];
	struct disk d;
	const char *why;
	static uint8_t want[65536], got[4096];
	struct iovec iov = { got, sizeof(got) };
	struct statfs fs;

	if (statfs("/dev/shm", &fs) || fs.f_type != TMPFS_MAGIC ||
	    make_image_in("/dev/shm", path, sizeof(path), sizeof(want))) {
		printf("  note: no tmpfs at /dev/shm; skipped\n");
		return;
	}
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 13 + i / 512);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, want, sizeof(want), 0) == (ssize_t)sizeof(want));
	close(fd);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK(run1(&d, DISK_READ, 4096ULL * (unsigned int)(i * 3), 4096, &iov, 1) == 0);
		CHECK(!memcmp(got, want + 4096 * i * 3, 4096));
	}
	CHECK(d.nowait_reads == 4);
	disk_close(&d);
	unlink(path);
}

TEST(disk_engine_auto_prefers_io_uring)
{
	char path[256];
	struct disk d;
	const char *why;

	REQUIRE(make_image(path, sizeof(path), 4096) == 0);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_AUTO, &why) == 0);
	struct disk probe;
	char p2[256];
	REQUIRE(make_image(p2, sizeof(p2), 4096) == 0);
	bool uring = open_disk(&probe, p2, false, false, DISK_ENGINE_IO_URING, &why) == 0;
	if (uring)
		disk_close(&probe);
	CHECK(!strcmp(disk_engine_name(&d), uring ? "io_uring" : "threads"));
	disk_close(&d);
	unlink(path);
	unlink(p2);
}

TEST(disk_sync_ops)
{
	char path[256];
	struct disk d;
	const char *why;

	REQUIRE(make_image(path, sizeof(path), 1 << 16) == 0);
	REQUIRE(open_disk(&d, path, false, false, DISK_ENGINE_THREADS, &why) == 0);
	uint8_t buf[1024];
	memset(buf, 0x42, sizeof(buf));
	struct iovec iov = { buf, sizeof(buf) };
	struct disk_req r = {
		.op = DISK_WRITE, .offset = 1024, .len = 1024, .iov = &iov, .iovcnt = 1
	};
	CHECK(disk_do_sync(&d, &r) == 0);
	r.op = DISK_DISCARD;
	r.offset = 1024;
	r.len = 512;
	CHECK(disk_do_sync(&d, &r) == 0);
	memset(buf, 0x99, sizeof(buf));
	r = (struct disk_req){
		.op = DISK_READ, .offset = 1024, .len = 1024, .iov = &iov, .iovcnt = 1
	};
	CHECK(disk_do_sync(&d, &r) == 0);
	CHECK(all_bytes(buf, 512, 0));
	CHECK(all_bytes(buf + 512, 512, 0x42));
	r = (struct disk_req){ .op = DISK_FLUSH };
	CHECK(disk_do_sync(&d, &r) == 0);
	r = (struct disk_req){ .op = (enum disk_op)42 };
	CHECK(disk_do_sync(&d, &r) == -EINVAL);
	disk_close(&d);
	unlink(path);
}
