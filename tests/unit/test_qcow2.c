/*
 * qcow2 images (src/backend/qcow2*.c) against qemu-img as the oracle: images qemu-img
 * makes (versions 2 and 3, 512 B to 2 MiB clusters, refcount widths 1 to 64 bits, zlib and
 * zstd compression, raw and qcow2 backing files with relative names) read byte for byte as
 * `qemu-img convert -O raw` does; random reads, writes, write-zeroes, discards and flushes
 * on a qcow2 over a qcow2 over a raw file follow an in-memory model, survive a reopen, and
 * leave an image `qemu-img check` finds clean and `qemu-img compare` finds equal to the
 * model; several threads writing at once into one fresh image.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/qcow2.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

#define SRC_SIZE ((6u << 20) + 3 * 512)

/* A disk with random, zero and compressible stretches (and a short last cluster). */
static uint8_t *make_source(size_t len, uint64_t seed)
{
	uint8_t *b = calloc(1, len);

	q2t_fill(b, len / 6, seed);
	for (size_t i = len / 3; i < len * 2 / 3; i++)
		b[i] = (uint8_t)("qcow2 compressible text "[i % 24]);
	for (size_t i = len * 2 / 3; i + 4096 < len; i += 96 * 1024)
		q2t_fill(b + i, 5000, seed + i);
	q2t_fill(b + len - 700, 700, seed + 1);
	return b;
}

/* Reads img through the library and compares it with qemu-img's conversion to raw. */
static bool matches_qemu(const char *dir, const char *img)
{
	char raw[512];
	size_t len;
	struct q2t_img q;
	bool ok = false;

	snprintf(raw, sizeof(raw), "%s/oracle.raw", dir);
	if (q2t_sh("qemu-img convert -O raw '%s' '%s'", img, raw) != 0)
		return false;
	uint8_t *want = q2t_file(raw, &len);
	unlink(raw);
	if (!want)
		return false;
	if (q2t_open(&q, img, true) == 0) {
		uint8_t *got = q2t_read_all(q.q);
		ok = got && qcow2_size(q.q) == len && memcmp(got, want, len) == 0;
		if (!ok)
			printf("  %s: content differs from qemu-img's\n", img);
		free(got);
		q2t_close(&q);
	} else {
		printf("  %s: %s\n", img, q.err);
	}
	free(want);
	return ok;
}

TEST(qcow2_read_formats_match_qemu_img)
{
	static const struct {
		const char *name, *opts;
	} cfg[] = {
		{ "v2", "-o compat=0.10" },
		{ "v3-512", "-o cluster_size=512" },
		{ "v3-64k", "" },
		{ "v3-2M", "-o cluster_size=2M" },
		{ "zlib", "-c" },
		{ "zlib-4k", "-c -o cluster_size=4096" },
		{ "zstd", "-c -o compression_type=zstd" },
		{ "zstd-512", "-c -o compression_type=zstd,cluster_size=512" },
		{ "rc1", "-o refcount_bits=1" },
		{ "rc64", "-o refcount_bits=64" },
		{ "v2-zlib", "-c -o compat=0.10" },
	};
	struct tmp t;
	char src[256], img[256];

	REQUIRE(tmp_make(&t, "src.raw"));
	snprintf(src, sizeof(src), "%s", t.path);
	uint8_t *b = make_source(SRC_SIZE, 7);
	REQUIRE(q2t_write_file(src, b, SRC_SIZE));
	for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
		snprintf(img, sizeof(img), "%s/%s.qcow2", t.dir, cfg[i].name);
		REQUIRE(q2t_sh("qemu-img convert -f raw -O qcow2 %s '%s' '%s'", cfg[i].opts, src,
			       img) == 0);
		CHECK(matches_qemu(t.dir, img));
		unlink(img);
	}
	free(b);
	q2t_rmdir(t.dir);
}

