/*
 * Opening an image and its backing chain, closing, and describing a chain. Backing names
 * are resolved as QEMU does (relative to the directory of the image naming them); each
 * backing file is opened read-only with a shared OFD lock; a chain deeper than
 * QCOW2_CHAIN_MAX, a loop (the same device and inode twice) or a missing file is refused
 * with the whole chain in the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"
#include "backend/image_fds.h"

struct q2_chain {
	int depth; /* backing files opened below the top */
	dev_t dev[QCOW2_CHAIN_MAX + 2];
	ino_t ino[QCOW2_CHAIN_MAX + 2];
	char text[QCOW2_CHAIN_MAX * 256 + 4096]; /* "top -> backing -> ..." for messages */
	bool no_lock;				 /* qcow2_open_args.no_lock */
};

static void chain_add(struct q2_chain *ch, const char *path)
{
	size_t l = strlen(ch->text);

	snprintf(ch->text + l, sizeof(ch->text) - l, "%s%s", l ? " -> " : "", path);
}

static int open_backing(struct qcow2 *q, struct q2_chain *ch, char *err, size_t n)
{
	char path[4096];
	const char *name = q->h.backing;
	const char *slash = strrchr(q->path, '/');
	struct stat st;
	char fmt[16];

	if (name[0] == '/' || !slash)
		snprintf(path, sizeof(path), "%s", name);
	else if ((size_t)snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - q->path), q->path,
				  name) >= sizeof(path)) {
		q2_err(err, n, "%s: backing file name too long", q->path);
		return -ENAMETOOLONG;
	}
	chain_add(ch, path);
	if (ch->depth >= QCOW2_CHAIN_MAX) {
		q2_err(err, n, "backing chain is longer than %d files: %s", QCOW2_CHAIN_MAX,
		       ch->text);
		return -ELOOP;
	}
	int fd = image_fds_open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		q2_err(err, n, "backing file %s: %s (chain %s)", path, strerror(e), ch->text);
		return -e;
	}
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		q2_err(err, n, "backing file %s: %s", path, strerror(e));
		return -e;
	}
	for (int i = 0; i <= ch->depth; i++)
		if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
			close(fd);
			q2_err(err, n, "backing chain loop: %s", ch->text);
			return -ELOOP;
		}
	ch->depth++;
	ch->dev[ch->depth] = st.st_dev;
	ch->ino[ch->depth] = st.st_ino;

	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	if (!ch->no_lock && fcntl(fd, F_OFD_SETLK, &fl)) {
		int e = errno;
		close(fd);
		q2_err(err, n, "backing file %s: cannot lock it for reading (%s)", path,
		       e == EAGAIN || e == EACCES ? "another process writes it" : strerror(e));
		return e == EAGAIN || e == EACCES ? -EBUSY : -e;
	}
	if (q->h.backing_fmt[0]) {
		snprintf(fmt, sizeof(fmt), "%s", q->h.backing_fmt);
	} else {
		uint8_t magic[4] = { 0 };
		int r = q2_pread(fd, magic, sizeof(magic), 0);
		if (r) {
			close(fd);
			q2_err(err, n, "backing file %s: %s", path, strerror(-r));
			return r;
		}
		snprintf(fmt, sizeof(fmt), "%s", qcow2_probe(magic, 4) ? "qcow2" : "raw");
	}
	if (strcmp(fmt, "qcow2") == 0) {
		struct qcow2_open_args a = { .fd = fd, .path = path, .readonly = true };
		int r = q2_open(&q->bq, &a, ch, err, n);
		if (r) {
			close(fd);
			return r;
		}
		q->bq->own_fd = true;
		return 0;
	}
	if (strcmp(fmt, "raw") == 0) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end < 0) {
			int e = errno;
			close(fd);
			q2_err(err, n, "backing file %s: %s", path, strerror(e));
			return -e;
		}
		q->bfd = fd;
		q->bsize = (uint64_t)end;
		return 0;
	}
	close(fd);
	q2_err(err, n, "backing file %s: format '%s' is not supported (qcow2 or raw)", path, fmt);
	return -ENOTSUP;
}

