/*
 * Requests: read, write, discard, write-zeroes, flush. Each takes q->lock to look up
 * (and, for a write, allocate) a run of clusters and drops it for the data transfer, so
 * requests on allocated clusters run in parallel. A cluster being allocated is listed as
 * in flight from allocation until its L2 entry is published (after its data is written):
 * every other request touching it waits, so nobody sees it half written.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "backend/qcow2_impl.h"

/* Pending frees worth a write-back of their own, so discarded space gets reused. */
#define Q2_PENDING_FLUSH 4096

static const uint8_t zero_page[65536];

/* The part [skip, skip+len) of an iovec array, in out (which has room for cnt entries). */
static int iov_slice(const struct iovec *iov, int cnt, uint64_t skip, uint64_t len,
		     struct iovec *out)
{
	int n = 0;

	for (int i = 0; i < cnt && len; i++) {
		uint64_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = l - skip < len ? l - skip : len;
		out[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[n].iov_len = take;
		n++;
		len -= take;
		skip = 0;
	}
	return n;
}

static void iov_zero(const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

static void iov_to_buf(const struct iovec *iov, int cnt, uint8_t *buf)
{
	for (int i = 0; i < cnt; i++) {
		memcpy(buf, iov[i].iov_base, iov[i].iov_len);
		buf += iov[i].iov_len;
	}
}

static void buf_to_iov(const uint8_t *buf, const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++) {
		memcpy(iov[i].iov_base, buf, iov[i].iov_len);
		buf += iov[i].iov_len;
	}
}

/* Advances an iovec array by done bytes in place; returns the new start. */
static struct iovec *iov_advance(struct iovec *iov, int *cnt, size_t done)
{
	while (*cnt && done >= iov->iov_len) {
		done -= iov->iov_len;
		iov++;
		(*cnt)--;
	}
	if (*cnt) {
		iov->iov_base = (uint8_t *)iov->iov_base + done;
		iov->iov_len -= done;
	}
	return iov;
}

/* preadv/pwritev of all of it (iov is consumed); a read past the end of the file is zeros. */
static int rw_full(int fd, struct iovec *iov, int cnt, uint64_t off, bool wr)
{
	while (cnt) {
		int c = cnt > IOV_MAX ? IOV_MAX : cnt;
		ssize_t r = wr ? pwritev(fd, iov, c, (off_t)off) : preadv(fd, iov, c, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (wr)
				return -EIO;
			iov_zero(iov, cnt);
			return 0;
		}
		off += (uint64_t)r;
		iov = iov_advance(iov, &cnt, (size_t)r);
	}
	return 0;
}

int q2_decompress(const struct qcow2 *q, const uint8_t *in, size_t inlen, uint8_t *out)
{
	size_t cs = q->cs;
	uint8_t extra;

	if (q->h.compression == Q2_COMP_ZSTD) {
		ZSTD_DCtx *d = ZSTD_createDCtx();
		if (!d)
			return -ENOMEM;
		ZSTD_inBuffer ib = { in, inlen, 0 };
		ZSTD_outBuffer ob = { out, cs, 0 };
		size_t ret = 1;
		int r = 0;
		while (ob.pos < ob.size) {
			size_t before_in = ib.pos, before_out = ob.pos;
			ret = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(ret) || ret == 0 ||
			    (ib.pos == before_in && ob.pos == before_out))
				break;
		}
		if (ZSTD_isError(ret) || ob.pos != cs) {
			r = -EIO;
		} else if (ret != 0) {
			/* Full: the frame must not have more to give. */
			ZSTD_outBuffer eb = { &extra, 1, 0 };
			ret = ZSTD_decompressStream(d, &eb, &ib);
			if (ZSTD_isError(ret) || eb.pos)
				r = -EIO;
		}
		ZSTD_freeDCtx(d);
		return r;
	}
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = out;
	z.avail_out = (uInt)cs;
	int zr = inflate(&z, Z_FINISH);
	int r = 0;
	if (z.avail_out != 0 || (zr != Z_STREAM_END && zr != Z_BUF_ERROR && zr != Z_OK)) {
		r = -EIO;
	} else if (zr != Z_STREAM_END) {
		z.next_out = &extra;
		z.avail_out = 1;
		zr = inflate(&z, Z_FINISH);
		if (z.avail_out == 0)
			r = -EIO;
	}
	inflateEnd(&z);
	return r;
}

