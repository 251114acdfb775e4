/*
 * qcow2 refusals and the rest of the API (src/backend/qcow2*.c): damaged or hostile
 * images are refused with a message naming the field (truncated, bad magic, versions 1
 * and 4, cluster_bits 8 and 22, tables past the end or over the header, backing loops and
 * missing backing files, unknown and unsupported feature bits), bad L2 entries and
 * compressed clusters fail their reads with -EIO; qcow2_create makes images qemu-img
 * accepts, with the chain it shows; qcow2_describe reports a chain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "backend/qcow2.h"
#include "core/log.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* A fresh 1 MiB image from qemu-img with some data, as bytes to damage. */
static uint8_t *good_image(const char *dir, size_t *len, const char *opts)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/good.qcow2", dir);
	unlink(p);
	if (q2t_sh("qemu-img create -f qcow2 %s '%s' 1M && qemu-io -c 'write -P 0x61 0 128k' '%s'",
		   opts, p, p))
		return NULL;
	uint8_t *f = q2t_file(p, len);
	unlink(p);
	return f;
}

/* Writes the damaged bytes and opens them: the error must mention want. */
static bool refused(const char *path, const uint8_t *f, size_t len, const char *want)
{
	struct q2t_img img;

	if (!q2t_write_file(path, f, len))
		return false;
	int r = q2t_open(&img, path, true);
	if (r == 0) {
		printf("  opened although damaged (wanted '%s')\n", want);
		q2t_close(&img);
		return false;
	}
	if (!strstr(img.err, want)) {
		printf("  error '%s' does not name '%s'\n", img.err, want);
		return false;
	}
	return true;
}

TEST(qcow2_bad_header_fields)
{
	struct tmp t;
	size_t len;

	REQUIRE(tmp_make(&t, "bad.qcow2"));
	uint8_t *g = good_image(t.dir, &len, "");
	REQUIRE(g && len > 4096);
	uint8_t *f = malloc(len);
	REQUIRE(f);
#define DAMAGE(stmt, want)                            \
	do {                                          \
		memcpy(f, g, len);                    \
		stmt;                                 \
		CHECK(refused(t.path, f, len, want)); \
	} while (0)
	CHECK(refused(t.path, g, 50, "too short"));
	DAMAGE(f[0] = 'X', "magic");
	DAMAGE(put32(f + 4, 1), "version 1");
	DAMAGE(put32(f + 4, 4), "version 4");
	DAMAGE(put32(f + 20, 8), "cluster_bits 8");
	DAMAGE(put32(f + 20, 22), "cluster_bits 22");
	DAMAGE(put64(f + 40, (uint64_t)len + 65536), "l1_table_offset");
	DAMAGE(put64(f + 40, 4096), "l1_table_offset");
	DAMAGE(put64(f + 48, 0), "refcount_table_offset 0 overlaps the header");
	DAMAGE(put64(f + 48, get64(g + 40)), "overlaps the L1 table");
	DAMAGE(put32(f + 56, 1u << 20), "refcount_table_clusters");
	DAMAGE(put64(f + 24, 1ull << 60), "size");
	DAMAGE(put32(f + 36, 0), "l1_size");
	DAMAGE(put32(f + 32, 1), "crypt_method");
	DAMAGE(put32(f + 96, 7), "refcount_order");
	DAMAGE(put32(f + 100, 1u << 20), "header_length");
	DAMAGE((put64(f + 8, 400), put32(f + 16, 2000)), "backing_file_size");
	DAMAGE((put64(f + 8, 65530), put32(f + 16, 100)), "backing_file_offset");
	/* A refcount block the table puts on the refcount table itself. */
	DAMAGE(put64(f + get64(g + 48), get64(g + 48)),
	       "refcount table entry 0 points into the refcount table");
	/* An extension running past the header cluster. */
	DAMAGE((put32(f + 112, 0x1234), put32(f + 116, 70000)), "header extension");
	/* An unknown incompatible bit, without and with a name in the feature table. */
	DAMAGE(f[79] |= 1u << 5, "incompatible feature bit 5 is not supported");
	uint8_t *name = memmem(g, 4096, "extended L2 entries", 19);
	REQUIRE(name);
	DAMAGE((f[79] |= 1u << 5, f[name - g - 1] = 5, memcpy(f + (name - g), "foo\0", 4)),
	       "incompatible feature 'foo' (bit 5) is not supported");
	DAMAGE(f[79] |= 1u << 2, "external data file");
	DAMAGE(f[104] = 1, "compression_type");
	free(g);

	/* Extended L2 entries, as qemu-img makes them: refused by name. */
	g = good_image(t.dir, &len, "-o extended_l2=on");
	REQUIRE(g);
	CHECK(refused(t.path, g, len, "extended L2"));
	free(g);
	free(f);
	unlink(t.path);
	q2t_rmdir(t.dir);
}