static void q2_free(struct qcow2 *q)
{
	if (!q)
		return;
	if (q->bq)
		qcow2_close(q->bq);
	if (q->bfd >= 0)
		close(q->bfd);
	if (q->own_fd)
		close(q->fd);
	q2_caches_free(q);
	free(q->l1);
	free(q->rt);
	free(q->pending);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

static int load_tables(struct qcow2 *q, char *err, size_t n)
{
	uint64_t l1_bytes = (uint64_t)q->h.l1_size * 8;
	uint64_t rt_bytes = (uint64_t)q->h.rt_clusters * q->cs;
	uint8_t *buf = malloc(l1_bytes > rt_bytes ? l1_bytes : rt_bytes);
	int r = -ENOMEM;

	q->l1 = calloc(q->h.l1_size ? q->h.l1_size : 1, 8);
	q->rt_entries = rt_bytes / 8;
	q->rt = calloc(q->rt_entries, 8);
	if (!buf || !q->l1 || !q->rt)
		goto out;
	r = q2_pread(q->fd, buf, l1_bytes, q->h.l1_off);
	if (r) {
		q2_err(err, n, "%s: reading the L1 table: %s", q->path, strerror(-r));
		goto out;
	}
	for (uint64_t i = 0; i < q->h.l1_size; i++)
		q->l1[i] = be_get64(buf + i * 8);
	r = q2_pread(q->fd, buf, rt_bytes, q->h.rt_off);
	if (r) {
		q2_err(err, n, "%s: reading the refcount table: %s", q->path, strerror(-r));
		goto out;
	}
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t e = be_get64(buf + i * 8);
		q->rt[i] = e;
		if (!e)
			continue;
		r = -EINVAL;
		if (e & (q->cs - 1)) {
			q2_err(err, n,
			       "%s: refcount table entry %llu (%#llx) is not cluster-aligned",
			       q->path, (unsigned long long)i, (unsigned long long)e);
			goto out;
		}
		if (e >= Q2_OFF_MAX || e + q->cs > q->end) {
			q2_err(err, n,
			       "%s: refcount table entry %llu points past the end of the file",
			       q->path, (unsigned long long)i);
			goto out;
		}
		if (e < q->h.rt_off + rt_bytes && e + q->cs > q->h.rt_off) {
			q2_err(err, n,
			       "%s: refcount table entry %llu points into the refcount table",
			       q->path, (unsigned long long)i);
			goto out;
		}
		if (q->h.l1_size && e < q->h.l1_off + l1_bytes && e + q->cs > q->h.l1_off) {
			q2_err(err, n, "%s: refcount table entry %llu points into the L1 table",
			       q->path, (unsigned long long)i);
			goto out;
		}
	}
	r = 0;
out:
	free(buf);
	return r;
}