/* The cluster's compressed bytes, inflated into out (cs bytes). */
static int read_compressed(struct qcow2 *q, const struct q2_map *m, uint64_t gc, uint8_t *out)
{
	uint8_t *in = malloc(m->csize);

	if (!in)
		return -ENOMEM;
	int r = q2_pread(q->fd, in, m->csize, m->host);
	if (!r) {
		r = q2_decompress(q, in, m->csize, out);
		if (r == -EIO)
			q2_eio(q,
			       "compressed cluster at %llu (guest offset %llu, %llu bytes) does "
			       "not inflate to exactly one cluster",
			       (unsigned long long)m->host, (unsigned long long)(gc * q->cs),
			       (unsigned long long)m->csize);
	}
	free(in);
	return r;
}

/* What lies under this image at [off, off+len): the backing file, zeros past its end. */
static int read_backing(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t off,
			uint64_t len)
{
	uint64_t bsize = q2_backing_size(q);

	if (off >= bsize) {
		iov_zero(iov, cnt);
		return 0;
	}
	uint64_t have = bsize - off < len ? bsize - off : len;
	struct iovec stack[16], *sub = cnt <= 16 ? stack : malloc(sizeof(*sub) * (size_t)cnt);
	if (!sub)
		return -ENOMEM;
	int r, n = iov_slice(iov, cnt, 0, have, sub);
	if (q->bq)
		r = qcow2_read(q->bq, sub, n, off, have);
	else
		r = rw_full(q->bfd, sub, n, off, false);
	if (!r && have < len) {
		n = iov_slice(iov, cnt, have, len - have, sub);
		iov_zero(sub, n);
	}
	if (sub != stack)
		free(sub);
	return r;
}

bool q2_in_flight(const struct qcow2 *q, uint64_t gc)
{
	for (const struct q2_inflight *f = q->inflight; f; f = f->next)
		if (f->gc == gc)
			return true;
	return false;
}

/* Under the lock: waits until no allocation of gc is in flight, then looks it up. */
static int lookup_settled(struct qcow2 *q, uint64_t gc, struct q2_map *m)
{
	while (q2_in_flight(q, gc))
		pthread_cond_wait(&q->cond, &q->lock);
	return q2_lookup(q, gc, m);
}

/* How many of the clusters after gc (up to max in all) continue m's run. */
static int extend_run(struct qcow2 *q, uint64_t gc, const struct q2_map *m, uint64_t max,
		      bool need_copied, uint64_t *count)
{
	uint64_t k = 1;

	for (; k < max; k++) {
		struct q2_map n;
		if (q2_in_flight(q, gc + k))
			break;
		int r = q2_lookup(q, gc + k, &n);
		if (r)
			return r;
		if (n.kind != m->kind)
			break;
		if (m->kind == Q2_DATA &&
		    (n.host != m->host + k * q->cs || (need_copied && !n.copied)))
			break;
		if (m->kind == Q2_COMP)
			break;
	}
	*count = k;
	return 0;
}

static int check_range(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	if (off > q->h.size || len > q->h.size - off)
		return -EINVAL;
	return 0;
}

int qcow2_block_status(struct qcow2 *q, uint64_t off, uint64_t len, uint64_t *run)
{
	uint64_t gc = off >> q->h.cluster_bits, in = off & (q->cs - 1), nclusters = 1;
	struct q2_map m;
	int r = len ? check_range(q, off, len) : -EINVAL;

	if (r)
		return r;
	pthread_mutex_lock(&q->lock);
	r = lookup_settled(q, gc, &m);
	if (!r)
		r = extend_run(q, gc, &m, (in + len + q->cs - 1) / q->cs, false, &nclusters);
	pthread_mutex_unlock(&q->lock);
	if (r)
		return r;
	*run = nclusters * q->cs - in < len ? nclusters * q->cs - in : len;
	return m.kind == Q2_UNALLOC ? 0 : 1;
}

