/*
 * Guest clusters to host clusters: the L1 table (in memory whole), L2 tables (an LRU
 * cache of l2_cache_bytes), decoding and checking an L2 entry, and making an L2 table
 * writable (allocating it, or copying one a snapshot shares). Callers hold q->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"

int q2_caches_init(struct qcow2 *q, size_t l2_bytes)
{
	uint64_t nl2 = (l2_bytes ? l2_bytes : QCOW2_L2_CACHE_DEFAULT) / q->cs;
	uint64_t nrb = (256u << 10) / q->cs;

	q->nl2 = (unsigned)(nl2 < 4 ? 4 : nl2 > 4096 ? 4096 : nl2);
	q->nrb = (unsigned)(nrb < 4 ? 4 : nrb > 64 ? 64 : nrb);
	q->l2c = calloc(q->nl2, sizeof(*q->l2c));
	q->rbc = calloc(q->nrb, sizeof(*q->rbc));
	return q->l2c && q->rbc ? 0 : -ENOMEM;
}

void q2_caches_free(struct qcow2 *q)
{
	for (unsigned i = 0; q->l2c && i < q->nl2; i++)
		free(q->l2c[i].tab);
	for (unsigned i = 0; q->rbc && i < q->nrb; i++)
		free(q->rbc[i].blk);
	free(q->l2c);
	free(q->rbc);
	q->l2c = NULL;
	q->rbc = NULL;
}

int q2_l2_write(struct qcow2 *q, struct q2_cached *e)
{
	q2_wrote(q);
	int r = q2_pwrite(q->fd, e->tab, q->cs, e->off);

	if (r) {
		q->werr = r;
		return r;
	}
	e->dirty = false;
	return 0;
}

/* A dirty table leaving the cache: refcounts and data it depends on go first. */
static int l2_evict(struct qcow2 *q, struct q2_cached *e)
{
	int r;

	if (q->lazy)
		r = q2_mark_dirty(q);
	else
		r = q2_rc_writeback(q);
	if (!r && fdatasync(q->fd))
		r = -errno;
	if (!r)
		r = q2_l2_write(q, e);
	if (r)
		q->werr = r;
	return r;
}

int q2_cache_get(struct qcow2 *q, struct q2_cached *c, unsigned n, uint64_t off, bool fresh,
		 int (*evict)(struct qcow2 *q, struct q2_cached *e), struct q2_cached **out)
{
	struct q2_cached *victim = NULL;

	for (unsigned i = 0; i < n; i++) {
		struct q2_cached *e = &c[i];
		if (e->off == off) {
			e->lru = ++q->tick;
			*out = e;
			return 0;
		}
		if (e->off == 0) {
			if (!victim || victim->off)
				victim = e;
		} else if (!victim || (victim->off && e->lru < victim->lru)) {
			victim = e;
		}
	}
	if (victim->off && victim->dirty) {
		int r = evict(q, victim);
		if (r)
			return r;
	}
	victim->off = 0;
	if (!victim->blk) {
		victim->blk = malloc(q->cs);
		if (!victim->blk)
			return -ENOMEM;
	}
	if (fresh) {
		memset(victim->blk, 0, q->cs);
		victim->dirty = true;
	} else {
		int r = q2_pread(q->fd, victim->blk, q->cs, off);
		if (r)
			return r;
		victim->dirty = false;
	}
	victim->off = off;
	victim->lru = ++q->tick;
	*out = victim;
	return 0;
}

int q2_l2_get(struct qcow2 *q, uint64_t off, bool fresh, uint64_t **tab)
{
	struct q2_cached *e;

	if ((off & (q->cs - 1)) || off == 0 || off >= Q2_OFF_MAX || off + q->cs > q->end)
		return q2_eio(
			q,
			"L1 entry: L2 table offset %llu is unaligned or past the end of the file",
			(unsigned long long)off);
	int r = q2_cache_get(q, q->l2c, q->nl2, off, fresh, l2_evict, &e);
	if (!r)
		*tab = e->tab;
	return r;
}

/* Marks the cached table at off dirty (it must be in the cache: the caller just used it). */
static void l2_dirty(struct qcow2 *q, const uint64_t *tab)
{
	for (unsigned i = 0; i < q->nl2; i++)
		if (q->l2c[i].tab == tab && q->l2c[i].off)
			q->l2c[i].dirty = true;
}