int q2_open(struct qcow2 **out, const struct qcow2_open_args *a, struct q2_chain *ch, char *err,
	    size_t n)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	struct stat st;
	uint8_t *hbuf = NULL;
	int r;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	if (a->no_backing && !a->readonly) {
		/* Writes copy clusters up from the backing file: without it they would lose data. */
		free(q);
		q2_err(err, n, "%s: opened without its backing file, read-only only",
		       a->path ? a->path : "(qcow2)");
		return -EINVAL;
	}
	q->fd = a->fd;
	q->bfd = -1;
	q->readonly = a->readonly;
	q->punch_freed = a->punch_freed;
	int fl = fcntl(a->fd, F_GETFL);
	q->dsync = fl >= 0 && (fl & O_DSYNC) == O_DSYNC;
	snprintf(q->path, sizeof(q->path), "%s", a->path ? a->path : "(qcow2)");
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	if (fstat(q->fd, &st)) {
		r = -errno;
		q2_err(err, n, "%s: %s", q->path, strerror(errno));
		goto fail;
	}
	uint64_t fsize = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode)) {
		off_t e = lseek(q->fd, 0, SEEK_END);
		fsize = e > 0 ? (uint64_t)e : 0;
	}
	size_t hlen = fsize < (2u << 20) ? (size_t)fsize : (2u << 20);
	hbuf = malloc(hlen ? hlen : 1);
	r = hbuf ? q2_pread(q->fd, hbuf, hlen, 0) : -ENOMEM;
	if (r) {
		q2_err(err, n, "%s: reading the header: %s", q->path, strerror(-r));
		goto fail;
	}
	char perr[512];
	r = q2_header_parse(hbuf, hlen, fsize, &q->h, perr, sizeof(perr));
	if (r) {
		q2_err(err, n, "%s: %s", q->path, perr);
		goto fail;
	}
	q->cs = 1ull << q->h.cluster_bits;
	q->l2_bits = q->h.cluster_bits - 3;
	q->rc_bits = 1u << q->h.refcount_order;
	q->epb = q->cs * 8 / q->rc_bits;
	q->lazy = q->h.version >= 3 && (q->h.compat & Q2_COMPAT_LAZY);
	q->dirty_on_disk = !!(q->h.incompat & Q2_INCOMPAT_DIRTY);
	q->end = (fsize + q->cs - 1) & ~(q->cs - 1);
	q->free_hint = 1;
	if (!q->readonly && (q->h.incompat & Q2_INCOMPAT_CORRUPT)) {
		q2_err(err, n,
		       "%s: the image is marked corrupt (incompatible bit 1): it can only be "
		       "opened read-only",
		       q->path);
		r = -EROFS;
		goto fail;
	}
	r = load_tables(q, err, n);
	if (!r)
		r = q2_caches_init(q, a->l2_cache_bytes);
	if (r)
		goto fail;
	if (q->h.backing[0] && !a->no_backing) {
		r = open_backing(q, ch, err, n);
		if (r)
			goto fail;
	}
	if (!q->readonly && q->dirty_on_disk) {
		r = q2_repair(q, err, n);
		if (r)
			goto fail;
	}
	if (!q->readonly && q->h.autoclear) {
		/* We keep none of the structures autoclear bits announce (bitmaps...). */
		q->h.autoclear = 0;
		r = q2_write_features(q);
		if (r) {
			q2_err(err, n, "%s: clearing the autoclear bits: %s", q->path,
			       strerror(-r));
			goto fail;
		}
	}
	free(hbuf);
	*out = q;
	return 0;
fail:
	free(hbuf);
	q->own_fd = false;
	q2_free(q);
	return r;
}

int qcow2_open(struct qcow2 **out, const struct qcow2_open_args *a, char *err, size_t n)
{
	struct q2_chain *ch = calloc(1, sizeof(*ch));
	struct stat st;

	*out = NULL;
	if (!ch)
		return -ENOMEM;
	if (fstat(a->fd, &st) == 0) {
		ch->dev[0] = st.st_dev;
		ch->ino[0] = st.st_ino;
	}
	chain_add(ch, a->path ? a->path : "(qcow2)");
	ch->no_lock = a->no_lock;
	int r = q2_open(out, a, ch, err, n);
	free(ch);
	return r;
}

void qcow2_close(struct qcow2 *q)
{
	if (!q)
		return;
	if (!q->readonly) {
		pthread_mutex_lock(&q->lock);
		int r = q2_writeback(q, true);
		if (!r)
			r = q2_rc_writeback(q);
		if (!r && fdatasync(q->fd))
			r = -errno;
		if (!r && q->dirty_on_disk) {
			/* Everything is on disk and consistent: the image is clean again. */
			q->h.incompat &= ~Q2_INCOMPAT_DIRTY;
			r = q2_write_features(q);
		}
		if (r)
			q2_eio(q, "closing: %s; the image may need repair", strerror(-r));
		pthread_mutex_unlock(&q->lock);
	}
	q2_free(q);
}

