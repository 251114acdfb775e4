/* Opening, locking, sizing disk images, and the synchronous form of every request. */
#include "backend/disk.h"
#include "backend/image_fds.h"
#include "backend/disk_overlay.h"
#include "backend/disk_probe.h"
#include "backend/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int disk_lock_fd(int fd, bool readonly)
{
	struct flock fl = { .l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };

	/* OFD locks belong to this open file, so they survive fork and go with close. */
	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/*
 * What an image of a format other than raw (as given, or as probed) asks of the open: the
 * threads engine for an overlay, and no O_DIRECT, whose alignment rules qcow2's and the
 * overlay's own cluster buffers would not fit (O_DSYNC alone keeps cache=none's promise).
 */
static int fit_format(struct disk *d, const struct disk_open_args *a, const char **why)
{
	if (d->format == DISK_FORMAT_RAW)
		return 0;
	if (a->engine == DISK_ENGINE_IO_URING && d->format == DISK_FORMAT_OVERLAY) {
		*why = "is an overlay, which the threads engine serves (aio=io_uring is for raw "
		       "and qcow2 images)";
		return -EINVAL;
	}
	if (d->direct) {
		if (fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_DIRECT) < 0) {
			*why = "cannot clear O_DIRECT";
			return -errno;
		}
		d->direct = false;
	}
	return 0;
}

