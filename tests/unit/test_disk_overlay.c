/*
 * Tests for copy-on-write overlays (src/backend/disk_overlay.c): random reads, writes,
 * write-zeroes, discards and flushes checked against a model of the disk; the base never
 * changes; what was flushed survives a crash and what was not reads as old or new data,
 * never zeros; concurrent first writes into one cluster; every refusal (bad header,
 * changed or busy base, truncated file, io_uring).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "backend/disk.h"
#include "backend/disk_overlay.h"
#include "core/loop.h"
#include "tmpfile.h"
#include "unit.h"

#define BASE_SIZE (1024 * 1024 + 3 * 512) /* the last cluster is a short one */
#define CLUSTER (1u << OVERLAY_CLUSTER_BITS_DEFAULT)

static struct loop *test_loop;

struct fixture {
	struct tmp t;
	char base[128], ovl[128];
	uint8_t *base_bytes;
};

static uint8_t base_byte(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) * 7 + 1) | 1; /* never zero */
}

/* A base image filled with base_byte() and an overlay in front of it. */
static bool fixture_make(struct fixture *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	if (!test_loop)
		test_loop = loop_create();
	if (!tmp_make(&f->t, "base.img"))
		return false;
	snprintf(f->base, sizeof(f->base), "%s", f->t.path);
	snprintf(f->ovl, sizeof(f->ovl), "%s/overlay", f->t.dir);
	f->base_bytes = malloc(BASE_SIZE);
	if (!f->base_bytes)
		return false;
	for (uint64_t i = 0; i < BASE_SIZE; i++)
		f->base_bytes[i] = base_byte(i);
	int fd = open(f->base, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, f->base_bytes, BASE_SIZE) == BASE_SIZE;
	if (fd >= 0)
		close(fd);
	return ok && overlay_create(f->ovl, f->base, err, sizeof(err)) == 0;
}

static bool base_unchanged(const struct fixture *f)
{
	uint8_t *now = malloc(BASE_SIZE);
	int fd = open(f->base, O_RDONLY | O_CLOEXEC);
	bool same = now && fd >= 0 && read(fd, now, BASE_SIZE) == BASE_SIZE &&
		    !memcmp(now, f->base_bytes, BASE_SIZE);

	if (fd >= 0)
		close(fd);
	free(now);
	return same;
}

static void fixture_free(struct fixture *f)
{
	unlink(f->ovl);
	tmp_remove(&f->t);
	free(f->base_bytes);
}

static int open_ovl(struct disk *d, const char *path, bool sync_writes, enum disk_engine e,
		    const char **why)
{
	struct disk_open_args a = { .path = path,
				    .direct = sync_writes,
				    .engine = e,
				    .format = DISK_FORMAT_OVERLAY,
				    .loop = test_loop };
	*why = "";
	return disk_open(d, &a, why);
}

