/*
 * Refcounts and cluster allocation: the refcount-block cache, reading and setting a
 * cluster's refcount at any refcount_order, finding a free cluster (lowest first, so
 * freed clusters are reused), adding refcount blocks and growing the refcount table, the
 * pending frees, and the write-back that keeps the file consistent at every step (the
 * rules are in qcow2_impl.h). Callers hold q->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"
#include "core/log.h"

uint64_t q2_rc_entry(const struct qcow2 *q, const uint8_t *blk, uint64_t i)
{
	unsigned bits = q->rc_bits;

	if (bits >= 8) {
		uint64_t v = 0;
		const uint8_t *p = blk + i * (bits / 8);
		for (unsigned b = 0; b < bits / 8; b++)
			v = v << 8 | p[b];
		return v;
	}
	uint64_t bit = i * bits;
	return (uint64_t)(blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

void q2_rc_entry_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v)
{
	unsigned bits = q->rc_bits;

	if (bits >= 8) {
		uint8_t *p = blk + i * (bits / 8);
		for (unsigned b = bits / 8; b-- > 0; v >>= 8)
			p[b] = (uint8_t)v;
		return;
	}
	uint64_t bit = i * bits;
	uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
	blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
}

static int rb_write(struct qcow2 *q, struct q2_cached *e)
{
	q2_wrote(q);
	int r = q2_pwrite(q->fd, e->blk, q->cs, e->off);

	if (r) {
		q->werr = r;
		return r;
	}
	e->dirty = false;
	return 0;
}

static int rb_get(struct qcow2 *q, uint64_t off, bool fresh, struct q2_cached **out)
{
	if ((off & (q->cs - 1)) || off == 0 || off >= Q2_OFF_MAX ||
	    (!fresh && off + q->cs > q->end))
		return q2_eio(q,
			      "refcount table entry: block offset %llu is unaligned or past the "
			      "end of the file",
			      (unsigned long long)off);
	/* Refcount blocks may go to disk at any time: increments only ever leak. */
	return q2_cache_get(q, q->rbc, q->nrb, off, fresh, rb_write, out);
}

int q2_rc_get(struct qcow2 *q, uint64_t c, uint64_t *rc)
{
	uint64_t i = c / q->epb;
	struct q2_cached *b;

	*rc = 0;
	if (i >= q->rt_entries || q->rt[i] == 0)
		return 0;
	int r = rb_get(q, q->rt[i], false, &b);
	if (!r)
		*rc = q2_rc_entry(q, b->blk, c % q->epb);
	return r;
}

int q2_rc_set(struct qcow2 *q, uint64_t c, uint64_t v)
{
	uint64_t i = c / q->epb;
	struct q2_cached *b;

	if (i >= q->rt_entries || q->rt[i] == 0)
		return q2_eio(q, "cluster %llu has no refcount block", (unsigned long long)c);
	if (q->rc_bits < 64 && v >> q->rc_bits)
		return q2_eio(q, "refcount of cluster %llu overflows refcount_order %u",
			      (unsigned long long)c, q->h.refcount_order);
	int r = rb_get(q, q->rt[i], false, &b);
	if (r)
		return r;
	q2_rc_entry_set(q, b->blk, c % q->epb, v);
	b->dirty = true;
	return 0;
}

/* Clusters an allocation must never hand out, whatever a hostile refcount says. */
static bool is_metadata(const struct qcow2 *q, uint64_t c)
{
	uint64_t off = c * q->cs;

	if (c == 0)
		return true;
	if (q->h.l1_size && off + q->cs > q->h.l1_off && off < q->h.l1_off + q->h.l1_size * 8ull)
		return true;
	return off >= q->h.rt_off && off < q->h.rt_off + (uint64_t)q->h.rt_clusters * q->cs;
}

enum { FREE_OK, FREE_NO_TABLE, FREE_NO_BLOCK };

