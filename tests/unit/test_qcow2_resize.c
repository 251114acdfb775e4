/*
 * Growing a qcow2 image (qcow2_resize, src/backend/qcow2_resize.c): a child grows an image
 * of 4 KiB clusters by 1 GiB at a time, so that every step needs a larger L1 table in a
 * new place, and is killed (SIGKILL) at a random moment. The image must then pass
 * `qemu-img check` with at most leaked clusters, be as large as the last step that
 * returned or the one under way, and read back what was written before the first step.
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

#define RS_START (1ull << 20)
#define RS_STEP (1ull << 30)
#define RS_STEPS 400
#define RS_DATA (64u << 10)

static uint64_t step_size(int i)
{
	return RS_START + (uint64_t)i * RS_STEP;
}

/* Grows the image step after step; done counts the steps that returned. */
static void grower(const char *path, volatile int *done)
{
	struct q2t_img img;
	char err[512];

	if (q2t_open(&img, path, false))
		_exit(2);
	for (int i = 1; i <= RS_STEPS; i++) {
		if (qcow2_resize(img.q, step_size(i), err, sizeof(err)))
			_exit(3);
		*done = i;
		__sync_synchronize();
	}
	_exit(0);
}

static uint64_t header_size(const char *path)
{
	size_t len;
	uint8_t *f = q2t_file(path, &len);
	uint64_t v = 0;

	for (int i = 0; f && len >= 32 && i < 8; i++)
		v = v << 8 | f[24 + i];
	free(f);
	return v;
}

TEST(qcow2_resize_survives_a_kill)
{
	struct tmp t;
	uint8_t *data = malloc(RS_DATA);
	volatile int *done =
		mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int moved = 0;

	REQUIRE(data && done != MAP_FAILED);
	REQUIRE(tmp_make(&t, "grow.qcow2"));
	for (int round = 0; round < 8; round++) {
		uint64_t seed = 4000 + (uint64_t)round * 131;
		struct q2t_img img;
		char err[256];
		struct qcow2_create_args ca = { .path = t.path,
						.size = RS_START,
						.cluster_bits = 12 };

		unlink(t.path);
		REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
		REQUIRE(q2t_open(&img, t.path, false) == 0);
		q2t_fill(data, RS_DATA, seed);
		struct iovec v = { data, RS_DATA };
		REQUIRE(qcow2_write(img.q, &v, 1, 0, RS_DATA) == 0 && qcow2_flush(img.q) == 0);
		q2t_close(&img);
		*done = 0;

		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			grower(t.path, done);
		/* A few steps in, then a random moment later: mid-step, most of the time. */
		struct timespec ms = { 0, 1000000L };
		for (int waited = 0; *done < 1 + (int)(seed % 4) && waited < 20000; waited++)
			nanosleep(&ms, NULL);
		struct timespec ts = { 0, (long)(seed % 7) * 300000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int st, last = *done;
		waitpid(pid, &st, 0);
		CHECK(WIFSIGNALED(st));
		moved += last > 0;
		if (getenv("Q2T_VERBOSE"))
			printf("  round %d: killed after %d steps\n", round, last);

		int r = q2t_sh("qemu-img check '%s'", t.path);
		CHECK(r == 0 || r == 3); /* 3: leaked clusters only */
		uint64_t size = header_size(t.path);
		if (size != step_size(last) && size != step_size(last + 1)) {
			printf("  round %d: size %llu after step %d returned\n", round,
			       (unsigned long long)size, last);
			CHECK(false);
		}
		REQUIRE(q2t_open(&img, t.path, false) == 0);
		CHECK(qcow2_size(img.q) == size);
		uint8_t *got = malloc(RS_DATA);
		struct iovec g = { got, RS_DATA };
		CHECK(got && qcow2_read(img.q, &g, 1, 0, RS_DATA) == 0 &&
		      !memcmp(got, data, RS_DATA));
		/* It still grows, and what it grew to is written and read at its far end. */
		CHECK(qcow2_resize(img.q, size + RS_STEP, err, sizeof(err)) == 0);
		CHECK(qcow2_write(img.q, &v, 1, size + RS_STEP - RS_DATA, RS_DATA) == 0);
		CHECK(qcow2_read(img.q, &g, 1, size + RS_STEP - RS_DATA, RS_DATA) == 0 &&
		      !memcmp(got, data, RS_DATA));
		free(got);
		q2t_close(&img);
		r = q2t_sh("qemu-img check '%s'", t.path);
		CHECK(r == 0 || r == 3);
	}
	CHECK(moved > 0); /* the kills landed after some steps had completed */
	free(data);
	munmap((void *)done, sizeof(int));
	q2t_rmdir(t.dir);
}

TEST(qcow2_resize_refuses)
{
	struct tmp t;
	struct q2t_img img;
	char err[512];
	struct qcow2_create_args ca = { .cluster_bits = 9, .size = RS_START };

	REQUIRE(tmp_make(&t, "small.qcow2"));
	ca.path = t.path;
	REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
	REQUIRE(q2t_open(&img, t.path, false) == 0);
	CHECK(qcow2_resize(img.q, RS_START - 512, err, sizeof(err)) == -ENOTSUP &&
	      strstr(err, "only grows"));
	CHECK(qcow2_resize(img.q, RS_START + 100, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "multiple of 512"));
	/* 512-byte clusters: one refcount block's range is 256 clusters, the longest run. */
	CHECK(qcow2_resize(img.q, 64ull << 30, err, sizeof(err)) == -ENOTSUP &&
	      strstr(err, "L1 table"));
	CHECK(qcow2_size(img.q) == RS_START);
	CHECK(qcow2_resize(img.q, RS_START, err, sizeof(err)) == 0); /* the same: nothing */
	CHECK(qcow2_resize(img.q, 256ull << 20, err, sizeof(err)) == 0);
	CHECK(qcow2_size(img.q) == 256ull << 20);
	q2t_close(&img);
	CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0);
	REQUIRE(q2t_open(&img, t.path, true) == 0);
	CHECK(qcow2_resize(img.q, 512ull << 20, err, sizeof(err)) == -EROFS);
	q2t_close(&img);
	q2t_rmdir(t.dir);
}