/* One synchronous request, its buffer cut into three pieces to exercise the iov slicing. */
static int io(struct disk *d, enum disk_op op, uint64_t off, uint64_t len, uint8_t *buf)
{
	uint64_t a = len / 3 & ~1ULL, b = len / 2;
	struct iovec v[3] = { { buf, a }, { buf + a, b - a }, { buf + b, len - b } };
	struct disk_req r = { .op = op, .offset = off, .len = len, .iov = v, .iovcnt = 3 };

	return disk_do_sync(d, &r);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

TEST(overlay_random_ops_match_a_model)
{
	struct fixture f;
	struct disk d;
	const char *why;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	REQUIRE(fixture_make(&f));
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_AUTO, &why) == 0);
	CHECK(d.size == BASE_SIZE);
	CHECK(!strcmp(disk_engine_name(&d), "threads"));
	uint8_t *model = malloc(BASE_SIZE), *defined = malloc(BASE_SIZE);
	uint8_t *buf = malloc(256 * 1024);
	REQUIRE(model && defined && buf);
	memcpy(model, f.base_bytes, BASE_SIZE);
	memset(defined, 1, BASE_SIZE);
	for (int i = 0; i < 3000; i++) {
		uint64_t sectors = BASE_SIZE / 512;
		uint64_t s = rnd(&seed) % sectors;
		uint64_t n = 1 + rnd(&seed) % (i % 10 == 0 ? 400 : 24);
		if (s + n > sectors)
			n = sectors - s;
		uint64_t off = s * 512, len = n * 512;
		switch (rnd(&seed) % 8) {
		case 0:
		case 1:
		case 2:
			for (uint64_t k = 0; k < len; k++)
				buf[k] = (uint8_t)rnd(&seed);
			CHECK(io(&d, DISK_WRITE, off, len, buf) == 0);
			memcpy(model + off, buf, len);
			memset(defined + off, 1, len);
			break;
		case 3:
			CHECK(io(&d, DISK_WRITE_ZEROES, off, len, buf) == 0);
			memset(model + off, 0, len);
			memset(defined + off, 1, len);
			break;
		case 4:
			/* After a discard the bytes may be anything until written again. */
			CHECK(io(&d, DISK_DISCARD, off, len, buf) == 0);
			memset(defined + off, 0, len);
			break;
		case 5:
			CHECK(disk_flush_now(&d) == 0);
			break;
		default: {
			memset(buf, 0xee, len);
			CHECK(io(&d, DISK_READ, off, len, buf) == 0);
			uint64_t bad = 0;
			for (uint64_t k = 0; k < len; k++)
				bad += defined[off + k] && buf[k] != model[off + k];
			CHECK(bad == 0);
			if (bad)
				fprintf(stderr, "op %d: %llu bytes differ at %llu+%llu\n", i,
					(unsigned long long)bad, (unsigned long long)off,
					(unsigned long long)len);
			break;
		}
		}
	}
	/* Out of range requests are refused, not served from past the end. */
	CHECK(io(&d, DISK_READ, BASE_SIZE - 512, 1024, buf) == -EINVAL);
	disk_close(&d);
	CHECK(base_unchanged(&f));
	/* Closed (so flushed) and opened again: the same disk. */
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_THREADS, &why) == 0);
	uint8_t *all = malloc(BASE_SIZE);
	REQUIRE(all);
	CHECK(io(&d, DISK_READ, 0, BASE_SIZE, all) == 0);
	uint64_t bad = 0;
	for (uint64_t k = 0; k < BASE_SIZE; k++)
		bad += defined[k] && all[k] != model[k];
	CHECK(bad == 0);
	disk_close(&d);
	free(all);
	free(model);
	free(defined);
	free(buf);
	fixture_free(&f);
}

TEST(overlay_is_sparse_and_the_base_is_shared)
{
	struct fixture f;
	struct disk d;
	struct stat st;
	const char *why;
	uint8_t buf[512];

	REQUIRE(fixture_make(&f));
	REQUIRE(stat(f.ovl, &st) == 0);
	CHECK(st.st_blocks * 512 <= 2 * 4096); /* the header, maybe a block of bitmap */
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_AUTO, &why) == 0);
	/* A second overlay of the same base can be open at once (shared read lock). */
	struct fixture g = f;
	char err[256];
	snprintf(g.ovl, sizeof(g.ovl), "%s/overlay2", f.t.dir);
	REQUIRE(overlay_create(g.ovl, f.base, err, sizeof(err)) == 0);
	struct disk d2;
	REQUIRE(open_ovl(&d2, g.ovl, false, DISK_ENGINE_AUTO, &why) == 0);
	memset(buf, 0x42, sizeof(buf));
	CHECK(io(&d, DISK_WRITE, 3 * CLUSTER + 512, 512, buf) == 0);
	CHECK(io(&d2, DISK_READ, 3 * CLUSTER + 512, 512, buf) == 0);
	CHECK(!memcmp(buf, f.base_bytes + 3 * CLUSTER + 512, 512));
	disk_close(&d2);
	disk_close(&d);
	/* One written sector copied up one cluster: the file grew by about that. */
	REQUIRE(stat(f.ovl, &st) == 0);
	CHECK(st.st_blocks * 512 >= CLUSTER && st.st_blocks * 512 <= CLUSTER + 3 * 4096);
	/* A raw open of the base for writing while an overlay holds it is refused. */
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_AUTO, &why) == 0);
	struct disk raw;
	struct disk_open_args ra = { .path = f.base, .loop = test_loop };
	CHECK(disk_open(&raw, &ra, &why) == -EAGAIN || disk_open(&raw, &ra, &why) == -EACCES);
	disk_close(&d);
	unlink(g.ovl);
	fixture_free(&f);
}