TEST(qcow2_read_chain_match_qemu_img)
{
	struct tmp t;
	char d[256];

	REQUIRE(tmp_make(&t, "x"));
	snprintf(d, sizeof(d), "%s", t.dir);
	uint8_t *b = make_source(4u << 20, 11);
	char p[512];
	snprintf(p, sizeof(p), "%s/sub", d);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/sub/base.raw", d);
	REQUIRE(q2t_write_file(p, b, (4u << 20) - 1000)); /* shorter than the disk above it */
	free(b);
	/* sub/mid.qcow2 names "base.raw" (its own directory); top names "sub/mid.qcow2". */
	REQUIRE(q2t_sh("cd '%s/sub' && qemu-img create -f qcow2 -o cluster_size=4096 -b base.raw "
		       "-F raw mid.qcow2 6M",
		       d) == 0);
	REQUIRE(q2t_sh("qemu-io -c 'write -P 0x5a 100k 300k' -c 'write -z 1M 64k' -c 'write -P 7 "
		       "4092k 200k' '%s/sub/mid.qcow2'",
		       d) == 0);
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -b sub/mid.qcow2 -F qcow2 top.qcow2",
		       d) == 0);
	REQUIRE(q2t_sh("qemu-io -c 'write -P 0x33 64k 64k' -c 'write -z 200k 128k' -c 'discard 1M "
		       "64k' -c 'write -P 1 5M 3k' '%s/top.qcow2'",
		       d) == 0);
	snprintf(p, sizeof(p), "%s/top.qcow2", d);
	CHECK(matches_qemu(d, p));
	snprintf(p, sizeof(p), "%s/sub/mid.qcow2", d);
	CHECK(matches_qemu(d, p));

	/* A compressed qcow2 backing file, probed (no backing format extension). */
	REQUIRE(q2t_sh("cd '%s' && qemu-img convert -c -O qcow2 -o compression_type=zstd top.qcow2 "
		       "z.qcow2 && qemu-img create -f qcow2 -o compat=0.10 -b z.qcow2 -F qcow2 "
		       "v2top.qcow2 6M && qemu-io -c 'write -P 9 3000k 70k' v2top.qcow2",
		       d) == 0);
	snprintf(p, sizeof(p), "%s/v2top.qcow2", d);
	/* The backing format extension becomes an unknown one: skipped, and the format probed. */
	size_t len;
	uint8_t *f = q2t_file(p, &len);
	REQUIRE(f && len > 80 && memcmp(f + 72, "\xe2\x79\x2a\xca", 4) == 0);
	memcpy(f + 72, "\x12\x34\x56\x78", 4);
	REQUIRE(q2t_write_file(p, f, len));
	free(f);
	CHECK(matches_qemu(d, p));
	q2t_rmdir(d);
}

/* ---- random I/O against a model ---- */

struct model {
	struct qcow2 *q;
	uint8_t *m;
	uint64_t size;
	uint64_t s;
};

/* A request's buffer split into 1..4 pieces of odd lengths. */
static int split(struct model *md, uint8_t *buf, uint64_t len, struct iovec *v)
{
	int cnt = 0;
	uint64_t done = 0;

	while (done < len) {
		uint64_t l = cnt == 3 ? len - done : (q2t_rand(&md->s) % (len - done)) + 1;
		v[cnt].iov_base = buf + done;
		v[cnt].iov_len = l;
		done += l;
		cnt++;
	}
	return cnt;
}

static bool random_ops(struct model *md, int ops, uint64_t maxlen)
{
	uint8_t *buf = malloc(maxlen);
	bool ok = true;

	for (int i = 0; i < ops && ok; i++) {
		uint64_t op = q2t_rand(&md->s) % 10;
		uint64_t len = ((q2t_rand(&md->s) % (maxlen / 512)) + 1) * 512;
		uint64_t off = (q2t_rand(&md->s) % (md->size / 512)) * 512;
		struct iovec v[4];
		int r = 0;
		if (off + len > md->size)
			len = md->size - off;
		if (op < 4) {
			q2t_fill(buf, len, md->s + (uint64_t)i);
			r = qcow2_write(md->q, v, split(md, buf, len, v), off, len);
			memcpy(md->m + off, buf, len);
		} else if (op < 6) {
			r = qcow2_read(md->q, v, split(md, buf, len, v), off, len);
			if (!r && memcmp(buf, md->m + off, len)) {
				printf("  read at %llu+%llu differs (op %d)\n",
				       (unsigned long long)off, (unsigned long long)len, i);
				ok = false;
			}
		} else if (op == 6) {
			r = qcow2_write_zeroes(md->q, off, len);
			memset(md->m + off, 0, len);
		} else if (op == 7) {
			r = qcow2_discard(md->q, off, len);
			memset(md->m + off, 0, len);
		} else if (op == 8) {
			r = qcow2_flush(md->q);
		} else {
			/* Whole, aligned clusters now and then: the full-cluster paths. */
			uint64_t a = off & ~(uint64_t)65535;
			uint64_t l = a + 131072 <= md->size ? 131072 : md->size - a;
			r = q2t_rand(&md->s) & 1 ? qcow2_discard(md->q, a, l) :
						   qcow2_write_zeroes(md->q, a, l);
			memset(md->m + a, 0, l);
		}
		if (r) {
			printf("  op %llu at %llu+%llu: %s\n", (unsigned long long)op,
			       (unsigned long long)off, (unsigned long long)len, strerror(-r));
			ok = false;
		}
	}
	free(buf);
	return ok;
}