int qcow2_read(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len)
{
	struct iovec stack[16], *sub = iovcnt <= 16 ? stack : malloc(sizeof(*sub) * (size_t)iovcnt);
	uint64_t pos = 0;
	int r = check_range(q, off, len);

	if (!sub)
		return -ENOMEM;
	while (!r && pos < len) {
		uint64_t cur = off + pos, gc = cur >> q->h.cluster_bits, in = cur & (q->cs - 1);
		uint64_t left = len - pos, nclusters, n;
		struct q2_map m;

		pthread_mutex_lock(&q->lock);
		r = lookup_settled(q, gc, &m);
		if (!r)
			r = extend_run(q, gc, &m, (in + left + q->cs - 1) / q->cs, false,
				       &nclusters);
		pthread_mutex_unlock(&q->lock);
		if (r)
			break;
		n = nclusters * q->cs - in;
		if (n > left)
			n = left;
		int cnt = iov_slice(iov, iovcnt, pos, n, sub);
		switch (m.kind) {
		case Q2_DATA:
			r = rw_full(q->fd, sub, cnt, m.host + in, false);
			break;
		case Q2_ZERO:
			iov_zero(sub, cnt);
			break;
		case Q2_UNALLOC:
			r = read_backing(q, sub, cnt, cur, n);
			break;
		case Q2_COMP: {
			uint8_t *buf = malloc(q->cs);
			r = buf ? read_compressed(q, &m, gc, buf) : -ENOMEM;
			if (!r)
				buf_to_iov(buf + in, sub, cnt);
			free(buf);
			break;
		}
		}
		pos += n;
	}
	if (sub != stack)
		free(sub);
	return r;
}

int qcow2_place(struct qcow2 *q, bool write, uint64_t off, uint64_t len, struct qcow2_place *p)
{
	uint64_t gc = off >> q->h.cluster_bits, in = off & (q->cs - 1);
	struct q2_map m, n;
	int r = len ? check_range(q, off, len) : -EINVAL;

	if (r)
		return r;
	if (write && q->readonly)
		return -EROFS;
	uint64_t last = (off + len - 1) >> q->h.cluster_bits;
	pthread_mutex_lock(&q->lock);
	r = write ? q->werr : 0;
	if (!r)
		r = q2_in_flight(q, gc) ? -EAGAIN : q2_lookup_cached(q, gc, &m);
	if (!r && (m.kind == Q2_COMP || (write && (m.kind != Q2_DATA || !m.copied))))
		r = -EAGAIN;
	/* The rest of the range must continue the first cluster's answer. */
	for (uint64_t k = 1; !r && k <= last - gc; k++) {
		r = q2_in_flight(q, gc + k) ? -EAGAIN : q2_lookup_cached(q, gc + k, &n);
		if (!r && (n.kind != m.kind || (write && !n.copied) ||
			   (m.kind == Q2_DATA && n.host != m.host + k * q->cs)))
			r = -EAGAIN;
	}
	pthread_mutex_unlock(&q->lock);
	if (r)
		return r;
	switch (m.kind) {
	case Q2_DATA:
		*p = (struct qcow2_place){ QCOW2_PLACE_FILE, q->fd, m.host + in };
		return 0;
	case Q2_ZERO:
		*p = (struct qcow2_place){ QCOW2_PLACE_ZERO, -1, 0 };
		return 0;
	case Q2_UNALLOC:
		break;
	case Q2_COMP:
		return -EAGAIN;
	}
	/* Below this image: the backing file, and zeros past its end (or without one). */
	uint64_t bsize = q2_backing_size(q);
	if (off >= bsize) {
		*p = (struct qcow2_place){ QCOW2_PLACE_ZERO, -1, 0 };
		return 0;
	}
	if (len > bsize - off)
		return -EAGAIN; /* partly past its end: part file, part zeros */
	if (q->bq)
		return qcow2_place(q->bq, false, off, len, p);
	*p = (struct qcow2_place){ QCOW2_PLACE_FILE, q->bfd, off };
	return 0;
}

void qcow2_placed_write_done(struct qcow2 *q)
{
	q2_wrote(q);
}

/* What cluster gc reads as now (its old mapping m), whole, into buf: the base of a CoW. */
static int read_old_cluster(struct qcow2 *q, const struct q2_map *m, uint64_t gc, uint8_t *buf)
{
	uint64_t start = gc * q->cs;
	uint64_t len = q->h.size - start < q->cs ? q->h.size - start : q->cs;

	switch (m->kind) {
	case Q2_DATA:
		return q2_pread(q->fd, buf, q->cs, m->host);
	case Q2_COMP:
		return read_compressed(q, m, gc, buf);
	case Q2_ZERO:
		memset(buf, 0, q->cs);
		return 0;
	case Q2_UNALLOC:
		break;
	}
	struct iovec v = { buf, len };
	memset(buf + len, 0, q->cs - len);
	return read_backing(q, &v, 1, start, len);
}

