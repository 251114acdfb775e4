/*
 * Copy-on-write overlays (disk_overlay.h, docs/overlay.md).
 *
 * Reads go cluster run by cluster run to the overlay or to the base, by the bitmap.
 * Writes to clusters already in the overlay go straight there; the first write to a
 * cluster copies it up: the base's cluster, with the written bytes laid over it, is
 * written to the overlay, and only then is its bit set. Bits only ever go from 0 to 1,
 * so a reader that sees a bit set finds the data there, and one that sees it clear
 * reads the base, which never changes.
 *
 * Crash safety: the bitmap is written back on FLUSH, after an fdatasync of the data and
 * followed by another, so a bit on disk always covers durable data. With cache=none
 * (O_DSYNC, no FLUSH offered) every write that sets bits writes them back before it
 * completes. A crash can lose writes the guest had not flushed (they read as the base
 * again), as with any volatile write cache, but never exposes a cluster of zeros.
 */
#include "backend/disk_overlay.h"
#include "core/le.h"
#include "backend/disk.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct overlay {
	int base_fd;
	struct overlay_header h;
	uint64_t csize;	      /* cluster size, bytes */
	uint8_t *bitmap;      /* h.bitmap_bytes; read with atomics, bits set under alloc_lock */
	uint8_t *chunk_dirty; /* per OVERLAY_BITMAP_CHUNK of bitmap: not yet in the file */
	/* One copy-up or flush at a time; guards chunk_dirty. */
	pthread_mutex_t alloc_lock;
};

/* ---- header ---- */

int overlay_layout(struct overlay_header *h, char *err, size_t n)
{
	if (h->cluster_bits < OVERLAY_CLUSTER_BITS_MIN ||
	    h->cluster_bits > OVERLAY_CLUSTER_BITS_MAX)
		return fail_msg(err, n, -EINVAL, "cluster size 2^%u bytes (2^%d to 2^%d)",
				h->cluster_bits, OVERLAY_CLUSTER_BITS_MIN,
				OVERLAY_CLUSTER_BITS_MAX);
	uint64_t csize = 1ULL << h->cluster_bits;
	/* 2^62 bytes at most, so that nothing below can overflow. */
	if (h->size == 0 || h->size % 512 || h->size > (1ULL << 62))
		return fail_msg(err, n, -EINVAL,
				"size %llu bytes (a non-zero multiple of 512, at most 2^62)",
				(unsigned long long)h->size);
	uint64_t nclusters = (h->size - 1) / csize + 1;
	uint64_t bytes = align_up((nclusters + 7) / 8, OVERLAY_BITMAP_CHUNK);
	if (bytes > OVERLAY_BITMAP_MAX)
		return fail_msg(err, n, -EINVAL,
				"its bitmap would be %llu bytes (at most %llu): clusters too small "
				"for %llu bytes",
				(unsigned long long)bytes, OVERLAY_BITMAP_MAX,
				(unsigned long long)h->size);
	h->bitmap_offset = OVERLAY_HEADER_SIZE;
	h->bitmap_bytes = bytes;
	h->data_offset = align_up(h->bitmap_offset + bytes, csize);
	return 0;
}

/* Offsets in the header; docs/overlay.md lists the same. */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_HEADER_SIZE = 12,
	H_CLUSTER_BITS = 16,
	H_FLAGS = 20,
	H_SIZE = 24,
	H_BITMAP_OFFSET = 32,
	H_BITMAP_BYTES = 40,
	H_DATA_OFFSET = 48,
	H_BASE_SIZE = 56,
	H_BASE_INO = 64,
	H_BASE_MTIME_SEC = 72,
	H_BASE_MTIME_NSEC = 80,
	H_BASE_PATH_LEN = 84,
	H_CRC = OVERLAY_HEADER_SIZE - 4,
};

