/*
 * Compressed clusters written (tern img convert --compress, as qemu-img convert -c): one
 * guest cluster deflated (zlib, raw, 4 KiB window, as QEMU) or, when the header says so,
 * a zstd frame, into whole 512-byte sectors packed one after another in host clusters
 * taken for that purpose. A compressed cluster never crosses into the next host cluster,
 * so each host cluster's refcount is the number of compressed clusters in it, which is
 * what `qemu-img check` counts. Data that does not shrink below a cluster is written as
 * a plain cluster instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <zlib.h>
#include <zstd.h>

#include "backend/qcow2_impl.h"

/* in (q->cs bytes) compressed into out (cap bytes); its length, or 0 if it does not fit. */
static size_t squeeze(const struct qcow2 *q, const uint8_t *in, uint8_t *out, size_t cap)
{
	if (q->h.compression == Q2_COMP_ZSTD) {
		size_t r = ZSTD_compress(out, cap, in, q->cs, ZSTD_CLEVEL_DEFAULT);
		return ZSTD_isError(r) ? 0 : r;
	}
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)q->cs;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int zr = deflate(&z, Z_FINISH);
	size_t len = zr == Z_STREAM_END ? cap - z.avail_out : 0;
	deflateEnd(&z);
	return len;
}

/* Under the lock: where bytes (whole sectors) of compressed data go; counted in. */
static int place(struct qcow2 *q, uint64_t bytes, uint64_t *host)
{
	int r;

	if (q->comp_next && (q->comp_next & (q->cs - 1)) + bytes <= q->cs) {
		/* One more compressed cluster in this host cluster: one more reference. */
		uint64_t rc, c = q->comp_next / q->cs;
		if ((r = q2_rc_get(q, c, &rc)))
			return r;
		if (rc) {
			if ((r = q2_rc_set(q, c, rc + 1)))
				return r;
			*host = q->comp_next;
			q->comp_next += bytes;
			return 0;
		}
	}
	if ((r = q2_alloc(q, host)))
		return r;
	q->comp_next = *host + bytes;
	return 0;
}

int qcow2_write_compressed(struct qcow2 *q, uint64_t off, const void *data, size_t len)
{
	uint64_t cs = q->cs, gc = off >> q->h.cluster_bits;
	uint8_t *in = NULL, *out = NULL;
	int r = 0;

	if (q->readonly)
		return -EROFS;
	if ((off & (cs - 1)) || off >= q->h.size || len == 0 || len > cs ||
	    (len < cs && off + len != q->h.size))
		return -EINVAL; /* one whole cluster, or the disk's last (short) one */
	if (!(in = calloc(1, cs)) || !(out = malloc(cs)))
		r = -ENOMEM;
	if (r)
		goto out;
	memcpy(in, data, len);
	/* A cluster of sectors at most, less one: smaller than the plain cluster. */
	size_t clen = squeeze(q, in, out, cs - 512);
	if (!clen) {
		struct iovec v = { in, len };
		r = qcow2_write(q, &v, 1, off, len);
		goto out;
	}
	uint64_t bytes = (clen + 511) & ~511ull, host;
	memset(out + clen, 0, bytes - clen);
	unsigned x = 62 - (q->h.cluster_bits - 8);
	pthread_mutex_lock(&q->lock);
	struct q2_map m;
	r = q->werr;
	if (!r && q2_in_flight(q, gc))
		r = -EBUSY;
	if (!r)
		r = q2_lookup(q, gc, &m);
	if (!r && m.kind != Q2_UNALLOC)
		r = -EEXIST; /* as QEMU: compressed data goes only where there is none */
	if (!r)
		r = place(q, bytes, &host);
	if (!r) {
		q2_wrote(q);
		/* The data is on disk before its entry can be (the write-back syncs first). */
		if ((r = q2_pwrite(q->fd, out, bytes, host)))
			q->werr = r;
	}
	if (!r)
		r = q2_l2_set(q, gc, Q2_OFLAG_COMPRESSED | host | ((bytes / 512 - 1) << x), NULL);
	pthread_mutex_unlock(&q->lock);
out:
	free(in);
	free(out);
	return r;
}
