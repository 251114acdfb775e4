/*
 * qcow2_create: a new, empty version 3 image with 16-bit refcounts, as `qemu-img create
 * -f qcow2` makes one. Layout: the header cluster (with the backing format and feature
 * names), the L1 table, the refcount table, then the refcount blocks that count all of
 * these. The file is created O_EXCL and removed again on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"

/* The backing file's format and size, read the way qcow2_open will read them. */
static int probe_backing(const char *path, const char *given, char *fmt, size_t fmtlen,
			 uint64_t *size, char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = NULL;
	int r;

	if (fd < 0) {
		r = -errno;
		q2_err(err, n, "backing file %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st)) {
		r = -errno;
		q2_err(err, n, "backing file %s: %s", path, strerror(errno));
		goto out;
	}
	off_t end = lseek(fd, 0, SEEK_END);
	uint64_t fsize = end > 0 ? (uint64_t)end : 0;
	size_t len = fsize < 65536 ? (size_t)fsize : 65536;
	buf = malloc(len ? len : 1);
	r = buf ? q2_pread(fd, buf, len, 0) : -ENOMEM;
	if (r) {
		q2_err(err, n, "backing file %s: %s", path, strerror(-r));
		goto out;
	}
	bool is_qcow2 = qcow2_probe(buf, len);
	if (given && strcmp(given, "qcow2") && strcmp(given, "raw")) {
		q2_err(err, n, "backing format '%s' is not supported (qcow2 or raw)", given);
		r = -EINVAL;
		goto out;
	}
	snprintf(fmt, fmtlen, "%s", given ? given : is_qcow2 ? "qcow2" : "raw");
	if (strcmp(fmt, "qcow2") == 0) {
		struct q2_header h;
		char perr[256];
		/* Only the size is needed here; qcow2_open checks the rest. */
		r = q2_header_parse(buf, len, fsize, &h, perr, sizeof(perr));
		if (r && len >= 32 && is_qcow2) {
			h.size = be_get64(buf + 24);
			r = 0;
		}
		if (r) {
			q2_err(err, n, "backing file %s: %s", path, perr);
			goto out;
		}
		*size = h.size;
	} else {
		*size = fsize;
	}
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int write_layout(int fd, const struct q2_header *tmpl, uint64_t size, unsigned cb, char *err,
			size_t n)
{
	uint64_t cs = 1ull << cb, epb = cs * 8 / 16;
	uint64_t per_l1 = cs << (cb - 3);
	uint64_t l1_size = (size + per_l1 - 1) / per_l1;
	struct q2_header h = *tmpl;
	uint8_t *buf;
	int r;

	if (l1_size == 0)
		l1_size = 1;
	if (l1_size * 8 > Q2_L1_MAX_BYTES) {
		q2_err(err, n, "size %llu needs an L1 table larger than %u bytes",
		       (unsigned long long)size, Q2_L1_MAX_BYTES);
		return -EFBIG;
	}
	uint64_t l1c = (l1_size * 8 + cs - 1) / cs, k = 1, nt = 1;
	for (;;) {
		uint64_t total = 1 + l1c + nt + k;
		uint64_t kk = (total + epb - 1) / epb, nn = (kk * 8 + cs - 1) / cs;
		if (kk <= k && nn <= nt)
			break;
		k = kk > k ? kk : k;
		nt = nn > nt ? nn : nt;
	}
	uint64_t total = 1 + l1c + nt + k;
	h.size = size;
	h.l1_size = (uint32_t)l1_size;
	h.l1_off = cs;
	h.rt_off = (1 + l1c) * cs;
	h.rt_clusters = (uint32_t)nt;

	buf = calloc(1, nt * cs > cs ? nt * cs : cs);
	if (!buf)
		return -ENOMEM;
	if (!q2_header_build(&h, buf, cs)) {
		q2_err(err, n, "the backing file name does not fit in a %llu-byte header cluster",
		       (unsigned long long)cs);
		free(buf);
		return -ENAMETOOLONG;
	}
	r = q2_pwrite(fd, buf, cs, 0);
	/* The L1 table stays a hole: zeros, nothing mapped. */
	memset(buf, 0, nt * cs);
	for (uint64_t j = 0; j < k; j++)
		be_put64(buf + j * 8, (1 + l1c + nt + j) * cs);
	if (!r)
		r = q2_pwrite(fd, buf, nt * cs, h.rt_off);
	for (uint64_t j = 0; !r && j < k; j++) {
		memset(buf, 0, cs);
		for (uint64_t i = j * epb; i < (j + 1) * epb && i < total; i++)
			buf[(i - j * epb) * 2 + 1] = 1; /* 16-bit big-endian 1 */
		r = q2_pwrite(fd, buf, cs, (1 + l1c + nt + j) * cs);
	}
	if (!r && fdatasync(fd))
		r = -errno;
	if (r)
		q2_err(err, n, "writing the image: %s", strerror(-r));
	free(buf);
	return r;
}

int qcow2_create(const struct qcow2_create_args *a, char *err, size_t n)
{
	unsigned cb = a->cluster_bits ? a->cluster_bits : QCOW2_CLUSTER_BITS_DEFAULT;
	struct q2_header h;
	uint64_t size = a->size;
	int r;

	memset(&h, 0, sizeof(h));
	if (cb < QCOW2_CLUSTER_BITS_MIN || cb > QCOW2_CLUSTER_BITS_MAX) {
		q2_err(err, n, "cluster_bits %u is out of range (%u..%u)", cb,
		       QCOW2_CLUSTER_BITS_MIN, QCOW2_CLUSTER_BITS_MAX);
		return -EINVAL;
	}
	if (a->backing) {
		char path[4096];
		const char *slash = strrchr(a->path, '/');
		uint64_t bsize = 0;
		if (!a->backing[0] || strlen(a->backing) > Q2_BACKING_NAME_MAX) {
			q2_err(err, n, "backing file name must be 1..%d bytes",
			       Q2_BACKING_NAME_MAX);
			return -EINVAL;
		}
		if (a->backing[0] == '/' || !slash)
			snprintf(path, sizeof(path), "%s", a->backing);
		else
			snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - a->path), a->path,
				 a->backing);
		r = probe_backing(path, a->backing_format, h.backing_fmt, sizeof(h.backing_fmt),
				  &bsize, err, n);
		if (r)
			return r;
		if (!size)
			size = bsize;
		snprintf(h.backing, sizeof(h.backing), "%s", a->backing);
	}
	size = (size + 511) & ~511ull;
	if (size == 0 || size > Q2_SIZE_MAX) {
		q2_err(err, n, "size %llu is out of range (512..%llu)", (unsigned long long)size,
		       (unsigned long long)Q2_SIZE_MAX);
		return -EINVAL;
	}
	h.version = 3;
	h.cluster_bits = cb;
	h.refcount_order = 4;
	h.compat = a->lazy_refcounts ? Q2_COMPAT_LAZY : 0;
	h.compression = a->zstd ? Q2_COMP_ZSTD : Q2_COMP_ZLIB;
	h.incompat = a->zstd ? Q2_INCOMPAT_COMPRESSION : 0;

	int fd = open(a->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		q2_err(err, n, "%s: %s", a->path, strerror(errno));
		return r;
	}
	char werr[512] = "";
	r = write_layout(fd, &h, size, cb, werr, sizeof(werr));
	if (close(fd) && !r) {
		r = -errno;
		snprintf(werr, sizeof(werr), "closing: %s", strerror(errno));
	}
	if (r) {
		unlink(a->path);
		q2_err(err, n, "%s: %s", a->path, werr);
	}
	return r;
}
