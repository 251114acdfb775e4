/*
 * qcow2 crash safety (src/backend/qcow2*.c): a child process writes, zeroes, discards and
 * flushes at random into an image over a raw backing file and is killed (SIGKILL) at a
 * random moment, twenty times. The image must then pass `qemu-img check` with at most
 * leaked clusters, open, and read back everything flushed before the kill. With
 * lazy_refcounts the dirty bit is left set, opening the image for writing repairs it, and
 * the check is clean after that.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/qcow2.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

#define CR_SIZE (4u << 20)
#define CR_SECTORS (CR_SIZE / 512)

/* Shared with the child: what is durable for sure, and which sectors changed since. */
struct crash_state {
	uint8_t durable[2][CR_SIZE];
	volatile int idx;
	volatile int flushes;
	volatile uint8_t changed[CR_SECTORS];
};

static void mark(struct crash_state *cs, uint64_t off, uint64_t len)
{
	for (uint64_t s = off / 512; s < (off + len + 511) / 512; s++)
		cs->changed[s] = 1;
	__sync_synchronize();
}

static void child(struct crash_state *cs, const char *path, uint64_t seed)
{
	struct q2t_img img;
	uint8_t *model = malloc(CR_SIZE), *buf = malloc(256 << 10);
	uint64_t s = seed;

	if (!model || !buf || q2t_open(&img, path, false))
		_exit(2);
	memcpy(model, cs->durable[cs->idx], CR_SIZE);
	for (int i = 0; i < 100000; i++) {
		uint64_t op = q2t_rand(&s) % 12;
		uint64_t len = ((q2t_rand(&s) % 256) + 1) * 512;
		uint64_t off = (q2t_rand(&s) % CR_SECTORS) * 512;
		int r = 0;
		if (off + len > CR_SIZE)
			len = CR_SIZE - off;
		if (op < 7) {
			struct iovec v[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };
			q2t_fill(buf, len, s);
			mark(cs, off, len);
			r = qcow2_write(img.q, v, 2, off, len);
			memcpy(model + off, buf, len);
		} else if (op == 7) {
			mark(cs, off, len);
			r = qcow2_write_zeroes(img.q, off, len);
			memset(model + off, 0, len);
		} else if (op == 8) {
			mark(cs, off, len);
			r = qcow2_discard(img.q, off, len);
			memset(model + off, 0, len);
		} else {
			r = qcow2_flush(img.q);
			if (!r) {
				int next = 1 - cs->idx;
				memcpy(cs->durable[next], model, CR_SIZE);
				__sync_synchronize();
				cs->idx = next;
				__sync_synchronize();
				memset((void *)cs->changed, 0, CR_SECTORS);
				cs->flushes++;
			}
		}
		if (r)
			_exit(3);
	}
	_exit(0);
}

/* Checks the image after a kill; false (with a line printed) on any failure. */
static bool verify(struct crash_state *cs, const char *path, bool lazy, int *saw_dirty)
{
	size_t len;
	uint8_t *f = q2t_file(path, &len);
	bool dirty = f && len > 80 && (f[79] & 1);
	struct q2t_img img;
	bool ok = true;

	free(f);
	*saw_dirty += dirty;
	if (!lazy || !dirty) {
		int r = q2t_sh("qemu-img check '%s'", path);
		if (r != 0 && r != 3) {
			printf("  qemu-img check after the kill: exit %d\n", r);
			q2t_sh("cp '%s' /tmp/tern-qcow2-crash-failed.qcow2", path);
			return false;
		}
	}
	/* Opened for writing: a dirty image is repaired here. */
	if (q2t_open(&img, path, false)) {
		printf("  open after the kill: %s\n", img.err);
		return false;
	}
	uint8_t *got = q2t_read_all(img.q);
	const uint8_t *want = cs->durable[cs->idx];
	for (uint64_t s = 0; got && s < CR_SECTORS && ok; s++)
		if (!cs->changed[s] && memcmp(got + s * 512, want + s * 512, 512)) {
			printf("  sector %llu lost flushed data\n", (unsigned long long)s);
			ok = false;
		}
	ok = ok && got;
	free(got);
	q2t_close(&img);
	int r = q2t_sh("qemu-img check '%s'", path);
	if (r != 0 && !(r == 3 && !lazy)) {
		printf("  qemu-img check after reopening: exit %d\n", r);
		ok = false;
	}
	return ok;
}

static void crash_loop(bool lazy, int rounds, uint64_t seed0)
{
	struct tmp t;
	char base[256];
	int saw_dirty = 0, flushed = 0;
	struct crash_state *cs =
		mmap(NULL, sizeof(*cs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	REQUIRE(cs != MAP_FAILED);
	REQUIRE(tmp_make(&t, "img.qcow2"));
	snprintf(base, sizeof(base), "%s/base.raw", t.dir);
	for (int round = 0; round < rounds; round++) {
		uint64_t seed = seed0 + (uint64_t)round * 7919;
		char err[256];
		/* A backing file shorter than the disk, clusters of 4 KiB or 64 KiB. */
		q2t_fill(cs->durable[0], CR_SIZE - 65536, seed);
		memset(cs->durable[0] + CR_SIZE - 65536, 0, 65536);
		REQUIRE(q2t_write_file(base, cs->durable[0], CR_SIZE - 65536));
		cs->idx = 0;
		cs->flushes = 0;
		memset((void *)cs->changed, 0, CR_SECTORS);
		unlink(t.path);
		struct qcow2_create_args ca = { .path = t.path,
						.size = CR_SIZE,
						.backing = "base.raw",
						.backing_format = "raw",
						.cluster_bits = round & 1 ? 16 : 12,
						.lazy_refcounts = lazy };
		REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);

		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			child(cs, t.path, seed);
		/*
		 * Most rounds wait for the child's first flushes (however slow a loaded machine
		 * makes its start), then kill it a random moment later; every fourth kills it
		 * early, whatever it got to.
		 */
		struct timespec ms = { 0, 1000000L };
		int want = round % 4 == 3 ? 0 : 1 + (int)(seed % 3);
		for (int waited = 0; cs->flushes < want && waited < 20000; waited++)
			nanosleep(&ms, NULL);
		struct timespec ts = { 0, (long)(seed % 40) * 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFSIGNALED(st));
		flushed += cs->flushes > 0;
		if (getenv("Q2T_VERBOSE"))
			printf("  round %d: %d flushes\n", round, cs->flushes);
		if (!verify(cs, t.path, lazy, &saw_dirty)) {
			printf("  round %d (seed %llu) failed\n", round, (unsigned long long)seed);
			unit_fail(__FILE__, __LINE__, "crash round");
			break;
		}
	}
	/* The kills landed after some flushes, and (lazy) left the dirty bit behind. */
	CHECK(flushed > 0);
	if (lazy)
		CHECK(saw_dirty > 0);
	munmap(cs, sizeof(*cs));
	unlink(base);
	q2t_rmdir(t.dir);
}

TEST(qcow2_crash_sigkill)
{
	crash_loop(false, 12, 1000);
}

TEST(qcow2_crash_sigkill_lazy_refcounts)
{
	crash_loop(true, 10, 5000);
}