/* Guest bytes the image maps itself (data, compressed), by walking its tables. */
static uint64_t allocated_bytes(struct qcow2 *q)
{
	uint64_t total = 0, per = 1ull << q->l2_bits;

	pthread_mutex_lock(&q->lock);
	for (uint64_t i = 0; i < q->h.l1_size; i++) {
		uint64_t *tab;
		if (!(q->l1[i] & Q2_OFFSET_MASK) ||
		    q2_l2_get(q, q->l1[i] & Q2_OFFSET_MASK, false, &tab))
			continue;
		for (uint64_t j = 0; j < per; j++) {
			uint64_t gc = i * per + j;
			struct q2_map m;
			if (gc * q->cs >= q->h.size)
				break;
			if (q2_decode(q, be64toh(tab[j]), &m) == 0 &&
			    (m.kind == Q2_DATA || m.kind == Q2_COMP)) {
				uint64_t left = q->h.size - gc * q->cs;
				total += left < q->cs ? left : q->cs;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	return total;
}

static int describe(const char *path, struct qcow2_chain_entry *chain, int max, bool lock,
		    char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t magic[4] = { 0 };
	struct qcow2 *q;
	int r, count = 0;

	if (fd < 0) {
		r = -errno;
		q2_err(err, n, "%s: %s", path, strerror(errno));
		return r;
	}
	r = q2_pread(fd, magic, sizeof(magic), 0);
	if (!r && !qcow2_probe(magic, 4)) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (max > 0) {
			memset(&chain[0], 0, sizeof(chain[0]));
			snprintf(chain[0].path, sizeof(chain[0].path), "%s", path);
			snprintf(chain[0].format, sizeof(chain[0].format), "raw");
			chain[0].size = chain[0].allocated = end > 0 ? (uint64_t)end : 0;
		}
		close(fd);
		return 1;
	}
	struct qcow2_open_args a = { .fd = fd, .path = path, .readonly = true, .no_lock = !lock };
	r = r ? r : qcow2_open(&q, &a, err, n);
	if (r) {
		close(fd);
		return r;
	}
	q->own_fd = true;
	for (struct qcow2 *c = q; c; c = c->bq) {
		if (count < max) {
			struct qcow2_chain_entry *e = &chain[count];
			memset(e, 0, sizeof(*e));
			snprintf(e->path, sizeof(e->path), "%s", c->path);
			snprintf(e->format, sizeof(e->format), "qcow2");
			e->size = c->h.size;
			e->allocated = allocated_bytes(c);
			e->cluster_bits = c->h.cluster_bits;
			e->version = c->h.version;
			e->dirty = !!(c->h.incompat & Q2_INCOMPAT_DIRTY);
			e->lazy_refcounts = c->lazy;
			snprintf(e->compression, sizeof(e->compression), "%s",
				 c->h.compression == Q2_COMP_ZSTD ? "zstd" : "zlib");
		}
		count++;
		if (!c->bq && c->bfd >= 0) {
			if (count < max) {
				struct qcow2_chain_entry *e = &chain[count];
				const char *slash = strrchr(c->path, '/');
				memset(e, 0, sizeof(*e));
				if (c->h.backing[0] == '/' || !slash)
					snprintf(e->path, sizeof(e->path), "%s", c->h.backing);
				else
					snprintf(e->path, sizeof(e->path), "%.*s/%s",
						 (int)(slash - c->path), c->path, c->h.backing);
				snprintf(e->format, sizeof(e->format), "raw");
				e->size = e->allocated = c->bsize;
			}
			count++;
		}
	}
	qcow2_close(q);
	return count;
}

int qcow2_describe(const char *path, struct qcow2_chain_entry *chain, int max, char *err, size_t n)
{
	return describe(path, chain, max, true, err, n);
}

int qcow2_describe_unlocked(const char *path, struct qcow2_chain_entry *chain, int max, char *err,
			    size_t n)
{
	return describe(path, chain, max, false, err, n);
}