int disk_fd_size(int fd, bool *block_device, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*block_device = S_ISBLK(st.st_mode);
	if (*block_device)
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

int disk_open(struct disk *d, const struct disk_open_args *a, const char **why)
{
	uint64_t file_size;
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer; cleared below. */
	int flags = (a->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
	int r;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	d->path = a->path;
	d->readonly = a->readonly;
	d->sync_writes = a->direct;
	d->unlocked = a->no_lock;
	d->format = a->format;
	if (a->direct) {
		d->fd = image_fds_open(a->path, flags | O_DIRECT | O_DSYNC);
		/* Some file systems (tmpfs) refuse O_DIRECT: fall back to synchronous writes. */
		if (d->fd < 0 && errno == EINVAL)
			d->fd = image_fds_open(a->path, flags | O_DSYNC);
		else
			d->direct = d->fd >= 0;
	} else {
		d->fd = image_fds_open(a->path, flags);
	}
	if (d->fd < 0) {
		*why = "cannot open";
		return -errno;
	}
	if ((r = disk_fd_size(d->fd, &d->block_device, &file_size))) {
		*why = r == -EINVAL    ? "not a regular file or block device" :
		       d->block_device ? "cannot read the block device size" :
					 "cannot stat";
		goto fail;
	}
	d->size = file_size & ~511ULL;
	/* Blocking I/O from here on: O_NONBLOCK was only for the open. */
	if (fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		*why = "cannot clear O_NONBLOCK";
		goto fail;
	}
	if (d->format == DISK_FORMAT_AUTO) {
		if ((r = disk_probe_fd(d->fd, &d->format))) {
			*why = "cannot read its first bytes (format=auto)";
			goto fail;
		}
		d->probed_raw = d->format == DISK_FORMAT_RAW;
	}
	if ((r = fit_format(d, a, why)))
		goto fail;
	if (a->no_lock && d->format != DISK_FORMAT_RAW) {
		r = -EINVAL;
		*why = "is not a raw image (only those open unlocked)";
		goto fail;
	}
	if (!a->no_lock && (r = disk_lock_fd(d->fd, a->readonly))) {
		*why = (r == -EAGAIN || r == -EACCES) ?
			       "is locked by another process (another tern-vmm?)" :
			       "cannot lock";
		goto fail;
	}
	if (d->format == DISK_FORMAT_OVERLAY) {
		if (d->block_device) {
			r = -EINVAL;
			*why = "is a block device, not an overlay file";
			goto fail;
		}
		if ((r = overlay_attach(d, why)))
			goto fail;
	}
	if (d->format == DISK_FORMAT_QCOW2) {
		struct qcow2_open_args qa = { .fd = d->fd,
					      .path = a->path,
					      .readonly = a->readonly,
					      .l2_cache_bytes = a->l2_cache_bytes };
		if ((r = qcow2_open(&d->qcow, &qa, d->why, sizeof(d->why)))) {
			*why = d->why;
			goto fail;
		}
		d->size = qcow2_size(d->qcow);
	}
	/*
	 * Hole punching is what discard and write-zeroes need on files; probe it past
	 * the end of the file, where a punch changes nothing.
	 */
	off_t past_end = (off_t)((file_size + 8191) & ~(uint64_t)4095);
	d->can_punch = !a->readonly && (d->block_device ||
					fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						  past_end, 4096) == 0);
	const struct disk_engine_ops *engines[2] = { d->qcow ? &disk_engine_uring_qcow2 :
							       &disk_engine_uring,
						     &disk_engine_threads };
	for (int i = 0; i < 2; i++) {
		const struct disk_engine_ops *e = engines[i];
		if ((a->engine == DISK_ENGINE_IO_URING && e == &disk_engine_threads) ||
		    (a->engine == DISK_ENGINE_THREADS && e != &disk_engine_threads))
			continue;
		/* An overlay's requests are several system calls each: workers run them. */
		if (d->ovl && e != &disk_engine_threads)
			continue;
		if ((r = e->init(d, a->loop)) == 0) {
			d->engine = e;
			return 0;
		}
	}
	*why = "no I/O engine could start";
fail:
	if (d->ovl)
		overlay_detach(d);
	if (d->qcow)
		qcow2_close(d->qcow);
	d->qcow = NULL;
	close(d->fd);
	d->fd = -1;
	return r;
}

void disk_close(struct disk *d)
{
	if (d->engine)
		d->engine->fini(d);
	if (d->ovl) {
		if (!d->readonly)
			disk_flush_now(d);
		overlay_detach(d);
	}
	if (d->qcow) {
		/* qcow2_close writes back its tables and marks the image clean. */
		qcow2_close(d->qcow);
		d->qcow = NULL;
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

void disk_submit(struct disk *d, struct disk_req *r)
{
	if (!disk_guard_submit(d, r))
		d->engine->submit(d, r);
}

void disk_plug(struct disk *d)
{
	atomic_fetch_add(&d->plugged, 1);
}

void disk_unplug(struct disk *d)
{
	if (atomic_fetch_sub(&d->plugged, 1) == 1 && d->engine && d->engine->unplug)
		d->engine->unplug(d);
}

int disk_poll(struct disk *d, int timeout_ms)
{
	return d->engine->poll(d, timeout_ms);
}

const char *disk_engine_name(const struct disk *d)
{
	return d->engine ? d->engine->name : "none";
}

int disk_flush_now(struct disk *d)
{
	struct disk_req r = { .op = DISK_FLUSH };

	return disk_do_sync(d, &r);
}

int disk_iov_rw(int fd, const struct iovec *vec, int iovcnt, uint64_t off, uint64_t len, bool write)
{
	struct iovec iov[iovcnt > 0 ? iovcnt : 1];
	int n = iovcnt;
	uint64_t left = len;

	memcpy(iov, vec, sizeof(iov[0]) * (size_t)n);
	struct iovec *p = iov;
	while (left && n) {
		ssize_t k = write ? pwritev(fd, p, n, (off_t)off) : preadv(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return write ? -EIO : 0; /* reads past EOF of a growing file: zeros stay */
		off += (uint64_t)k;
		left -= (uint64_t)k;
		/* Skip what was done and continue with the rest (short transfers). */
		while (n && (size_t)k >= p->iov_len) {
			k -= (ssize_t)p->iov_len;
			p++;
			n--;
		}
		if (n) {
			p->iov_base = (uint8_t *)p->iov_base + k;
			p->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static int qcow2_do_sync(struct disk *d, const struct disk_req *r)
{
	int e;

	switch (r->op) {
	case DISK_READ:
		return qcow2_read(d->qcow, r->iov, r->iovcnt, r->offset, r->len);
	case DISK_FLUSH:
		return qcow2_flush(d->qcow);
	case DISK_WRITE:
		e = qcow2_write(d->qcow, r->iov, r->iovcnt, r->offset, r->len);
		break;
	case DISK_DISCARD:
		e = qcow2_discard(d->qcow, r->offset, r->len);
		break;
	case DISK_WRITE_ZEROES:
		e = qcow2_write_zeroes(d->qcow, r->offset, r->len);
		break;
	default:
		return r->result;
	}
	/*
	 * cache=none promises a write is durable when it completes: a qcow2 write may have
	 * changed tables that qcow2 otherwise keeps until the guest's next FLUSH. (On the
	 * O_DSYNC file that is a write-back of those tables only, no fdatasync.)
	 */
	return e || !d->sync_writes ? e : qcow2_flush(d->qcow);
}

int disk_do_sync(struct disk *d, const struct disk_req *r)
{
	if (r->op == DISK_FAIL)
		return r->result;
	if (d->ovl)
		return overlay_do_sync(d, r);
	if (d->qcow)
		return qcow2_do_sync(d, r);
	switch (r->op) {
	case DISK_READ:
		return disk_iov_rw(d->fd, r->iov, r->iovcnt, r->offset, r->len, false);
	case DISK_WRITE:
		return disk_iov_rw(d->fd, r->iov, r->iovcnt, r->offset, r->len, true);
	case DISK_FLUSH:
		return fdatasync(d->fd) < 0 ? -errno : 0;
	case DISK_DISCARD:
	case DISK_WRITE_ZEROES:
		if (d->block_device) {
			uint64_t range[2] = { r->offset, r->len };
			unsigned long req = r->op == DISK_DISCARD ? BLKDISCARD : BLKZEROOUT;
			return ioctl(d->fd, req, range) < 0 ? -errno : 0;
		}
		/* A punched hole reads back as zeros: it serves both requests on files. */
		return fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)r->offset, (off_t)r->len) < 0 ?
			       -errno :
			       0;
	case DISK_FAIL:
		break;
	}
	return -EINVAL;
}

int disk_rw_sync(struct disk *d, enum disk_op op, void *buf, uint64_t off, uint64_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct disk_req q = { .op = op, .offset = off, .len = len, .iov = &iov, .iovcnt = 1 };

	return disk_do_sync(d, &q);
}

int disk_open_like(int fd, const char *path)
{
	int fl = fcntl(fd, F_GETFL), again;

	if (fl < 0)
		return -errno;
	again = open(path, (fl & (O_ACCMODE | O_DIRECT | O_DSYNC)) | O_CLOEXEC);
	return again < 0 ? -errno : again;
}

int disk_reopen_locked(struct disk *d, const char **why)
{
	int fd = disk_open_like(d->fd, d->path), r;

	if (fd < 0) {
		*why = "cannot open it again";
		return fd;
	}
	if ((r = disk_lock_fd(fd, d->readonly))) {
		*why = (r == -EAGAIN || r == -EACCES) ?
			       "is locked by another process (the source still holds it?)" :
			       "cannot lock";
		close(fd);
		return r;
	}
	r = dup3(fd, d->fd, O_CLOEXEC) < 0 ? -errno : 0;
	if (r)
		*why = "cannot put the new open file in place";
	close(fd);
	return r;
}

int disk_lock_holder(const char *path, bool readonly)
{
	struct flock fl = { .l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	int r = fcntl(fd, F_OFD_GETLK, &fl);
	close(fd);
	if (r < 0)
		return -errno;
	return fl.l_type == F_UNLCK ? 0 : 1;
}