static bool check_clean(const char *img)
{
	int r = q2t_sh("qemu-img check '%s'", img);

	if (r)
		printf("  qemu-img check %s: exit %d\n", img, r);
	return r == 0;
}

/* The model as a raw file, then qemu-img compare against the image. */
static bool compare_model(const char *dir, const char *img, const uint8_t *m, uint64_t size)
{
	char raw[512];

	snprintf(raw, sizeof(raw), "%s/model.raw", dir);
	if (!q2t_write_file(raw, m, size))
		return false;
	int r = q2t_sh("qemu-img compare -f raw -F qcow2 '%s' '%s'", raw, img);
	unlink(raw);
	if (r)
		printf("  qemu-img compare %s: exit %d\n", img, r);
	return r == 0;
}

static void random_io(unsigned cluster_bits, bool v2, bool lazy, uint64_t size, int ops,
		      uint64_t seed)
{
	struct tmp t;
	char d[256], top[512], oracle[512];
	struct q2t_img img;
	size_t len;

	REQUIRE(tmp_make(&t, "x"));
	snprintf(d, sizeof(d), "%s", t.dir);
	uint8_t *b = make_source(3u << 20, seed);
	snprintf(top, sizeof(top), "%s/base.raw", d);
	REQUIRE(q2t_write_file(top, b, 3u << 20));
	free(b);
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2 %llu && "
		       "qemu-io -c 'write -P 0x44 1M 333k' -c 'write -z 2M 64k' mid.qcow2",
		       d, (unsigned long long)size) == 0);
	snprintf(top, sizeof(top), "%s/top.qcow2", d);
	if (v2) {
		REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -o compat=0.10,cluster_size=%u "
			       "-b mid.qcow2 -F qcow2 top.qcow2",
			       d, 1u << cluster_bits) == 0);
	} else {
		char err[256];
		struct qcow2_create_args ca = { .path = top,
						.backing = "mid.qcow2",
						.cluster_bits = cluster_bits,
						.lazy_refcounts = lazy };
		int r = qcow2_create(&ca, err, sizeof(err));
		if (r)
			printf("  create: %s\n", err);
		REQUIRE(r == 0);
	}
	snprintf(oracle, sizeof(oracle), "%s/start.raw", d);
	REQUIRE(q2t_sh("qemu-img convert -O raw '%s' '%s'", top, oracle) == 0);

	struct model md = { .s = seed };
	md.m = q2t_file(oracle, &len);
	REQUIRE(md.m && len == size);
	md.size = size;
	REQUIRE(q2t_open(&img, top, false) == 0);
	md.q = img.q;
	if (cluster_bits == 9) {
		/* Every cluster written: the refcount table has to grow (it covers 8 MiB). */
		uint8_t *w = malloc(256 << 10);
		REQUIRE(w);
		for (uint64_t off = 0; off < size; off += 256 << 10) {
			struct iovec v = { w, 256 << 10 };
			q2t_fill(w, 256 << 10, off);
			CHECK(qcow2_write(md.q, &v, 1, off, 256 << 10) == 0);
			memcpy(md.m + off, w, 256 << 10);
		}
		free(w);
	}
	CHECK(random_ops(&md, ops, 3u << cluster_bits > 200000 ? 200000 : 3u << cluster_bits));
	q2t_close(&img);
	CHECK(check_clean(top));

	REQUIRE(q2t_open(&img, top, false) == 0);
	uint8_t *got = q2t_read_all(img.q);
	CHECK(got && memcmp(got, md.m, size) == 0);
	free(got);
	md.q = img.q;
	CHECK(random_ops(&md, ops / 2, 70000));
	q2t_close(&img);
	CHECK(check_clean(top));
	CHECK(compare_model(d, top, md.m, size));
	free(md.m);
	q2t_rmdir(d);
}

TEST(qcow2_random_io_64k)
{
	random_io(16, false, false, 5u << 20, 400, 1);
}

TEST(qcow2_random_io_4k_lazy)
{
	random_io(12, false, true, 5u << 20, 400, 2);
}

TEST(qcow2_random_io_512_grows_refcount_table)
{
	random_io(9, false, false, 12u << 20, 300, 3);
}

TEST(qcow2_random_io_v2)
{
	random_io(13, true, false, 4u << 20, 300, 4);
}

/* ---- concurrent writers ---- */

#define CW_THREADS 4
#define CW_SIZE (8u << 20)

struct cw_arg {
	struct qcow2 *q;
	int t;
	int err;
};

static uint8_t cw_byte(int t, uint64_t sector)
{
	return (uint8_t)(t * 37 + sector * 11 + 1);
}