/* Read of the first cluster: its return value, and whether the log names want. */
static int read_logged(const char *dir, const char *path, const char *want, bool *named)
{
	char logp[256];
	struct q2t_img img;
	uint8_t buf[4096];
	struct iovec v = { buf, sizeof(buf) };
	char err[128];

	snprintf(logp, sizeof(logp), "%s/log", dir);
	if (q2t_open(&img, path, true))
		return -999;
	log_set_file(logp, err, sizeof(err));
	int r = qcow2_read(img.q, &v, 1, 0, sizeof(buf));
	log_set_file(NULL, err, sizeof(err));
	q2t_close(&img);
	*named = strstr(tmp_slurp(logp), want) != NULL;
	if (!*named)
		printf("  log '%s' does not name '%s'\n", tmp_slurp(logp), want);
	unlink(logp);
	return r;
}

TEST(qcow2_bad_l2_and_compressed_clusters)
{
	struct tmp t;
	size_t len;
	bool named;

	REQUIRE(tmp_make(&t, "bad.qcow2"));
	uint8_t *g = good_image(t.dir, &len, "");
	REQUIRE(g);
	uint64_t l1 = get64(g + 40), l2 = get64(g + l1) & 0x00fffffffffffe00ull;
	REQUIRE(l2 && l2 < len);

	/* An L2 table past the end of the file. */
	put64(g + l1, (1ull << 63) | (64ull << 20));
	REQUIRE(q2t_write_file(t.path, g, len));
	CHECK(read_logged(t.dir, t.path, "L2 table offset", &named) == -EIO && named);
	put64(g + l1, (1ull << 63) | l2);
	/* A data cluster past the end, and one not aligned. */
	uint64_t data = get64(g + l2);
	put64(g + l2, (1ull << 63) | (64ull << 20));
	REQUIRE(q2t_write_file(t.path, g, len));
	CHECK(read_logged(t.dir, t.path, "past the end of the file", &named) == -EIO && named);
	put64(g + l2, (1ull << 63) | ((data & 0x00fffffffffffe00ull) + 512));
	REQUIRE(q2t_write_file(t.path, g, len));
	CHECK(read_logged(t.dir, t.path, "not cluster-aligned", &named) == -EIO && named);

	/* Compressed clusters that inflate past one cluster, or short of it. */
	for (int k = 0; k < 2; k++) {
		uint64_t cs = 65536, out_len = k ? cs * 2 : cs / 2;
		uint8_t *zeros = calloc(1, out_len), comp[8192];
		z_stream z;
		memset(&z, 0, sizeof(z));
		REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
		z.next_in = zeros;
		z.avail_in = (uInt)out_len;
		z.next_out = comp;
		z.avail_out = sizeof(comp);
		REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
		size_t clen = sizeof(comp) - z.avail_out;
		deflateEnd(&z);
		free(zeros);
		uint64_t at = (len + 511) & ~511ull, nsec = (clen + 511) / 512;
		uint8_t *f = calloc(1, at + nsec * 512);
		REQUIRE(f);
		memcpy(f, g, len);
		memcpy(f + at, comp, clen);
		unsigned x = 62 - (16 - 8);
		put64(f + l2, (1ull << 62) | ((nsec - 1) << x) | at);
		REQUIRE(q2t_write_file(t.path, f, at + nsec * 512));
		CHECK(read_logged(t.dir, t.path, "does not inflate to exactly one cluster",
				  &named) == -EIO &&
		      named);
		/* A descriptor whose offset lies past the end of the file. */
		put64(f + l2, (1ull << 62) | (1ull << 40));
		REQUIRE(q2t_write_file(t.path, f, at + nsec * 512));
		CHECK(read_logged(t.dir, t.path, "compressed cluster offset", &named) == -EIO &&
		      named);
		free(f);
	}
	free(g);
	unlink(t.path);
	q2t_rmdir(t.dir);
}

TEST(qcow2_bad_backing_chains)
{
	struct tmp t;
	char a[256], p[256];
	struct q2t_img img;

	REQUIRE(tmp_make(&t, "a.qcow2"));
	snprintf(a, sizeof(a), "%s", t.path);
	/* a -> b -> a */
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -u -b b.qcow2 -F qcow2 a.qcow2 1M && "
		       "qemu-img create -f qcow2 -u -b a.qcow2 -F qcow2 b.qcow2 1M",
		       t.dir) == 0);
	CHECK(q2t_open(&img, a, true) == -ELOOP);
	CHECK(strstr(img.err, "loop") != NULL);
	CHECK(strstr(img.err, "a.qcow2 -> ") && strstr(img.err, "/b.qcow2 -> ") &&
	      strstr(img.err, "-> ") && strstr(strstr(img.err, "/b.qcow2 -> "), "a.qcow2"));
	/* A missing backing file: named, with the chain. */
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -u -b missing.raw -F raw c.qcow2 1M",
		       t.dir) == 0);
	snprintf(p, sizeof(p), "%s/c.qcow2", t.dir);
	CHECK(q2t_open(&img, p, true) == -ENOENT);
	CHECK(strstr(img.err, "missing.raw") && strstr(img.err, "No such file"));
	/* A chain of 17 backing files is too deep. */
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f raw d0 1M && for i in $(seq 1 18); do "
		       "qemu-img create -f qcow2 -u -b d$((i-1)) -F $( [ $i = 1 ] && echo raw || "
		       "echo qcow2) d$i 1M || exit 1; done",
		       t.dir) == 0);
	snprintf(p, sizeof(p), "%s/d18", t.dir);
	CHECK(q2t_open(&img, p, true) == -ELOOP);
	CHECK(strstr(img.err, "longer than") != NULL);
	snprintf(p, sizeof(p), "%s/d16", t.dir);
	CHECK(q2t_open(&img, p, true) == 0);
	q2t_close(&img);
	q2t_rmdir(t.dir);
}