/*
 * A child writes and flushes A, writes B without a flush and dies: A is there, and each
 * cluster of B holds either the old or the new bytes, never zeros. With sync_writes
 * (cache=none) B must be there too.
 */
static void crash_case(bool sync_writes)
{
	struct fixture f;
	struct disk d;
	const char *why;
	static uint8_t a[3 * CLUSTER], b[2 * CLUSTER], got[3 * CLUSTER];
	uint64_t off_a = CLUSTER / 2, off_b = 8 * CLUSTER + 4096;

	REQUIRE(fixture_make(&f));
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		if (open_ovl(&d, f.ovl, sync_writes, DISK_ENGINE_THREADS, &why) ||
		    io(&d, DISK_WRITE, off_a, sizeof(a), a) || disk_flush_now(&d) ||
		    io(&d, DISK_WRITE, off_b, sizeof(b), b))
			_exit(1);
		_exit(0); /* no close, no flush: a crash */
	}
	int status;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_THREADS, &why) == 0);
	CHECK(io(&d, DISK_READ, off_a, sizeof(a), got) == 0);
	CHECK(!memcmp(got, a, sizeof(a)));
	CHECK(io(&d, DISK_READ, off_b, sizeof(b), got) == 0);
	for (uint64_t k = 0; k < sizeof(b); k += 512) {
		bool is_new = got[k] == 0xb2, is_old = got[k] == f.base_bytes[off_b + k];
		CHECK(sync_writes ? is_new : (is_new || is_old));
	}
	disk_close(&d);
	CHECK(base_unchanged(&f));
	fixture_free(&f);
}

TEST(overlay_crash_keeps_flushed_writes)
{
	crash_case(false);
}

TEST(overlay_crash_with_sync_writes_keeps_every_write)
{
	crash_case(true);
}

static int done;

static void on_done(struct disk_req *r)
{
	done++;
}

TEST(overlay_concurrent_first_writes_into_one_cluster)
{
	struct fixture f;
	struct disk d;
	const char *why;
	enum { N = 64 };
	static uint8_t data[N][1024], got[N * 2048];
	struct iovec v[N];
	struct disk_req r[N];

	REQUIRE(fixture_make(&f));
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_THREADS, &why) == 0);
	/* 64 writes of 1 KiB spread over clusters 4 and 5, all in flight at once. */
	for (int i = 0; i < N; i++) {
		memset(data[i], 0x10 + i, sizeof(data[i]));
		v[i] = (struct iovec){ data[i], sizeof(data[i]) };
		r[i] = (struct disk_req){ .op = DISK_WRITE,
					  .offset = 4 * CLUSTER + (uint64_t)i * 2048,
					  .len = 1024,
					  .iov = &v[i],
					  .iovcnt = 1,
					  .complete = on_done };
	}
	done = 0;
	for (int i = 0; i < N; i++)
		disk_submit(&d, &r[i]);
	for (int t = 0; t < 500 && done < N; t++)
		loop_run_once(test_loop, 10);
	REQUIRE(done == N);
	for (int i = 0; i < N; i++)
		CHECK(r[i].result == 0);
	CHECK(io(&d, DISK_READ, 4 * CLUSTER, N * 2048, got) == 0);
	uint64_t base_off = 4 * CLUSTER;
	for (int i = 0; i < N; i++) {
		/* The first 1 KiB of each 2 KiB is a write; the second still the base's. */
		CHECK(!memcmp(got + i * 2048, data[i], 1024));
		CHECK(!memcmp(got + i * 2048 + 1024, f.base_bytes + base_off + i * 2048 + 1024,
			      1024));
	}
	disk_close(&d);
	fixture_free(&f);
}