/*
 * Thread t writes its own quarter of the first half in 4 KiB pieces, and in the second half
 * the sectors s with s % 4 == t: every first write into a cluster there races the others.
 */
static void *cw_thread(void *p)
{
	struct cw_arg *a = p;
	uint8_t buf[4096];
	uint64_t s = (uint64_t)a->t + 99;

	for (int i = 0; i < 300 && !a->err; i++) {
		uint64_t off;
		uint64_t len;
		if (i & 1) {
			off = (uint64_t)a->t * (CW_SIZE / 8) +
			      (q2t_rand(&s) % (CW_SIZE / 8 / 4096)) * 4096;
			len = 4096;
		} else {
			off = CW_SIZE / 2 +
			      ((q2t_rand(&s) % (CW_SIZE / 2 / 2048)) * 4 + (uint64_t)a->t) * 512;
			len = 512;
		}
		for (uint64_t k = 0; k < len; k++)
			buf[k] = cw_byte(a->t, (off + k) / 512);
		struct iovec v = { buf, len };
		a->err = qcow2_write(a->q, &v, 1, off, len);
		if (!a->err && (i % 50) == 49)
			a->err = qcow2_flush(a->q);
		if (!a->err && (i % 7) == 3) {
			/* A reader too: what this thread wrote earlier must be there. */
			uint8_t rb[512];
			struct iovec rv = { rb, 512 };
			a->err = qcow2_read(a->q, &rv, 1, off, 512);
			if (!a->err && memcmp(rb, buf, 512))
				a->err = -EILSEQ;
		}
	}
	return NULL;
}

TEST(qcow2_concurrent_writers)
{
	struct tmp t;
	struct q2t_img img;
	char err[256];
	pthread_t th[CW_THREADS];
	struct cw_arg args[CW_THREADS];

	REQUIRE(tmp_make(&t, "cw.qcow2"));
	for (unsigned cb = 12; cb <= 16; cb += 4) {
		struct qcow2_create_args ca = { .path = t.path,
						.size = CW_SIZE,
						.cluster_bits = cb };
		REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
		REQUIRE(q2t_open(&img, t.path, false) == 0);
		for (int i = 0; i < CW_THREADS; i++) {
			args[i] = (struct cw_arg){ .q = img.q, .t = i };
			pthread_create(&th[i], NULL, cw_thread, &args[i]);
		}
		for (int i = 0; i < CW_THREADS; i++) {
			pthread_join(th[i], NULL);
			CHECK(args[i].err == 0);
		}
		/* Every sector in the shared half holds its writer's bytes or zeros. */
		uint8_t *got = q2t_read_all(img.q);
		REQUIRE(got);
		bool ok = true;
		for (uint64_t sct = CW_SIZE / 2 / 512; sct < CW_SIZE / 512 && ok; sct++) {
			uint8_t c = got[sct * 512];
			ok = (c == 0 || c == cw_byte((int)(sct % 4), sct)) &&
			     got[sct * 512 + 511] == c;
		}
		CHECK(ok);
		q2t_close(&img);
		CHECK(check_clean(t.path));
		/* And the same after a reopen, as qemu-img sees it. */
		REQUIRE(q2t_open(&img, t.path, true) == 0);
		uint8_t *again = q2t_read_all(img.q);
		CHECK(again && memcmp(again, got, CW_SIZE) == 0);
		free(again);
		q2t_close(&img);
		CHECK(compare_model(t.dir, t.path, got, CW_SIZE));
		free(got);
		unlink(t.path);
	}
	q2t_rmdir(t.dir);
}

/* Writing images with every refcount width qemu-img makes (1 to 64 bits). */
TEST(qcow2_write_refcount_widths)
{
	struct tmp t;
	struct q2t_img img;

	REQUIRE(tmp_make(&t, "rc.qcow2"));
	for (unsigned bits = 1; bits <= 64; bits *= 2) {
		unlink(t.path);
		REQUIRE(q2t_sh("qemu-img create -f qcow2 -o refcount_bits=%u,cluster_size=4096 "
			       "'%s' 2M",
			       bits, t.path) == 0);
		struct model md = { .s = bits, .size = 2u << 20 };
		md.m = calloc(1, md.size);
		REQUIRE(md.m && q2t_open(&img, t.path, false) == 0);
		md.q = img.q;
		CHECK(random_ops(&md, 150, 20000));
		q2t_close(&img);
		CHECK(check_clean(t.path));
		CHECK(compare_model(t.dir, t.path, md.m, md.size));
		free(md.m);
	}
	q2t_rmdir(t.dir);
}