TEST(qcow2_create_and_describe)
{
	struct tmp t;
	char base[256], mid[256], top[256], err[256];
	struct qcow2_chain_entry ch[4];

	REQUIRE(tmp_make(&t, "top.qcow2"));
	snprintf(base, sizeof(base), "%s/base.raw", t.dir);
	snprintf(mid, sizeof(mid), "%s/mid.qcow2", t.dir);
	snprintf(top, sizeof(top), "%s", t.path);
	REQUIRE(q2t_sh("qemu-img create -f raw '%s' 3M", base) == 0);
	/* Sizes from the backing file; formats given and probed; every cluster size. */
	struct qcow2_create_args m = { .path = mid, .backing = "base.raw", .cluster_bits = 9 };
	REQUIRE(qcow2_create(&m, err, sizeof(err)) == 0);
	CHECK(q2t_sh("qemu-img check '%s'", mid) == 0);
	struct qcow2_create_args a = { .path = top,
				       .backing = "mid.qcow2",
				       .backing_format = "qcow2",
				       .cluster_bits = 21,
				       .lazy_refcounts = true };
	REQUIRE(qcow2_create(&a, err, sizeof(err)) == 0);
	CHECK(q2t_sh("qemu-img check '%s'", top) == 0);
	const char *info = q2t_out("qemu-img info --output=json --backing-chain '%s'", top);
	CHECK(strstr(info, "\"backing-filename\": \"mid.qcow2\"") != NULL);
	CHECK(strstr(info, "\"backing-filename\": \"base.raw\"") != NULL);
	CHECK(strstr(info, "\"backing-filename-format\": \"qcow2\"") != NULL);
	CHECK(strstr(info, "\"lazy-refcounts\": true") != NULL);
	CHECK(strstr(info, "\"virtual-size\": 3145728") != NULL);

	/* Refusals leave nothing behind, and never touch an existing file. */
	struct qcow2_create_args bad = { .path = top, .size = 1 << 20 };
	CHECK(qcow2_create(&bad, err, sizeof(err)) == -EEXIST);
	CHECK(access(top, F_OK) == 0);
	char p[256];
	snprintf(p, sizeof(p), "%s/x.qcow2", t.dir);
	struct qcow2_create_args nob = { .path = p, .backing = "nope.raw" };
	CHECK(qcow2_create(&nob, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "nope.raw") != NULL);
	struct qcow2_create_args nos = { .path = p, .size = 0 };
	CHECK(qcow2_create(&nos, err, sizeof(err)) == -EINVAL);
	char longname[1100];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	struct qcow2_create_args lng = { .path = p, .backing = longname };
	CHECK(qcow2_create(&lng, err, sizeof(err)) == -EINVAL);
	CHECK(access(p, F_OK) != 0);

	/* Some data in top (a write through the library), then describe the chain. */
	struct q2t_img img;
	REQUIRE(q2t_open(&img, top, false) == 0);
	uint8_t buf[4096];
	memset(buf, 0x77, sizeof(buf));
	struct iovec v = { buf, sizeof(buf) };
	CHECK(qcow2_write(img.q, &v, 1, 8192, sizeof(buf)) == 0);
	q2t_close(&img);
	CHECK(q2t_sh("qemu-img check '%s'", top) == 0);
	int n = qcow2_describe(top, ch, 4, err, sizeof(err));
	CHECK(n == 3);
	if (n == 3) {
		CHECK(strcmp(ch[0].path, top) == 0 && strcmp(ch[0].format, "qcow2") == 0);
		CHECK(ch[0].size == 3u << 20 && ch[0].cluster_bits == 21 && ch[0].version == 3);
		CHECK(ch[0].lazy_refcounts && !ch[0].dirty &&
		      strcmp(ch[0].compression, "zlib") == 0);
		CHECK(ch[0].allocated == 2u << 20);
		CHECK(strcmp(ch[1].path, mid) == 0 && ch[1].cluster_bits == 9 &&
		      ch[1].allocated == 0);
		CHECK(strcmp(ch[2].path, base) == 0 && strcmp(ch[2].format, "raw") == 0);
		CHECK(ch[2].size == 3u << 20);
	}
	/* Fewer entries than the chain has: still the count. */
	CHECK(qcow2_describe(top, ch, 1, err, sizeof(err)) == 3);
	CHECK(qcow2_describe(base, ch, 4, err, sizeof(err)) == 1);
	q2t_rmdir(t.dir);
}