/* Rewrites the overlay's header through fn, fixing up the CRC unless bad_crc. */
static void patch_header(const char *path, void (*fn)(uint8_t *h), bool bad_crc)
{
	uint8_t h[OVERLAY_HEADER_SIZE];
	int fd = open(path, O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0 && pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h));
	fn(h);
	if (!bad_crc) {
		/* Re-sign what fn changed, so the check under test is not the CRC's. */
		uint32_t crc = (uint32_t)crc32(0, h, OVERLAY_HEADER_SIZE - 4);
		memcpy(h + OVERLAY_HEADER_SIZE - 4, &crc, 4);
	}
	CHECK(pwrite(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h));
	close(fd);
}

static void flip_path_byte(uint8_t *h)
{
	h[90] ^= 1; /* a byte of the base path */
}

static void version_2(uint8_t *h)
{
	h[8] = 2;
}

static void cluster_bits_40(uint8_t *h)
{
	h[16] = 40;
}

static void bad_magic(uint8_t *h)
{
	h[0] = 'X';
}

static bool refused(const char *path, const char *want, int want_r)
{
	struct disk d;
	const char *why;
	int r = open_ovl(&d, path, false, DISK_ENGINE_AUTO, &why);
	char err[320];

	if (r == 0) {
		disk_close(&d);
		return false;
	}
	/* overlay_check() must see the same problem before anything is built. */
	bool checked = overlay_check(path, err, sizeof(err)) != 0 && strstr(err, want);
	if (!strstr(why, want) || !checked || (want_r && r != want_r)) {
		fprintf(stderr, "refusal: r=%d why='%s' check='%s' (wanted '%s')\n", r, why, err,
			want);
		return false;
	}
	return true;
}

TEST(overlay_refuses_bad_files)
{
	struct fixture f;
	struct disk d;
	const char *why;

	REQUIRE(fixture_make(&f));
	REQUIRE(open_ovl(&d, f.ovl, false, DISK_ENGINE_AUTO, &why) == 0);
	disk_close(&d);
	/* io_uring does not serve overlays. */
	CHECK(open_ovl(&d, f.ovl, false, DISK_ENGINE_IO_URING, &why) == -EINVAL);
	CHECK(strstr(why, "threads") != NULL);
	/* A raw image is not an overlay. */
	CHECK(refused(f.base, "not a tern overlay", -EINVAL));

	patch_header(f.ovl, flip_path_byte, true);
	CHECK(refused(f.ovl, "CRC", -EINVAL));
	patch_header(f.ovl, flip_path_byte, true); /* back */
	patch_header(f.ovl, version_2, false);
	CHECK(refused(f.ovl, "version 2", -EINVAL));
	REQUIRE(unlink(f.ovl) == 0);
	char err[256];
	REQUIRE(overlay_create(f.ovl, f.base, err, sizeof(err)) == 0);
	patch_header(f.ovl, cluster_bits_40, false);
	CHECK(refused(f.ovl, "cluster size", -EINVAL));
	REQUIRE(unlink(f.ovl) == 0);
	REQUIRE(overlay_create(f.ovl, f.base, err, sizeof(err)) == 0);
	patch_header(f.ovl, bad_magic, false);
	CHECK(refused(f.ovl, "not a tern overlay", -EINVAL));

	/* Truncated: the file no longer holds what its header describes. */
	REQUIRE(unlink(f.ovl) == 0);
	REQUIRE(overlay_create(f.ovl, f.base, err, sizeof(err)) == 0);
	REQUIRE(truncate(f.ovl, 8192) == 0);
	CHECK(refused(f.ovl, "truncated", -EINVAL));

	/* A base held for writing by a VM. */
	REQUIRE(unlink(f.ovl) == 0);
	REQUIRE(overlay_create(f.ovl, f.base, err, sizeof(err)) == 0);
	struct disk raw;
	struct disk_open_args ra = { .path = f.base, .loop = test_loop };
	REQUIRE(disk_open(&raw, &ra, &why) == 0);
	CHECK(refused(f.ovl, "held for writing by another process", 0));
	disk_close(&raw);

	/* A base changed after the overlay was made (one byte, so size and inode stay). */
	usleep(20 * 1000);
	int fd = open(f.base, O_WRONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, "x", 1, 4096) == 1);
	close(fd);
	CHECK(refused(f.ovl, "changed after the overlay was made", -ESTALE));
	/* A missing base. */
	REQUIRE(unlink(f.base) == 0);
	CHECK(refused(f.ovl, "cannot open its base", -ENOENT));
	fixture_free(&f);
}