static int find_free(struct qcow2 *q, uint64_t *out, int *state)
{
	uint64_t c = q->free_hint;

	for (;;) {
		uint64_t i = c / q->epb;
		struct q2_cached *b;
		if (i >= q->rt_entries) {
			*state = FREE_NO_TABLE;
			break;
		}
		if (q->rt[i] == 0) {
			*state = FREE_NO_BLOCK;
			break;
		}
		int r = rb_get(q, q->rt[i], false, &b);
		if (r)
			return r;
		/*
		 * Past the end of the file nothing valid is referenced (lookups refuse such
		 * offsets), whatever a hostile block says: the scan stops there.
		 */
		for (uint64_t j = c % q->epb; j < q->epb; j++, c++)
			if ((c * q->cs >= q->end || q2_rc_entry(q, b->blk, j) == 0) &&
			    !is_metadata(q, c)) {
				*state = FREE_OK;
				*out = c;
				return 0;
			}
	}
	*out = c;
	return 0;
}

/* A refcount block for range i, placed at the range's first cluster (free, as it has none). */
static int new_refblock(struct qcow2 *q, uint64_t i)
{
	uint64_t b = i * q->epb;
	struct q2_cached *e;

	if (is_metadata(q, b))
		return q2_eio(q,
			      "refcount table entry %llu is empty but covers the header or a table",
			      (unsigned long long)i);
	int r = rb_get(q, b * q->cs, true, &e);
	if (r)
		return r;
	q2_rc_entry_set(q, e->blk, 0, 1);
	q->rt[i] = b * q->cs;
	q->rt_dirty = true;
	if ((b + 1) * q->cs > q->end)
		q->end = (b + 1) * q->cs;
	return 0;
}

static int write_dirty_rbs(struct qcow2 *q)
{
	for (unsigned i = 0; i < q->nrb; i++)
		if (q->rbc[i].off && q->rbc[i].dirty) {
			int r = rb_write(q, &q->rbc[i]);
			if (r)
				return r;
		}
	return 0;
}

int q2_sync(struct qcow2 *q)
{
	if (q->dsync)
		return 0;
	atomic_store(&q->unsynced, false);
	if (fdatasync(q->fd) == 0)
		return 0;
	q->werr = -errno;
	atomic_store(&q->unsynced, true);
	return q->werr;
}

int q2_release(struct qcow2 *q, uint64_t off, uint64_t n)
{
	int r = 0;

	for (uint64_t j = 0; j < n && off && !r; j++) {
		uint64_t rc, c = off / q->cs + j;
		r = q2_rc_get(q, c, &rc);
		if (!r && rc)
			r = q2_rc_set(q, c, rc - 1);
		if (c < q->free_hint)
			q->free_hint = c;
	}
	return r;
}

/*
 * A larger refcount table, for cluster c beyond what the present one covers. The new
 * table and the refcount blocks that count it go past everything the old table covers,
 * blocks first (each covering its own range, so they count themselves and the table),
 * and are synced before the header points at them; the old table is freed after.
 */
