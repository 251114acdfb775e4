/*
 * Growing a qcow2 image (tern img resize): a larger virtual size, and a larger L1 table
 * when the one there cannot map it. A new table is written and synced before the header
 * names it, in one write of the fields that change (size, L1 size and L1 offset: all in
 * the header's first 512 bytes), and the old table's clusters are freed only after that.
 * A crash leaves the old image or the grown one, at worst with the new table's clusters
 * leaked. A table longer than the allocator can hand out in one run is refused (below).
 * Where a backing file is longer than the image was, the new part is zeroed, as QEMU
 * (5.1 on) does: otherwise the backing file's old data would show there.
 *
 * Shrinking (tern img resize --shrink, qcow2_shrink) drops the clusters past the new
 * end: zeroes the tail of the last cluster, unmaps the rest and frees their L2 tables.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/qcow2_impl.h"

/* Notes clusters [start, start+len) to give back; -ENOMEM leaves them leaked, not lost. */
static int set_aside(uint64_t **stray, size_t *n, size_t *cap, uint64_t start, uint64_t len)
{
	if (*n + len > *cap) {
		size_t ncap = (*n + len) * 2;
		uint64_t *p = realloc(*stray, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*stray = p;
		*cap = ncap;
	}
	for (uint64_t j = 0; j < len; j++)
		(*stray)[(*n)++] = start + j;
	return 0;
}

/*
 * k clusters in a row, counted. The allocator hands out one at a time, lowest free
 * first: a hole it fills, or a refcount block it adds, breaks the run, and what was taken
 * before the break goes back once the run is complete (or has failed).
 */
static int alloc_run(struct qcow2 *q, uint64_t k, uint64_t *first)
{
	uint64_t start = 0, len = 0, *stray = NULL;
	size_t nstray = 0, cap = 0;
	int r = 0;

	while (!r && len < k) {
		uint64_t off, c;
		if ((r = q2_alloc(q, &off)))
			break;
		c = off / q->cs;
		if (len && c == start + len) {
			len++;
			continue;
		}
		r = set_aside(&stray, &nstray, &cap, start, len);
		start = c;
		len = 1;
	}
	if (r)
		set_aside(&stray, &nstray, &cap, start, len);
	/* Nothing refers to these: they are free again at once. */
	for (size_t i = 0; i < nstray; i++) {
		int e = q2_rc_set(q, stray[i], 0);
		if (!r)
			r = e;
		if (stray[i] < q->free_hint)
			q->free_hint = stray[i];
	}
	free(stray);
	*first = start;
	return r;
}

/* size, crypt_method (0: tern opens no encrypted image), l1_size and l1_table_offset. */
static int write_geometry(struct qcow2 *q, uint64_t size, uint32_t l1_size, uint64_t l1_off)
{
	uint8_t b[24] = { 0 };
	int r = q2_sync(q); /* whatever the header will name is on disk first */

	if (r)
		return r;
	be_put64(b, size);
	be_put32(b + 12, l1_size);
	be_put64(b + 16, l1_off);
	q2_wrote(q);
	if ((r = q2_pwrite(q->fd, b, sizeof(b), 24)) || (r = q2_sync(q))) {
		q->werr = q->werr ? q->werr : r;
		return r;
	}
	q->h.size = size;
	q->h.l1_size = l1_size;
	q->h.l1_off = l1_off;
	return 0;
}

/* The L1 table with need entries, then the header naming it and size. Lock held. */
static int grow_l1(struct qcow2 *q, uint64_t need, uint64_t size)
{
	uint64_t cs = q->cs, old_n = q->h.l1_size, old_off = q->h.l1_off;
	uint64_t old_clusters = (old_n * 8 + cs - 1) / cs;
	uint64_t *l1 = realloc(q->l1, need * 8);
	int r;

	if (!l1)
		return -ENOMEM;
	q->l1 = l1;
	memset(l1 + old_n, 0, (need - old_n) * 8);
	if (old_off && need * 8 <= old_clusters * cs) {
		/* The table's last cluster has room: its new entries are zeroed there first. */
		uint8_t *z = calloc(need - old_n, 8);
		if (!z)
			return -ENOMEM;
		q2_wrote(q);
		r = q2_pwrite(q->fd, z, (need - old_n) * 8, old_off + old_n * 8);
		free(z);
		if (r) {
			q->werr = q->werr ? q->werr : r;
			return r;
		}
		return write_geometry(q, size, (uint32_t)need, old_off);
	}
	uint64_t k = (need * 8 + cs - 1) / cs, first;
	uint8_t *buf = calloc(k, cs);
	if (!buf)
		return -ENOMEM;
	if (!(r = alloc_run(q, k, &first)) && !(r = q2_rc_writeback(q))) {
		for (uint64_t j = 0; j < need; j++)
			be_put64(buf + j * 8, l1[j]);
		q2_wrote(q);
		if ((r = q2_pwrite(q->fd, buf, k * cs, first * cs)))
			q->werr = q->werr ? q->werr : r;
	}
	free(buf);
	if (r || (r = write_geometry(q, size, (uint32_t)need, first * cs)))
		return r;
	/* Nothing on disk names the old table any more. */
	return (r = q2_release(q, old_off, old_clusters)) ? r : q2_rc_writeback(q);
}

/* The L1 entries an image of size bytes needs (each maps a whole L2 table's clusters). */
static uint64_t l1_entries_for(const struct qcow2 *q, uint64_t size)
{
	uint64_t per_entry = q->cs << q->l2_bits;

	return size / per_entry + (size % per_entry != 0);
}

int qcow2_resize(struct qcow2 *q, uint64_t size, char *err, size_t n)
{
	uint64_t need = l1_entries_for(q, size);
	int r;

	if (q->readonly) {
		q2_err(err, n, "%s: opened read-only", q->path);
		return -EROFS;
	}
	if (size % 512 || size > Q2_SIZE_MAX) {
		q2_err(err, n, "%s: the new size must be a multiple of 512 bytes up to %llu",
		       q->path, Q2_SIZE_MAX);
		return -EINVAL;
	}
	if (size < q->h.size) {
		q2_err(err, n,
		       "%s: a qcow2 image only grows (shrinking it would drop the data past "
		       "the new end)",
		       q->path);
		return -ENOTSUP;
	}
	if (need * 8 > Q2_L1_MAX_BYTES) {
		q2_err(err, n, "%s: %llu bytes would need an L1 table over %u bytes", q->path,
		       (unsigned long long)size, Q2_L1_MAX_BYTES);
		return -EINVAL;
	}
	/*
	 * The allocator puts a range's refcount block at the range's first cluster, so no run
	 * of clusters it hands out is longer than a range less one: a table that needs more
	 * (only with small clusters, and a large disk) cannot be placed.
	 */
	uint64_t have = (q->h.l1_size * 8ull + q->cs - 1) / q->cs,
		 k = (need * 8 + q->cs - 1) / q->cs;
	if (need > q->h.l1_size && k > have && k >= q->epb) {
		q2_err(err, n,
		       "%s: %llu bytes need an L1 table of %llu clusters, and %llu-byte clusters "
		       "allow %llu (tern img convert --format qcow2 makes an image of 64 KiB "
		       "clusters, which grows further)",
		       q->path, (unsigned long long)size, (unsigned long long)k,
		       (unsigned long long)q->cs, (unsigned long long)(q->epb - 1));
		return -ENOTSUP;
	}
	pthread_mutex_lock(&q->lock);
	uint64_t old = q->h.size;
	r = q2_writeback(q, true);
	if (!r && need > q->h.l1_size)
		r = grow_l1(q, need, size);
	else if (!r && size != q->h.size)
		r = write_geometry(q, size, q->h.l1_size, q->h.l1_off);
	pthread_mutex_unlock(&q->lock);
	uint64_t bsize = q2_backing_size(q);
	if (!r && bsize > old && size > old) {
		uint64_t end = bsize < size ? bsize : size;
		if (!(r = qcow2_write_zeroes(q, old, end - old)))
			r = qcow2_flush(q);
	}
	if (r)
		q2_err(err, n, "%s: %s", q->path, strerror(-r));
	return r;
}

/* Lock held, the image written back: the L1 entries past keep, and their L2 tables, go. */
static int drop_l2_tables(struct qcow2 *q, uint64_t keep)
{
	uint64_t cnt = 0;
	int r = 0;

	for (uint64_t i = keep; i < q->h.l1_size; i++)
		cnt += (q->l1[i] & Q2_OFFSET_MASK) != 0;
	if (!cnt)
		return 0;
	uint64_t *gone = calloc(cnt, sizeof(*gone)), k = 0;
	if (!gone)
		return -ENOMEM;
	for (uint64_t i = keep; i < q->h.l1_size; i++) {
		uint64_t off = q->l1[i] & Q2_OFFSET_MASK;
		if (!off)
			continue;
		gone[k++] = off;
		q->l1[i] = 0;
		/* Clean after the writeback: forgotten, so no later eviction writes them. */
		for (unsigned j = 0; j < q->nl2; j++)
			if (q->l2c[j].off == off)
				q->l2c[j].off = 0;
	}
	q->l1_dirty = true;
	r = q2_writeback(q, false); /* the L1 table without them, synced first */
	if (!r)
		r = q2_sync(q);
	/* Nothing names them now; a crash before this leaks them, nothing worse. */
	for (uint64_t j = 0; j < k && !r; j++)
		r = q2_release(q, gone[j], 1);
	if (!r)
		r = q2_rc_writeback(q);
	if (!r)
		r = q2_sync(q);
	free(gone);
	return r;
}

int qcow2_shrink(struct qcow2 *q, uint64_t size, char *err, size_t n)
{
	uint64_t old = q->h.size;
	int r;

	if (q->readonly) {
		q2_err(err, n, "%s: opened read-only", q->path);
		return -EROFS;
	}
	if (size % 512 || size == 0 || size > old) {
		q2_err(err, n, "%s: the new size must be a multiple of 512 bytes from 512 to %llu",
		       q->path, (unsigned long long)old);
		return -EINVAL;
	}
	if (q->h.nb_snapshots) {
		/* Their tables map the old size too, and share clusters: QEMU refuses as well. */
		q2_err(err, n, "%s has %u internal snapshots: it does not shrink", q->path,
		       q->h.nb_snapshots);
		return -ENOTSUP;
	}
	if (size == old)
		return 0;
	/* Bytes past the end in the last cluster read as zeros if the image grows again. */
	uint64_t cut = (size + q->cs - 1) & ~(q->cs - 1);
	if (cut > old)
		cut = old;
	r = cut > size ? qcow2_write_zeroes(q, size, cut - size) : 0;
	if (!r && cut < old)
		r = qcow2_unmap(q, cut, old - cut);
	if (!r)
		r = qcow2_flush(q);
	if (!r) {
		pthread_mutex_lock(&q->lock);
		r = write_geometry(q, size, q->h.l1_size, q->h.l1_off);
		if (!r)
			r = drop_l2_tables(q, l1_entries_for(q, size));
		pthread_mutex_unlock(&q->lock);
	}
	if (r)
		q2_err(err, n, "%s: %s", q->path, strerror(-r));
	return r;
}