static void inflight_remove(struct qcow2 *q, struct q2_inflight *f)
{
	for (struct q2_inflight **p = &q->inflight; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	pthread_cond_broadcast(&q->cond);
}

/* After a metadata change, under the lock: keeps the pending frees from piling up. */
static int maybe_writeback(struct qcow2 *q)
{
	return q->npending > Q2_PENDING_FLUSH ? q2_writeback(q, true) : 0;
}

/*
 * One guest cluster that needs a new host cluster (unallocated, zero, compressed, or
 * shared): allocated under the lock, written (with the old content around the new bytes)
 * without it, then published. Called and returns with the lock held.
 */
static int write_alloc(struct qcow2 *q, uint64_t gc, const struct q2_map *old,
		       const struct iovec *sub, int cnt, uint64_t in, uint64_t n)
{
	struct q2_inflight f = { .gc = gc, .next = q->inflight };
	uint64_t host, *tab, prev;
	uint8_t *buf = NULL;
	int r = q->werr;

	if (!r)
		r = q2_l2_prepare(q, gc, &tab); /* the table first: no allocation after the data */
	if (!r)
		r = q2_alloc(q, &host);
	if (r)
		return r;
	q->inflight = &f;
	pthread_mutex_unlock(&q->lock);

	if (n == q->cs) {
		struct iovec stack[16], *v = cnt <= 16 ? stack : malloc(sizeof(*v) * (size_t)cnt);
		if (v) {
			memcpy(v, sub, sizeof(*v) * (size_t)cnt);
			r = rw_full(q->fd, v, cnt, host, true);
			if (v != stack)
				free(v);
		} else {
			r = -ENOMEM;
		}
	} else {
		buf = malloc(q->cs);
		r = buf ? read_old_cluster(q, old, gc, buf) : -ENOMEM;
		if (!r) {
			iov_to_buf(sub, cnt, buf + in);
			r = q2_pwrite(q->fd, buf, q->cs, host);
		}
		free(buf);
	}
	/*
	 * After the write, not before: a flush that ran in between would have cleared the
	 * mark with the data not yet there, and the next one would skip its fdatasync.
	 */
	q2_wrote(q);

	pthread_mutex_lock(&q->lock);
	if (!r)
		r = q2_l2_set(q, gc, host | Q2_OFLAG_COPIED, &prev);
	if (r) {
		/* Nothing points at the new cluster: it can go back at once. */
		q2_rc_set(q, host / q->cs, 0);
		if (host / q->cs < q->free_hint)
			q->free_hint = host / q->cs;
	} else {
		struct q2_map pm;
		if (q2_decode(q, prev, &pm) == 0)
			r = q2_free_later(q, &pm);
		if (!r)
			r = maybe_writeback(q);
	}
	inflight_remove(q, &f);
	return r;
}

/* Most guest clusters one allocating write takes in one run (a 1 MiB write of 4 KiB clusters). */
#define Q2_RUN_MAX 256

/*
 * Guest clusters gc.. that a write of left bytes from offset in inside gc covers and that
 * all need new host clusters (none in flight, all under one L2 table): how many, up to
 * max, their mappings in old[]. The lock is held; gc's own mapping is old[0].
 */
static int alloc_run_len(struct qcow2 *q, uint64_t gc, uint64_t in, uint64_t left,
			 struct q2_map *old, unsigned max)
{
	uint64_t span = (in + left + q->cs - 1) / q->cs;
	unsigned k = 1;

	for (; k < max && k < span; k++) {
		if ((gc + k) >> q->l2_bits != gc >> q->l2_bits || q2_in_flight(q, gc + k))
			break;
		if (q2_lookup(q, gc + k, &old[k]))
			break;
		if (old[k].kind == Q2_DATA && old[k].copied)
			break;
	}
	return (int)k;
}

/*
 * A write over k >= 2 guest clusters that all need new host clusters: k contiguous ones
 * are allocated (fewer if the file does not give them in a row), written with one
 * pwritev (the old content around the new bytes at both ends), then published, as
 * QEMU does: so a sequential write lays the image out in order, and reading it back is one
 * transfer per request rather than one per cluster. Called and returns with the lock
 * held; *done is set to the bytes of the request it wrote.
 */
static int write_alloc_run(struct qcow2 *q, uint64_t gc, const struct q2_map *old, unsigned k,
			   const struct iovec *iov, int iovcnt, uint64_t pos, uint64_t in,
			   uint64_t left, uint64_t *done)
{
	struct q2_inflight *f = calloc(k, sizeof(*f));
	uint64_t host = 0, h, *tab, prev;
	unsigned got = 0;
	int r = f ? q->werr : -ENOMEM;

	if (!r)
		r = q2_l2_prepare(q, gc, &tab); /* the table first: no allocation after the data */
	while (!r && got < k) {
		r = q2_alloc(q, &h);
		if (r)
			break;
		if (got && h != host + got * q->cs) {
			/* Not next to the others: it goes back, and the run is shorter. */
			q2_rc_set(q, h / q->cs, 0);
			if (h / q->cs < q->free_hint)
				q->free_hint = h / q->cs;
			break;
		}
		if (!got)
			host = h;
		got++;
	}
	if (r && got)
		goto give_back;
	if (r) {
		free(f);
		return r;
	}
	for (unsigned i = 0; i < got; i++) {
		f[i] = (struct q2_inflight){ .gc = gc + i, .next = q->inflight };
		q->inflight = &f[i];
	}
	pthread_mutex_unlock(&q->lock);

	/* The bytes of the run: [in, in + n) of its got clusters come from the guest. */
	uint64_t n = got * q->cs - in < left ? got * q->cs - in : left;
	uint64_t tail = got * q->cs - in - n;
	uint8_t *head_buf = in ? malloc(q->cs) : NULL, *tail_buf = tail ? malloc(q->cs) : NULL;
	struct iovec *v = malloc(sizeof(*v) * ((size_t)iovcnt + 2));
	r = (in && !head_buf) || (tail && !tail_buf) || !v ? -ENOMEM : 0;
	if (!r && in)
		r = read_old_cluster(q, &old[0], gc, head_buf);
	if (!r && tail)
		r = read_old_cluster(q, &old[got - 1], gc + got - 1, tail_buf);
	if (!r) {
		int cnt = 0;
		if (in)
			v[cnt++] = (struct iovec){ head_buf, in };
		cnt += iov_slice(iov, iovcnt, pos, n, v + cnt);
		if (tail)
			v[cnt++] = (struct iovec){ tail_buf + q->cs - tail, tail };
		r = rw_full(q->fd, v, cnt, host, true);
		q2_wrote(q); /* after the data (see write_alloc) */
	}
	free(head_buf);
	free(tail_buf);
	free(v);
	pthread_mutex_lock(&q->lock);
	unsigned set = 0;
	while (!r && set < got) {
		r = q2_l2_set(q, gc + set, (host + set * q->cs) | Q2_OFLAG_COPIED, &prev);
		if (r)
			break;
		set++;
		struct q2_map pm;
		if (q2_decode(q, prev, &pm) == 0)
			r = q2_free_later(q, &pm);
	}
	/* Clusters no entry points at (a failed write, a failed table change) go back now. */
	for (unsigned i = set; i < got; i++)
		q2_rc_set(q, host / q->cs + i, 0);
	if (set < got && host / q->cs + set < q->free_hint)
		q->free_hint = host / q->cs + set;
	if (!r)
		r = maybe_writeback(q);
	for (unsigned i = 0; i < got; i++)
		inflight_remove(q, &f[i]);
	free(f);
	if (!r)
		*done = n;
	return r;
give_back:
	for (unsigned i = 0; i < got; i++)
		q2_rc_set(q, host / q->cs + i, 0);
	if (host / q->cs < q->free_hint)
		q->free_hint = host / q->cs;
	free(f);
	return r;
}

int qcow2_write(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len)
{
	struct iovec stack[16], *sub;
	uint64_t pos = 0;
	int r = check_range(q, off, len);

	if (q->readonly)
		return -EROFS;
	if (r)
		return r;
	sub = iovcnt <= 16 ? stack : malloc(sizeof(*sub) * (size_t)iovcnt);
	if (!sub)
		return -ENOMEM;
	while (!r && pos < len) {
		uint64_t cur = off + pos, gc = cur >> q->h.cluster_bits, in = cur & (q->cs - 1);
		uint64_t left = len - pos, nclusters, n;
		struct q2_map m;

		pthread_mutex_lock(&q->lock);
		r = q->werr;
		if (!r)
			r = lookup_settled(q, gc, &m);
		if (!r && m.kind == Q2_DATA && m.copied) {
			/* Allocated and ours alone: only the data moves. */
			r = extend_run(q, gc, &m, (in + left + q->cs - 1) / q->cs, true,
				       &nclusters);
			pthread_mutex_unlock(&q->lock);
			if (r)
				break;
			n = nclusters * q->cs - in;
			if (n > left)
				n = left;
			int cnt = iov_slice(iov, iovcnt, pos, n, sub);
			r = rw_full(q->fd, sub, cnt, m.host + in, true);
			q2_wrote(q); /* after the data (see write_alloc) */
			pos += n;
			continue;
		}
		n = q->cs - in < left ? q->cs - in : left;
		if (!r) {
			struct q2_map old[Q2_RUN_MAX];
			unsigned k = 1;
			old[0] = m;
			if (in + left > q->cs)
				k = alloc_run_len(q, gc, in, left, old, Q2_RUN_MAX);
			if (k >= 2) {
				r = write_alloc_run(q, gc, old, k, iov, iovcnt, pos, in, left, &n);
			} else {
				int cnt = iov_slice(iov, iovcnt, pos, n, sub);
				r = write_alloc(q, gc, &m, sub, cnt, in, n);
			}
		}
		pthread_mutex_unlock(&q->lock);
		pos += n;
	}
	if (sub != stack)
		free(sub);
	return r;
}

/* Writes n zero bytes at off through the write path (partial clusters, version 2). */
static int write_zero_bytes(struct qcow2 *q, uint64_t off, uint64_t n)
{
	struct iovec v[QCOW2_CLUSTER_BITS_MAX > 16 ? 1u << (QCOW2_CLUSTER_BITS_MAX - 16) : 1];
	int cnt = 0;

	for (uint64_t done = 0; done < n; cnt++) {
		uint64_t l = n - done < sizeof(zero_page) ? n - done : sizeof(zero_page);
		v[cnt].iov_base = (void *)zero_page;
		v[cnt].iov_len = l;
		done += l;
	}
	return qcow2_write(q, v, cnt, off, n);
}

/* Does cluster gc (mapping m) already read as zeros everywhere? */
static bool reads_zero(const struct qcow2 *q, const struct q2_map *m, uint64_t gc)
{
	if (m->kind == Q2_ZERO)
		return true;
	if (m->kind != Q2_UNALLOC)
		return false;
	return gc * q->cs >= q2_backing_size(q);
}

/*
 * Zeroes [off, off+len), or (unmap) hands its whole clusters back to the backing file:
 * their entries become unallocated and partial clusters are left as they are.
 */
static int zero_range(struct qcow2 *q, uint64_t off, uint64_t len, bool unmap)
{
	uint64_t pos = 0;
	int r = check_range(q, off, len);
	bool has_backing = q->bq || q->bfd >= 0;

	if (q->readonly)
		return -EROFS;
	while (!r && pos < len) {
		uint64_t cur = off + pos, gc = cur >> q->h.cluster_bits, in = cur & (q->cs - 1);
		uint64_t n = q->cs - in < len - pos ? q->cs - in : len - pos;
		/* The disk's last cluster may be short: covering up to the end is covering it. */
		bool whole = in == 0 && (n == q->cs || cur + n >= q->h.size);
		struct q2_map m;

		pthread_mutex_lock(&q->lock);
		r = q->werr;
		if (!r)
			r = lookup_settled(q, gc, &m);
		if (r || (unmap ? m.kind == Q2_UNALLOC || !whole : reads_zero(q, &m, gc))) {
			pthread_mutex_unlock(&q->lock);
			pos += n;
			continue;
		}
		if (!unmap && (!whole || (q->h.version < 3 && has_backing))) {
			/* No zero flag to use: real zeros, through the write path. */
			pthread_mutex_unlock(&q->lock);
			r = write_zero_bytes(q, cur, n);
			pos += n;
			continue;
		}
		uint64_t prev, v = has_backing && !unmap ? Q2_OFLAG_ZERO : 0;
		r = q2_l2_set(q, gc, v, &prev);
		if (!r) {
			struct q2_map pm;
			if (q2_decode(q, prev, &pm) == 0)
				r = q2_free_later(q, &pm);
		}
		if (!r)
			r = maybe_writeback(q);
		pthread_mutex_unlock(&q->lock);
		pos += n;
	}
	return r;
}

int qcow2_discard(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return zero_range(q, off, len, false);
}

int qcow2_write_zeroes(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return zero_range(q, off, len, false);
}

int qcow2_unmap(struct qcow2 *q, uint64_t off, uint64_t len)
{
	return zero_range(q, off, len, true);
}

int qcow2_flush(struct qcow2 *q)
{
	if (q->readonly)
		return 0;
	pthread_mutex_lock(&q->lock);
	int r = q2_writeback(q, true);
	pthread_mutex_unlock(&q->lock);
	return r;
}

uint64_t qcow2_size(const struct qcow2 *q)
{
	return q->h.size;
}