static int grow_table(struct qcow2 *q, uint64_t c)
{
	uint64_t cs = q->cs, epb = q->epb;
	uint64_t p = q->rt_entries * epb, endc = q->end / cs, k = 1, n, ent;

	if (endc > p)
		p = endc;
	p = (p + epb - 1) / epb * epb;
	for (;;) {
		ent = c / epb + 1 > p / epb + k ? c / epb + 1 : p / epb + k;
		ent += ent / 2;
		n = (ent * 8 + cs - 1) / cs;
		uint64_t kk = (k + n + epb - 1) / epb;
		if (kk <= k)
			break;
		k = kk;
	}
	if (n * cs > Q2_RT_MAX_BYTES || (p + k + n) * cs >= Q2_OFF_MAX)
		return q2_eio(q, "refcount table would grow past %u bytes", Q2_RT_MAX_BYTES);
	uint64_t nent = n * cs / 8;
	uint64_t *nrt = calloc(nent, 8);
	uint8_t *buf = malloc(n * cs > cs ? n * cs : cs);
	int r = -ENOMEM;
	if (!nrt || !buf)
		goto out;
	memcpy(nrt, q->rt, q->rt_entries * 8);
	for (uint64_t j = 0; j < k; j++)
		nrt[p / epb + j] = (p + j) * cs;

	r = write_dirty_rbs(q);
	for (uint64_t j = 0; !r && j < k; j++) {
		memset(buf, 0, cs);
		for (uint64_t m = p + j * epb; m < p + (j + 1) * epb && m < p + k + n; m++)
			q2_rc_entry_set(q, buf, m - (p + j * epb), 1);
		q2_wrote(q);
		r = q2_pwrite(q->fd, buf, cs, (p + j) * cs);
	}
	if (r)
		goto out;
	for (uint64_t j = 0; j < nent; j++)
		be_put64(buf + j * 8, nrt[j]);
	q2_wrote(q);
	r = q2_pwrite(q->fd, buf, n * cs, (p + k) * cs);
	if (!r)
		r = q2_sync(q);
	if (r)
		goto out;
	uint8_t hb[12];
	be_put64(hb, (p + k) * cs);
	be_put32(hb + 8, (uint32_t)n);
	q2_wrote(q);
	r = q2_pwrite(q->fd, hb, sizeof(hb), 48);
	if (!r)
		r = q2_sync(q);
	if (r)
		goto out;

	uint64_t old_off = q->h.rt_off, old_n = q->h.rt_clusters;
	free(q->rt);
	q->rt = nrt;
	nrt = NULL;
	q->rt_entries = nent;
	q->rt_dirty = false;
	q->h.rt_off = (p + k) * cs;
	q->h.rt_clusters = (uint32_t)n;
	if ((p + k + n) * cs > q->end)
		q->end = (p + k + n) * cs;
	/* Nothing on disk points at the old table any more. */
	r = q2_release(q, old_off, old_n);
out:
	if (r)
		q->werr = q->werr ? q->werr : r;
	free(nrt);
	free(buf);
	return r;
}

int q2_alloc(struct qcow2 *q, uint64_t *off)
{
	for (;;) {
		uint64_t c;
		int state = FREE_OK;
		int r = find_free(q, &c, &state);
		if (!r && state == FREE_NO_TABLE)
			r = grow_table(q, c);
		else if (!r && state == FREE_NO_BLOCK)
			r = new_refblock(q, c / q->epb);
		if (r)
			return r;
		if (state != FREE_OK)
			continue;
		if ((c + 1) * q->cs >= Q2_OFF_MAX)
			return -ENOSPC;
		r = q2_rc_set(q, c, 1);
		if (r)
			return r;
		q->free_hint = c + 1;
		if ((c + 1) * q->cs > q->end)
			q->end = (c + 1) * q->cs;
		*off = c * q->cs;
		return 0;
	}
}