void overlay_header_build(const struct overlay_header *h, uint8_t buf[OVERLAY_HEADER_SIZE])
{
	size_t len = strlen(h->base_path);

	memset(buf, 0, OVERLAY_HEADER_SIZE);
	memcpy(buf + H_MAGIC, OVERLAY_MAGIC, 8);
	le_put32(buf + H_VERSION, h->version);
	le_put32(buf + H_HEADER_SIZE, OVERLAY_HEADER_SIZE);
	le_put32(buf + H_CLUSTER_BITS, h->cluster_bits);
	le_put64(buf + H_SIZE, h->size);
	le_put64(buf + H_BITMAP_OFFSET, h->bitmap_offset);
	le_put64(buf + H_BITMAP_BYTES, h->bitmap_bytes);
	le_put64(buf + H_DATA_OFFSET, h->data_offset);
	le_put64(buf + H_BASE_SIZE, h->base_size);
	le_put64(buf + H_BASE_INO, h->base_ino);
	le_put64(buf + H_BASE_MTIME_SEC, (uint64_t)h->base_mtime_sec);
	le_put32(buf + H_BASE_MTIME_NSEC, h->base_mtime_nsec);
	le_put32(buf + H_BASE_PATH_LEN, (uint32_t)len);
	memcpy(buf + OVERLAY_BASE_PATH_OFF, h->base_path, len);
	le_put32(buf + H_CRC, (uint32_t)crc32(0, buf, H_CRC));
}

int overlay_header_parse(const uint8_t *buf, size_t len, struct overlay_header *h, char *err,
			 size_t n)
{
	memset(h, 0, sizeof(*h));
	if (len < OVERLAY_HEADER_SIZE || memcmp(buf + H_MAGIC, OVERLAY_MAGIC, 8))
		return fail_msg(err, n, -EINVAL, "not a tern overlay (no '%s' header)",
				OVERLAY_MAGIC);
	h->version = le_get32(buf + H_VERSION);
	if (h->version != OVERLAY_VERSION)
		return fail_msg(err, n, -EINVAL,
				"overlay format version %u; this tern-vmm reads version %d",
				h->version, OVERLAY_VERSION);
	if (le_get32(buf + H_CRC) != (uint32_t)crc32(0, buf, H_CRC))
		return fail_msg(err, n, -EINVAL, "the overlay header's CRC does not match");
	if (le_get32(buf + H_HEADER_SIZE) != OVERLAY_HEADER_SIZE || le_get32(buf + H_FLAGS))
		return fail_msg(err, n, -EINVAL, "header size %u or flags %#x unknown",
				le_get32(buf + H_HEADER_SIZE), le_get32(buf + H_FLAGS));
	h->cluster_bits = le_get32(buf + H_CLUSTER_BITS);
	h->size = le_get64(buf + H_SIZE);
	h->base_size = le_get64(buf + H_BASE_SIZE);
	h->base_ino = le_get64(buf + H_BASE_INO);
	h->base_mtime_sec = (int64_t)le_get64(buf + H_BASE_MTIME_SEC);
	h->base_mtime_nsec = le_get32(buf + H_BASE_MTIME_NSEC);
	int r = overlay_layout(h, err, n);
	if (r)
		return r;
	if (le_get64(buf + H_BITMAP_OFFSET) != h->bitmap_offset ||
	    le_get64(buf + H_BITMAP_BYTES) != h->bitmap_bytes ||
	    le_get64(buf + H_DATA_OFFSET) != h->data_offset)
		return fail_msg(err, n, -EINVAL,
				"bitmap at %llu (%llu bytes) and data at %llu is not the layout "
				"of %llu bytes in 2^%u-byte clusters",
				(unsigned long long)le_get64(buf + H_BITMAP_OFFSET),
				(unsigned long long)le_get64(buf + H_BITMAP_BYTES),
				(unsigned long long)le_get64(buf + H_DATA_OFFSET),
				(unsigned long long)h->size, h->cluster_bits);
	if (h->base_size < h->size || h->base_size - h->size >= 512 ||
	    h->base_mtime_nsec >= 1000000000)
		return fail_msg(err, n, -EINVAL, "base size %llu or time does not fit size %llu",
				(unsigned long long)h->base_size, (unsigned long long)h->size);
	uint32_t plen = le_get32(buf + H_BASE_PATH_LEN);
	if (plen == 0 || plen > OVERLAY_BASE_PATH_MAX ||
	    memchr(buf + OVERLAY_BASE_PATH_OFF, 0, plen))
		return fail_msg(err, n, -EINVAL, "base path length %u (1 to %d, no NUL bytes)",
				plen, OVERLAY_BASE_PATH_MAX);
	memcpy(h->base_path, buf + OVERLAY_BASE_PATH_OFF, plen);
	h->base_path[plen] = 0;
	return 0;
}