int q2_decode(const struct qcow2 *q, uint64_t e, struct q2_map *m)
{
	memset(m, 0, sizeof(*m));
	m->raw = e;
	m->copied = !!(e & Q2_OFLAG_COPIED);
	if (e & Q2_OFLAG_COMPRESSED) {
		unsigned x = 62 - (q->h.cluster_bits - 8);
		uint64_t host = e & ((1ull << x) - 1);
		uint64_t nsec = ((e >> x) & ((1ull << (q->h.cluster_bits - 8)) - 1)) + 1;
		m->kind = Q2_COMP;
		m->host = host;
		m->csize = nsec * 512 - (host & 511);
		if (host == 0 || host >= q->end)
			return q2_eio(q,
				      "L2 entry %#llx: compressed cluster offset %llu is past the "
				      "end of the file",
				      (unsigned long long)e, (unsigned long long)host);
		return 0;
	}
	uint64_t host = e & Q2_OFFSET_MASK;
	if (q->h.version >= 3 && (e & Q2_OFLAG_ZERO)) {
		m->kind = Q2_ZERO;
		/* A preallocated zero cluster: its host cluster is only freed, never read. */
		m->host = (host & (q->cs - 1)) || host + q->cs > q->end ? 0 : host;
		return 0;
	}
	if (host == 0) {
		m->kind = Q2_UNALLOC;
		return 0;
	}
	m->kind = Q2_DATA;
	m->host = host;
	if (host & (q->cs - 1))
		return q2_eio(q, "L2 entry %#llx: data offset %llu is not cluster-aligned",
			      (unsigned long long)e, (unsigned long long)host);
	if (host + q->cs > q->end)
		return q2_eio(q, "L2 entry %#llx: data offset %llu is past the end of the file",
			      (unsigned long long)e, (unsigned long long)host);
	return 0;
}

static int l1_entry(struct qcow2 *q, uint64_t gc, uint64_t *e)
{
	uint64_t i = gc >> q->l2_bits;

	if (i >= q->h.l1_size)
		return q2_eio(q, "guest cluster %llu is beyond l1_size", (unsigned long long)gc);
	*e = q->l1[i];
	return 0;
}

int q2_lookup(struct qcow2 *q, uint64_t gc, struct q2_map *m)
{
	uint64_t e = 0, *tab;
	int r = l1_entry(q, gc, &e);

	if (r)
		return r;
	if ((e & Q2_OFFSET_MASK) == 0) {
		memset(m, 0, sizeof(*m));
		m->kind = Q2_UNALLOC;
		return 0;
	}
	r = q2_l2_get(q, e & Q2_OFFSET_MASK, false, &tab);
	if (r)
		return r;
	return q2_decode(q, be64toh(tab[gc & ((1ull << q->l2_bits) - 1)]), m);
}

int q2_lookup_cached(struct qcow2 *q, uint64_t gc, struct q2_map *m)
{
	uint64_t e = 0;
	int r = l1_entry(q, gc, &e);

	if (r)
		return r;
	uint64_t off = e & Q2_OFFSET_MASK;
	if (off == 0) {
		memset(m, 0, sizeof(*m));
		m->kind = Q2_UNALLOC;
		return 0;
	}
	for (unsigned i = 0; i < q->nl2; i++) {
		struct q2_cached *c = &q->l2c[i];
		if (c->off == off) {
			c->lru = ++q->tick;
			return q2_decode(q, be64toh(c->tab[gc & ((1ull << q->l2_bits) - 1)]), m);
		}
	}
	return -EAGAIN;
}

int q2_l2_prepare(struct qcow2 *q, uint64_t gc, uint64_t **tab)
{
	uint64_t e = 0, noff = 0, *old, *copy = NULL;
	uint64_t i = gc >> q->l2_bits;
	int r = l1_entry(q, gc, &e);

	if (r)
		return r;
	uint64_t off = e & Q2_OFFSET_MASK;
	if (off && (e & Q2_OFLAG_COPIED))
		return q2_l2_get(q, off, false, tab);
	if (off) {
		/* Shared with a snapshot: the active image gets its own copy. */
		copy = malloc(q->cs);
		if (!copy)
			return -ENOMEM;
		r = q2_l2_get(q, off, false, &old);
		if (r) {
			free(copy);
			return r;
		}
		memcpy(copy, old, q->cs);
	}
	r = q2_alloc(q, &noff);
	if (!r)
		r = q2_l2_get(q, noff, true, tab);
	if (r) {
		free(copy);
		return r;
	}
	if (copy) {
		memcpy(*tab, copy, q->cs);
		free(copy);
		struct q2_map m = { .kind = Q2_DATA, .host = off };
		r = q2_free_later(q, &m);
	}
	q->l1[i] = noff | Q2_OFLAG_COPIED;
	q->l1_dirty = true;
	return r;
}

/* Sets the L2 entry of gc (its table already prepared) and marks the table dirty. */
int q2_l2_set(struct qcow2 *q, uint64_t gc, uint64_t v, uint64_t *old)
{
	uint64_t *tab;
	int r = q2_l2_prepare(q, gc, &tab);

	if (r)
		return r;
	uint64_t *p = &tab[gc & ((1ull << q->l2_bits) - 1)];
	if (old)
		*old = be64toh(*p);
	*p = htobe64(v);
	l2_dirty(q, tab);
	return 0;
}