static int push_pending(struct qcow2 *q, uint64_t c)
{
	if (q->npending == q->cap_pending) {
		size_t cap = q->cap_pending ? q->cap_pending * 2 : 64;
		uint64_t *p = realloc(q->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		q->pending = p;
		q->cap_pending = cap;
	}
	q->pending[q->npending++] = c;
	return 0;
}

int q2_free_later(struct qcow2 *q, const struct q2_map *m)
{
	if (m->kind == Q2_COMP) {
		/* Every cluster the compressed bytes touch holds one reference for them. */
		uint64_t first = m->host / q->cs, last = (m->host + m->csize - 1) / q->cs;
		for (uint64_t c = first; c <= last; c++) {
			int r = push_pending(q, c);
			if (r)
				return r;
		}
		return 0;
	}
	if ((m->kind == Q2_DATA || m->kind == Q2_ZERO) && m->host)
		return push_pending(q, m->host / q->cs);
	return 0;
}

static int apply_frees(struct qcow2 *q)
{
	int r = 0;

	for (size_t i = 0; i < q->npending && !r; i++) {
		uint64_t rc, c = q->pending[i];
		r = q2_rc_get(q, c, &rc);
		if (r)
			break;
		if (rc == 0) {
			q2_eio(q, "freeing cluster %llu whose refcount is already 0",
			       (unsigned long long)c);
			continue;
		}
		r = q2_rc_set(q, c, rc - 1);
		if (!r && rc == 1 && c < q->free_hint)
			q->free_hint = c;
		/* Free now, it may be handed out for anything: no more compressed data in it. */
		if (rc == 1 && q->comp_next / q->cs == c)
			q->comp_next = 0;
		/* Nothing refers to it any more (the tables are on disk): its bytes may go. */
		if (!r && rc == 1 && q->punch_freed &&
		    fallocate(q->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(c * q->cs),
			      (off_t)q->cs) < 0 &&
		    errno != EOPNOTSUPP)
			log_debug("%s: cannot punch out freed cluster %llu: %s", q->path,
				  (unsigned long long)c, strerror(errno));
	}
	q->npending = 0;
	return r;
}

int q2_rc_writeback(struct qcow2 *q)
{
	int r = write_dirty_rbs(q);

	if (r || !q->rt_dirty)
		return r;
	/* New blocks are on disk before the table entries that point at them. */
	r = q2_sync(q);
	if (r)
		return r;
	uint64_t bytes = (uint64_t)q->h.rt_clusters * q->cs;
	uint8_t *buf = malloc(bytes);
	if (!buf)
		return -ENOMEM;
	for (uint64_t j = 0; j < q->rt_entries; j++)
		be_put64(buf + j * 8, q->rt[j]);
	q2_wrote(q);
	r = q2_pwrite(q->fd, buf, bytes, q->h.rt_off);
	free(buf);
	if (r)
		q->werr = r;
	else
		q->rt_dirty = false;
	return r;
}

int q2_mark_dirty(struct qcow2 *q)
{
	if (q->dirty_on_disk)
		return 0;
	q->h.incompat |= Q2_INCOMPAT_DIRTY;
	int r = q2_write_features(q);
	if (r) {
		q->werr = r;
		return r;
	}
	q->dirty_on_disk = true;
	return 0;
}

static int write_l1(struct qcow2 *q)
{
	uint64_t bytes = (uint64_t)q->h.l1_size * 8;
	uint8_t *buf = malloc(bytes ? bytes : 1);

	if (!buf)
		return -ENOMEM;
	for (uint64_t j = 0; j < q->h.l1_size; j++)
		be_put64(buf + j * 8, q->l1[j]);
	q2_wrote(q);
	int r = q2_pwrite(q->fd, buf, bytes, q->h.l1_off);
	free(buf);
	if (r)
		q->werr = r;
	else
		q->l1_dirty = false;
	return r;
}

int q2_writeback(struct qcow2 *q, bool full)
{
	bool any_l2 = false;
	int r = 0;

	if (q->werr)
		return q->werr;
	for (unsigned i = 0; i < q->nl2; i++)
		any_l2 |= q->l2c[i].off && q->l2c[i].dirty;
	if (any_l2 || q->l1_dirty) {
		r = q->lazy ? q2_mark_dirty(q) : q2_rc_writeback(q);
		if (!r)
			r = q2_sync(q); /* data and refcounts before the tables that use them */
		for (unsigned i = 0; i < q->nl2 && !r; i++)
			if (q->l2c[i].off && q->l2c[i].dirty)
				r = q2_l2_write(q, &q->l2c[i]);
		if (!r && q->l1_dirty) {
			r = q2_sync(q); /* new L2 tables before the L1 entries naming them */
			if (!r)
				r = write_l1(q);
		}
	}
	if (!r && full) {
		r = atomic_load(&q->unsynced) ? q2_sync(q) : 0;
		if (!r && q->npending)
			r = apply_frees(q);
	}
	return r;
}