#define SH_SIZE (16u << 20)

/* The L1 entries from index from on, read from the file: all zero? */
static bool l1_empty_from(const char *path, uint64_t from)
{
	size_t len;
	uint8_t *f = q2t_file(path, &len);
	bool empty = f && len >= 48;

	if (empty) {
		uint64_t n = 0, off = 0;
		for (int i = 0; i < 4; i++)
			n = n << 8 | f[36 + i];
		for (int i = 0; i < 8; i++)
			off = off << 8 | f[40 + i];
		for (uint64_t i = from; empty && i < n; i++)
			for (int b = 0; empty && b < 8; b++)
				empty = off + i * 8 + 8 <= len && !f[off + i * 8 + b];
	}
	free(f);
	return empty;
}

TEST(qcow2_shrink_drops_the_tail_and_its_tables)
{
	struct tmp t;
	struct q2t_img img;
	char err[512];
	/* 4 KiB clusters: one L2 table maps 2 MiB, so a shrink to 5 MiB frees five of eight. */
	struct qcow2_create_args ca = { .cluster_bits = 12, .size = SH_SIZE };
	uint8_t *data = malloc(SH_SIZE), *want = calloc(1, SH_SIZE);
	const uint64_t small = (5u << 20) + 1536; /* not on a cluster boundary */

	REQUIRE(data && want && tmp_make(&t, "shrink.qcow2"));
	ca.path = t.path;
	REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
	q2t_fill(data, SH_SIZE, 7);
	REQUIRE(q2t_open(&img, t.path, false) == 0);
	struct iovec v = { data, SH_SIZE };
	REQUIRE(qcow2_write(img.q, &v, 1, 0, SH_SIZE) == 0);
	REQUIRE(qcow2_flush(img.q) == 0);
	CHECK(qcow2_shrink(img.q, small + 100, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "multiple of 512"));
	CHECK(qcow2_shrink(img.q, SH_SIZE + 512, err, sizeof(err)) == -EINVAL);
	CHECK(qcow2_shrink(img.q, small, err, sizeof(err)) == 0);
	CHECK(qcow2_size(img.q) == small);
	q2t_close(&img);
	CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0); /* no leaks: tables and data freed */
	CHECK(l1_empty_from(t.path, 3));
	memcpy(want, data, small);
	CHECK(q2t_qemu_reads(t.dir, t.path, want, small));
	/* Grown again, everything past the cut reads as zeros, the last cluster's tail too. */
	REQUIRE(q2t_open(&img, t.path, false) == 0);
	CHECK(qcow2_resize(img.q, SH_SIZE, err, sizeof(err)) == 0);
	uint8_t *all = q2t_read_all(img.q);
	CHECK(all && !memcmp(all, want, SH_SIZE));
	free(all);
	/* It is writable past the old cut again, in clusters taken from the freed ones. */
	struct iovec w = { data, 1u << 20 };
	CHECK(qcow2_write(img.q, &w, 1, 12u << 20, 1u << 20) == 0);
	memcpy(want + (12u << 20), data, 1u << 20);
	q2t_close(&img);
	CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0);
	CHECK(q2t_qemu_reads(t.dir, t.path, want, SH_SIZE));
	/* A read-only image and one with an internal snapshot are refused. */
	REQUIRE(q2t_open(&img, t.path, true) == 0);
	CHECK(qcow2_shrink(img.q, 1u << 20, err, sizeof(err)) == -EROFS);
	q2t_close(&img);
	REQUIRE(q2t_sh("qemu-img snapshot -c s1 '%s'", t.path) == 0);
	REQUIRE(q2t_open(&img, t.path, false) == 0);
	CHECK(qcow2_shrink(img.q, 1u << 20, err, sizeof(err)) == -ENOTSUP &&
	      strstr(err, "internal snapshots"));
	CHECK(qcow2_size(img.q) == SH_SIZE);
	q2t_close(&img);
	free(data);
	free(want);
	q2t_rmdir(t.dir);
}

