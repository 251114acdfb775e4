/*
 * Rebuilding the refcounts of an image left dirty (lazy_refcounts, then a crash), as QEMU
 * does when it opens one for writing: every cluster the header, the L1 table, the L2
 * tables and the data (compressed clusters counted for each cluster they touch) use is
 * counted by walking the tables; a new refcount table and new refcount blocks holding
 * those counts are written past the end of the file and synced; then the header points
 * at them and the dirty bit is cleared. A crash part-way leaves the old header (still
 * dirty), so the repair simply runs again. The old refcount structures become free space.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"

struct counts {
	uint32_t *rc;
	uint64_t n; /* clusters */
};

static int count(struct qcow2 *q, struct counts *c, uint64_t off, uint64_t len, const char *what,
		 char *err, size_t n)
{
	uint64_t first = off / q->cs, last = (off + len - 1) / q->cs;

	if (len == 0)
		return 0;
	if (last >= c->n) {
		q2_err(err, n, "%s: repair: %s at %llu is past the end of the file", q->path, what,
		       (unsigned long long)off);
		return -EINVAL;
	}
	for (uint64_t i = first; i <= last; i++)
		if (++c->rc[i] == 0) {
			q2_err(err, n, "%s: repair: refcount of cluster %llu overflows", q->path,
			       (unsigned long long)i);
			return -EINVAL;
		}
	return 0;
}

static int walk_tables(struct qcow2 *q, struct counts *c, char *err, size_t n)
{
	uint64_t per = 1ull << q->l2_bits;
	uint64_t *tab = malloc(q->cs);
	int r = tab ? 0 : -ENOMEM;

	if (!r)
		r = count(q, c, 0, q->cs, "the header", err, n);
	if (!r)
		r = count(q, c, q->h.l1_off, (uint64_t)q->h.l1_size * 8, "the L1 table", err, n);
	for (uint64_t i = 0; !r && i < q->h.l1_size; i++) {
		uint64_t l2 = q->l1[i] & Q2_OFFSET_MASK;
		if (!l2)
			continue;
		if (l2 & (q->cs - 1)) {
			q2_err(err, n, "%s: repair: L1 entry %llu is not cluster-aligned", q->path,
			       (unsigned long long)i);
			r = -EINVAL;
			break;
		}
		r = count(q, c, l2, q->cs, "an L2 table", err, n);
		if (!r)
			r = q2_pread(q->fd, tab, q->cs, l2);
		for (uint64_t j = 0; !r && j < per; j++) {
			struct q2_map m;
			if (q2_decode(q, be64toh(tab[j]), &m)) {
				q2_err(err, n, "%s: repair: L2 entry %llu of table %llu is invalid",
				       q->path, (unsigned long long)j, (unsigned long long)l2);
				r = -EINVAL;
			} else if (m.kind == Q2_DATA || (m.kind == Q2_ZERO && m.host)) {
				r = count(q, c, m.host, q->cs, "a data cluster", err, n);
			} else if (m.kind == Q2_COMP) {
				uint64_t start = m.host & ~511ull;
				r = count(q, c, start, m.host + m.csize - start,
					  "a compressed cluster", err, n);
			}
		}
	}
	free(tab);
	return r;
}

int q2_repair(struct qcow2 *q, char *err, size_t n)
{
	uint64_t cs = q->cs, epb = q->epb;
	struct counts c = { .n = q->end / cs };
	uint8_t *buf = NULL;
	uint64_t *rt = NULL;
	int r;

	if (q->h.nb_snapshots) {
		q2_err(err, n,
		       "%s: the image is dirty and has snapshots: repair it with qemu-img check -r "
		       "all",
		       q->path);
		return -ENOTSUP;
	}
	if (c.n > (1ull << 28)) {
		q2_err(err, n, "%s: repair: the file is too large (%llu clusters)", q->path,
		       (unsigned long long)c.n);
		return -EFBIG;
	}
	/* Room for the new structures after the file's clusters, counted as they are placed. */
	uint64_t p = c.n, k = 1, nt = 1;
	for (;;) {
		uint64_t total = p + k + nt;
		uint64_t kk = (total + epb - 1) / epb;
		uint64_t nn = (kk * 8 + cs - 1) / cs;
		if (kk <= k && nn <= nt)
			break;
		k = kk > k ? kk : k;
		nt = nn > nt ? nn : nt;
	}
	if (nt * cs > Q2_RT_MAX_BYTES) {
		q2_err(err, n, "%s: repair: the refcount table would be too large", q->path);
		return -EFBIG;
	}
	c.n = p + k + nt;
	c.rc = calloc(c.n, sizeof(*c.rc));
	buf = malloc(nt * cs > cs ? nt * cs : cs);
	rt = calloc(nt * cs / 8, 8);
	r = c.rc && buf && rt ? 0 : -ENOMEM;
	if (!r)
		r = walk_tables(q, &c, err, n);
	for (uint64_t i = p; !r && i < c.n; i++)
		c.rc[i] = 1;
	for (uint64_t j = 0; !r && j < k; j++) {
		memset(buf, 0, cs);
		for (uint64_t i = j * epb; i < (j + 1) * epb && i < c.n; i++) {
			if (q->rc_bits < 32 && c.rc[i] >> q->rc_bits) {
				q2_err(err, n,
				       "%s: repair: refcount of cluster %llu overflows "
				       "refcount_order %u",
				       q->path, (unsigned long long)i, q->h.refcount_order);
				r = -EINVAL;
				break;
			}
			q2_rc_entry_set(q, buf, i - j * epb, c.rc[i]);
		}
		rt[j] = (p + j) * cs;
		if (!r)
			r = q2_pwrite(q->fd, buf, cs, (p + j) * cs);
	}
	if (!r) {
		for (uint64_t j = 0; j < nt * cs / 8; j++)
			be_put64(buf + j * 8, rt[j]);
		r = q2_pwrite(q->fd, buf, nt * cs, (p + k) * cs);
	}
	if (!r && fdatasync(q->fd))
		r = -errno;
	if (!r) {
		uint8_t hb[12];
		be_put64(hb, (p + k) * cs);
		be_put32(hb + 8, (uint32_t)nt);
		r = q2_pwrite(q->fd, hb, sizeof(hb), 48);
		if (!r && fdatasync(q->fd))
			r = -errno;
	}
	if (!r) {
		q->h.incompat &= ~Q2_INCOMPAT_DIRTY;
		r = q2_write_features(q);
	}
	if (r) {
		if (r != -EINVAL)
			q2_err(err, n, "%s: repairing refcounts: %s", q->path, strerror(-r));
		goto out;
	}
	free(q->rt);
	q->rt = rt;
	rt = NULL;
	q->rt_entries = nt * cs / 8;
	q->rt_dirty = false;
	q->h.rt_off = (p + k) * cs;
	q->h.rt_clusters = (uint32_t)nt;
	q->end = c.n * cs;
	q->dirty_on_disk = false;
	q->free_hint = 1;
	for (unsigned i = 0; i < q->nrb; i++)
		q->rbc[i].off = 0;
out:
	free(c.rc);
	free(buf);
	free(rt);
	return r;
}