/*
 * A base must be a regular file: its inode and modification time tell whether it changed
 * (a block device's do not).
 */
static int base_stat(int fd, struct stat *st, uint64_t *size)
{
	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	*size = (uint64_t)st->st_size;
	return 0;
}

/* Is the base still what the overlay was made in front of? */
static int base_matches(const struct overlay_header *h, int fd, char *err, size_t n)
{
	struct stat st;
	uint64_t size = 0;
	int r = base_stat(fd, &st, &size);

	if (r)
		return fail_msg(err, n, r, "its base '%s' is not a regular file", h->base_path);
	if (size != h->base_size || (uint64_t)st.st_ino != h->base_ino ||
	    (int64_t)st.st_mtim.tv_sec != h->base_mtime_sec ||
	    (uint32_t)st.st_mtim.tv_nsec != h->base_mtime_nsec)
		return fail_msg(err, n, -ESTALE,
				"its base '%s' changed after the overlay was made (size, inode "
				"or modification time differ), so the overlay no longer fits it",
				h->base_path);
	return 0;
}

int overlay_create(const char *path, const char *base, char *err, size_t n)
{
	struct overlay_header h = { .version = OVERLAY_VERSION,
				    .cluster_bits = OVERLAY_CLUSTER_BITS_DEFAULT };
	uint8_t buf[OVERLAY_HEADER_SIZE];
	struct stat st;
	char *abs = NULL;
	int fd = -1, out = -1, r;

	fd = open(base, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_msg(err, n, -errno, "cannot open the base '%s': %s", base,
				strerror(errno));
	if ((r = base_stat(fd, &st, &h.base_size))) {
		fail_msg(err, n, r, "the base '%s' is not a regular file", base);
		goto out;
	}
	h.size = h.base_size & ~511ULL;
	h.base_ino = st.st_ino;
	h.base_mtime_sec = st.st_mtim.tv_sec;
	h.base_mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	/* Absolute, so the overlay can be used from any directory. */
	abs = realpath(base, NULL);
	if (!abs) {
		r = fail_msg(err, n, -errno, "cannot resolve '%s': %s", base, strerror(errno));
		goto out;
	}
	if (strlen(abs) > OVERLAY_BASE_PATH_MAX) {
		r = fail_msg(err, n, -ENAMETOOLONG, "the base path '%s' is longer than %d bytes",
			     abs, OVERLAY_BASE_PATH_MAX);
		goto out;
	}
	strcpy(h.base_path, abs);
	char why[160];
	if ((r = overlay_layout(&h, why, sizeof(why)))) {
		fail_msg(err, n, r, "cannot overlay '%s': %s", base, why);
		goto out;
	}
	out = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		r = fail_msg(err, n, -errno, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	overlay_header_build(&h, buf);
	errno = 0;
	/* The bitmap and data area start as holes: no cluster is in the overlay yet. */
	if (pwrite(out, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
	    ftruncate(out, (off_t)(h.data_offset + h.size)) < 0 || fsync(out) < 0) {
		r = fail_msg(err, n, errno ? -errno : -EIO, "cannot write '%s': %s", path,
			     strerror(errno ? errno : EIO));
		unlink(path);
		goto out;
	}
	r = 0;
out:
	free(abs);
	if (out >= 0)
		close(out);
	close(fd);
	return r;
}

static int read_header(int fd, struct overlay_header *h, char *err, size_t n)
{
	uint8_t buf[OVERLAY_HEADER_SIZE];
	struct stat st;
	ssize_t k = pread(fd, buf, sizeof(buf), 0);

	if (k < 0)
		return fail_msg(err, n, -errno, "cannot read its header: %s", strerror(errno));
	int r = overlay_header_parse(buf, (size_t)k, h, err, n);
	if (r)
		return r;
	if (fstat(fd, &st) < 0)
		return fail_msg(err, n, -errno, "cannot stat: %s", strerror(errno));
	if ((uint64_t)st.st_size != h->data_offset + h->size)
		return fail_msg(err, n, -EINVAL,
				"the file is %llu bytes, not the %llu its header describes "
				"(truncated or extended?)",
				(unsigned long long)st.st_size,
				(unsigned long long)(h->data_offset + h->size));
	return 0;
}

int overlay_base_of(const char *path, char *base, size_t n)
{
	struct overlay_header h;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = read_header(fd, &h, NULL, 0);
	close(fd);
	if (r)
		return r;
	if (strlen(h.base_path) >= n)
		return -ENAMETOOLONG;
	strcpy(base, h.base_path);
	return 0;
}

#define BASE_BUSY "its base '%s' is held for writing by another process (a VM using it as a disk?)"

int overlay_check(const char *path, char *err, size_t n)
{
	struct overlay_header h;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return fail_msg(err, n, -errno, "cannot open: %s", strerror(errno));
	r = read_header(fd, &h, err, n);
	close(fd);
	if (r)
		return r;
	/* In disk_open's order: the lock, then whether the base changed. */
	if ((r = disk_lock_holder(h.base_path, true)) > 0)
		return fail_msg(err, n, -EBUSY, BASE_BUSY, h.base_path);
	if (r < 0)
		return fail_msg(err, n, r, "cannot open its base '%s': %s", h.base_path,
				strerror(-r));
	fd = open(h.base_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_msg(err, n, -errno, "cannot open its base '%s': %s", h.base_path,
				strerror(errno));
	r = base_matches(&h, fd, err, n);
	close(fd);
	return r;
}

/* ---- attaching to a disk ---- */

int overlay_attach(struct disk *d, const char **why)
{
	struct overlay *o = calloc(1, sizeof(*o));
	char *msg = d->why;
	size_t n = sizeof(d->why);
	int r;

	*why = msg;
	if (!o) {
		*why = "out of memory";
		return -ENOMEM;
	}
	o->base_fd = -1;
	if ((r = read_header(d->fd, &o->h, msg, n)))
		goto fail;
	o->csize = 1ULL << o->h.cluster_bits;
	o->base_fd = open(o->h.base_path, O_RDONLY | O_CLOEXEC);
	if (o->base_fd < 0) {
		r = fail_msg(msg, n, -errno, "cannot open its base '%s': %s", o->h.base_path,
			     strerror(errno));
		goto fail;
	}
	/* Shared with other overlays of the same base; excludes a VM writing it. */
	if ((r = disk_lock_fd(o->base_fd, true))) {
		r = fail_msg(msg, n, r, BASE_BUSY, o->h.base_path);
		goto fail;
	}
	if ((r = base_matches(&o->h, o->base_fd, msg, n)))
		goto fail;
	o->bitmap = malloc(o->h.bitmap_bytes);
	o->chunk_dirty = calloc(o->h.bitmap_bytes / OVERLAY_BITMAP_CHUNK, 1);
	if (!o->bitmap || !o->chunk_dirty) {
		r = fail_msg(msg, n, -ENOMEM, "out of memory for the overlay's bitmap");
		goto fail;
	}
	struct iovec v = { o->bitmap, o->h.bitmap_bytes };
	memset(o->bitmap, 0, o->h.bitmap_bytes);
	if ((r = disk_iov_rw(d->fd, &v, 1, o->h.bitmap_offset, o->h.bitmap_bytes, false))) {
		fail_msg(msg, n, r, "cannot read the overlay's bitmap: %s", strerror(-r));
		goto fail;
	}
	pthread_mutex_init(&o->alloc_lock, NULL);
	d->ovl = o;
	d->size = o->h.size;
	return 0;
fail:
	if (o->base_fd >= 0)
		close(o->base_fd);
	free(o->bitmap);
	free(o->chunk_dirty);
	free(o);
	return r;
}

void overlay_detach(struct disk *d)
{
	struct overlay *o = d->ovl;

	pthread_mutex_destroy(&o->alloc_lock);
	close(o->base_fd);
	free(o->bitmap);
	free(o->chunk_dirty);
	free(o);
	d->ovl = NULL;
}

/* ---- requests ---- */

static bool in_overlay(const struct overlay *o, uint64_t cluster)
{
	return __atomic_load_n(&o->bitmap[cluster >> 3], __ATOMIC_ACQUIRE) & (1u << (cluster & 7));
}

/* Called with alloc_lock held, after the cluster's data was written. */
static void mark(struct overlay *o, uint64_t cluster)
{
	__atomic_fetch_or(&o->bitmap[cluster >> 3], (uint8_t)(1u << (cluster & 7)),
			  __ATOMIC_RELEASE);
	o->chunk_dirty[(cluster >> 3) / OVERLAY_BITMAP_CHUNK] = 1;
}

/* Writes the changed pieces of the bitmap to the file. Called with alloc_lock held. */
static int write_bitmap(struct disk *d)
{
	struct overlay *o = d->ovl;
	uint64_t chunks = o->h.bitmap_bytes / OVERLAY_BITMAP_CHUNK;

	for (uint64_t i = 0; i < chunks; i++) {
		if (!o->chunk_dirty[i])
			continue;
		struct iovec v = { o->bitmap + i * OVERLAY_BITMAP_CHUNK, OVERLAY_BITMAP_CHUNK };
		int r = disk_iov_rw(d->fd, &v, 1, o->h.bitmap_offset + i * OVERLAY_BITMAP_CHUNK,
				    OVERLAY_BITMAP_CHUNK, true);
		if (r)
			return r;
		o->chunk_dirty[i] = 0;
	}
	return 0;
}

static int flush(struct disk *d)
{
	struct overlay *o = d->ovl;
	int r = 0;

	/* Holding alloc_lock: no bit is set while the data under the bits is synced. */
	pthread_mutex_lock(&o->alloc_lock);
	if (fdatasync(d->fd) < 0 || (r = write_bitmap(d)) || fdatasync(d->fd) < 0)
		r = r ? r : -errno;
	pthread_mutex_unlock(&o->alloc_lock);
	return r;
}

/*
 * The pieces of r's buffers from byte skip, len bytes long, into out (room for
 * r->iovcnt entries). Returns how many entries.
 */
static int iov_slice(const struct disk_req *r, uint64_t skip, uint64_t len, struct iovec *out)
{
	int k = 0;

	for (int i = 0; i < r->iovcnt && len; i++) {
		uint64_t l = r->iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = l - skip < len ? l - skip : len;
		out[k].iov_base = (uint8_t *)r->iov[i].iov_base + skip;
		out[k].iov_len = take;
		k++;
		len -= take;
		skip = 0;
	}
	return k;
}

/* Reads or writes bytes [skip, skip+len) of the request at off in fd. */
static int rw_part(int fd, const struct disk_req *r, uint64_t skip, uint64_t len, uint64_t off,
		   bool write)
{
	struct iovec part[r->iovcnt > 0 ? r->iovcnt : 1];
	int k = iov_slice(r, skip, len, part);

	return disk_iov_rw(fd, part, k, off, len, write);
}

static int do_read(struct disk *d, const struct disk_req *r)
{
	struct overlay *o = d->ovl;
	uint64_t pos = r->offset, end = r->offset + r->len;

	while (pos < end) {
		bool here = in_overlay(o, pos >> o->h.cluster_bits);
		uint64_t run = pos;
		/* The longest run of clusters on the same side. */
		do
			run = align_down(run, o->csize) + o->csize;
		while (run < end && in_overlay(o, run >> o->h.cluster_bits) == here);
		if (run > end)
			run = end;
		int e = rw_part(here ? d->fd : o->base_fd, r, pos - r->offset, run - pos,
				here ? o->h.data_offset + pos : pos, false);
		if (e)
			return e;
		pos = run;
	}
	return 0;
}

static bool all_in_overlay(const struct overlay *o, uint64_t first, uint64_t last)
{
	for (uint64_t c = first; c <= last; c++)
		if (!in_overlay(o, c))
			return false;
	return true;
}

/* Reads bytes [from, to) of the base into buf; a base shorter than that reads as zeros. */
static int read_base(struct overlay *o, uint8_t *buf, uint64_t from, uint64_t to)
{
	struct iovec v = { buf, to - from };

	memset(buf, 0, to - from);
	return disk_iov_rw(o->base_fd, &v, 1, from, to - from, false);
}

/*
 * One cluster's part [s, e) of a write, write-zeroes or discard, with alloc_lock held.
 * buf holds a cluster. A cluster not yet in the overlay is copied up whole; a discard
 * only punches what is already here.
 */
static int write_cluster(struct disk *d, const struct disk_req *r, uint64_t c, uint64_t s,
			 uint64_t e, uint8_t *buf)
{
	struct overlay *o = d->ovl;
	bool discard = r->op == DISK_DISCARD, zero = r->op != DISK_WRITE;
	uint64_t cs = c << o->h.cluster_bits;
	uint64_t ce = cs + o->csize < o->h.size ? cs + o->csize : o->h.size;
	bool here = in_overlay(o, c), whole = s == cs && e == ce;
	int err;

	if (discard && !here)
		return 0; /* the base's bytes are as good as any after a discard */
	if (discard && !d->can_punch)
		return 0; /* discard is a hint */
	if (zero && (here || whole) && d->can_punch) {
		/* A punched hole reads back as zeros, and makes the cluster this file's. */
		if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(o->h.data_offset + s), (off_t)(e - s)) < 0)
			return -errno;
	} else if (here && !zero) {
		return rw_part(d->fd, r, s - r->offset, e - s, o->h.data_offset + s, true);
	} else {
		if (!here && !whole && (err = read_base(o, buf, cs, ce)))
			return err;
		if (zero) {
			memset(buf + (s - cs), 0, e - s);
		} else {
			struct iovec v = { buf + (s - cs), e - s };
			struct iovec part[r->iovcnt > 0 ? r->iovcnt : 1];
			int k = iov_slice(r, s - r->offset, e - s, part);
			/* Gather the guest's bytes into the cluster buffer. */
			uint8_t *p = v.iov_base;
			for (int i = 0; i < k; i++) {
				memcpy(p, part[i].iov_base, part[i].iov_len);
				p += part[i].iov_len;
			}
		}
		uint64_t from = here ? s : cs, to = here ? e : ce;
		struct iovec v = { buf + (from - cs), to - from };
		if ((err = disk_iov_rw(d->fd, &v, 1, o->h.data_offset + from, to - from, true)))
			return err;
	}
	if (!here)
		mark(o, c);
	return 0;
}

static int do_write(struct disk *d, const struct disk_req *r)
{
	bool zero = r->op != DISK_WRITE;
	struct overlay *o = d->ovl;
	uint64_t end = r->offset + r->len;
	uint64_t first = r->offset >> o->h.cluster_bits, last = (end - 1) >> o->h.cluster_bits;
	int e = 0;

	/* Clusters already here never leave: such writes need no lock. */
	if (!zero && all_in_overlay(o, first, last))
		return rw_part(d->fd, r, 0, r->len, o->h.data_offset + r->offset, true);
	uint8_t *buf = malloc(o->csize);
	if (!buf)
		return -ENOMEM;
	/* One copy-up at a time: two writes into one new cluster must not both copy it. */
	pthread_mutex_lock(&o->alloc_lock);
	for (uint64_t c = first; c <= last && !e; c++) {
		uint64_t cs = c << o->h.cluster_bits;
		uint64_t s = cs > r->offset ? cs : r->offset;
		uint64_t ce = cs + o->csize;
		e = write_cluster(d, r, c, s, ce < end ? ce : end, buf);
	}
	/* cache=none offers no FLUSH: the bits must be on disk when the write completes. */
	if (!e && d->sync_writes)
		e = write_bitmap(d);
	pthread_mutex_unlock(&o->alloc_lock);
	free(buf);
	return e;
}

int overlay_do_sync(struct disk *d, const struct disk_req *r)
{
	if (r->op != DISK_FLUSH &&
	    (r->len == 0 || r->offset > d->size || r->len > d->size - r->offset))
		return r->len == 0 ? 0 : -EINVAL; /* virtio-blk checked this; never trust twice */
	switch (r->op) {
	case DISK_READ:
		return do_read(d, r);
	case DISK_WRITE:
	case DISK_DISCARD:
	case DISK_WRITE_ZEROES:
		return do_write(d, r);
	case DISK_FLUSH:
		return flush(d);
	case DISK_FAIL:
		break; /* disk_do_sync answers it */
	}
	return -EINVAL;
}