TEST(overlay_create_refusals)
{
	struct fixture f;
	char err[256];

	REQUIRE(fixture_make(&f));
	/* An existing file is never overwritten. */
	CHECK(overlay_create(f.ovl, f.base, err, sizeof(err)) == -EEXIST);
	CHECK(strstr(err, f.ovl) != NULL);
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/none", f.t.dir);
	char o2[160];
	snprintf(o2, sizeof(o2), "%s/o2", f.t.dir);
	CHECK(overlay_create(o2, missing, err, sizeof(err)) == -ENOENT);
	CHECK(access(o2, F_OK) != 0);
	/* A base of less than one sector has nothing to overlay. */
	int fd = open(missing, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, "abc", 3) == 3);
	close(fd);
	CHECK(overlay_create(o2, missing, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "size") != NULL);
	CHECK(access(o2, F_OK) != 0);
	unlink(missing);
	fixture_free(&f);
}

TEST(overlay_header_round_trip_and_every_flip_refused)
{
	struct overlay_header h = { .version = OVERLAY_VERSION,
				    .cluster_bits = 16,
				    .size = 10ULL << 30,
				    .base_size = (10ULL << 30) + 100,
				    .base_ino = 1234,
				    .base_mtime_sec = 1700000000,
				    .base_mtime_nsec = 999 },
			      back;
	uint8_t buf[OVERLAY_HEADER_SIZE];
	char err[256];

	strcpy(h.base_path, "/var/lib/tern/base.img");
	REQUIRE(overlay_layout(&h, err, sizeof(err)) == 0);
	CHECK(h.bitmap_bytes == 20480 && h.data_offset == CLUSTER);
	overlay_header_build(&h, buf);
	REQUIRE(overlay_header_parse(buf, sizeof(buf), &back, err, sizeof(err)) == 0);
	CHECK(back.size == h.size && back.base_ino == 1234 && back.base_mtime_nsec == 999 &&
	      !strcmp(back.base_path, h.base_path) && back.data_offset == h.data_offset);
	int accepted = 0;
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] ^= 0x04;
		accepted += overlay_header_parse(buf, sizeof(buf), &back, err, sizeof(err)) == 0;
		buf[i] ^= 0x04;
	}
	CHECK(accepted == 0);
	CHECK(overlay_header_parse(buf, 100, &back, err, sizeof(err)) == -EINVAL);
	/* Too many clusters for the bitmap limit. */
	h.cluster_bits = 12;
	h.size = 1ULL << 50;
	CHECK(overlay_layout(&h, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "bitmap") != NULL);
}