/*
 * An overlay shrunk and grown again over a longer base: the part past the cut reads as
 * zeros, not as the base's data (QEMU 5.1 on zeroes it too), on version 3 (zero clusters)
 * and version 2 images (zeros written).
 */
TEST(qcow2_overlay_regrown_over_a_longer_base_reads_zeros)
{
	for (int version = 3; version >= 2; version--) {
		struct tmp t;
		struct q2t_img img;
		char err[512], base[160];
		uint8_t *data = malloc(SH_SIZE), *want = calloc(1, SH_SIZE);
		const uint64_t cut = 3u << 20;

		REQUIRE(data && want && tmp_make(&t, "ovl.qcow2"));
		snprintf(base, sizeof(base), "%s/base.raw", t.dir);
		q2t_fill(data, SH_SIZE, 11 + version);
		REQUIRE(q2t_write_file(base, data, SH_SIZE));
		REQUIRE(q2t_sh("qemu-img create -q -f qcow2 -o compat=%s -b base.raw -F raw '%s'",
			       version == 3 ? "1.1" : "0.10", t.path) == 0);
		REQUIRE(q2t_open(&img, t.path, false) == 0);
		/* Some of the overlay's own clusters, on both sides of the cut. */
		struct iovec v = { data + 4096, 8192 };
		REQUIRE(qcow2_write(img.q, &v, 1, cut - 4096, 8192) == 0);
		CHECK(qcow2_shrink(img.q, cut, err, sizeof(err)) == 0);
		CHECK(qcow2_resize(img.q, SH_SIZE, err, sizeof(err)) == 0);
		memcpy(want, data, cut);
		memcpy(want + cut - 4096, data + 4096, 4096);
		uint8_t *all = q2t_read_all(img.q);
		CHECK(all && !memcmp(all, want, SH_SIZE));
		free(all);
		q2t_close(&img);
		CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0);
		CHECK(q2t_qemu_reads(t.dir, t.path, want, SH_SIZE));
		free(data);
		free(want);
		q2t_rmdir(t.dir);
	}
}
