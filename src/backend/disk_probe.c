/*
 * Telling an image's format from its first bytes (format=auto), and the rule that makes
 * that safe: a disk taken as raw because it had no header never gets one from its guest.
 * Without the rule a guest could write a qcow2 header naming any host file as its backing
 * file into its raw disk and read that file after the next start.
 */
#include "backend/disk.h"
#include "backend/disk_probe.h"
#include "backend/qcow2.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_BYTES 4096 /* aligned for an O_DIRECT fd */
#define SECTOR 512

static const char *const format_names[] = {
	[DISK_FORMAT_RAW] = "raw",
	[DISK_FORMAT_OVERLAY] = "overlay",
	[DISK_FORMAT_QCOW2] = "qcow2",
	[DISK_FORMAT_AUTO] = "auto",
};

const char *disk_format_name(enum disk_format f)
{
	return (unsigned int)f <= DISK_FORMAT_LAST ? format_names[f] : "?";
}

int disk_format_parse(const char *s, enum disk_format *f)
{
	for (unsigned int i = 0; i <= DISK_FORMAT_LAST; i++)
		if (!strcmp(s, format_names[i])) {
			*f = (enum disk_format)i;
			return 0;
		}
	return -EINVAL;
}

int disk_probe_fd(int fd, enum disk_format *out)
{
	uint8_t *buf = aligned_alloc(PROBE_BYTES, PROBE_BYTES);
	ssize_t k;

	if (!buf)
		return -ENOMEM;
	do
		k = pread(fd, buf, PROBE_BYTES, 0);
	while (k < 0 && errno == EINTR);
	int r = k < 0 ? -errno : 0;
	if (!r)
		*out = qcow2_probe(buf, (size_t)k) ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
	free(buf);
	return r;
}

int disk_format_resolve(const char *path, enum disk_format f, enum disk_format *out)
{
	*out = f;
	if (f != DISK_FORMAT_AUTO)
		return 0;
	int r = disk_probe_path(path, out);
	if (r)
		*out = f;
	return r;
}

int disk_probe_path(const char *path, enum disk_format *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	int r = disk_probe_fd(fd, out);
	close(fd);
	return r;
}

/*
 * A write over the first sector of a probed raw disk runs from a copy of that sector, so
 * the guest cannot change it between the check and the write.
 */
struct guarded {
	struct disk_req req; /* what the engine runs */
	struct disk_req *orig;
	uint8_t sector[SECTOR];
	struct iovec iov[]; /* the copy, then the rest of orig's iov */
};

static void guarded_done(struct disk_req *r)
{
	struct guarded *g = (struct guarded *)r;
	struct disk_req *orig = g->orig;

	orig->result = r->result;
	free(g);
	orig->complete(orig);
}

/* Copies the first SECTOR bytes of r's buffers into g and points g's iov at the rest. */
static void guarded_build(struct guarded *g, const struct disk_req *r)
{
	size_t want = SECTOR, n = 0;
	int i = 0, out = 1;

	for (; i < r->iovcnt && want; i++) {
		size_t k = r->iov[i].iov_len < want ? r->iov[i].iov_len : want;
		memcpy(g->sector + n, r->iov[i].iov_base, k);
		n += k;
		want -= k;
		if (k < r->iov[i].iov_len) {
			g->iov[out].iov_base = (uint8_t *)r->iov[i].iov_base + k;
			g->iov[out++].iov_len = r->iov[i].iov_len - k;
		}
	}
	for (; i < r->iovcnt; i++)
		g->iov[out++] = r->iov[i];
	g->iov[0].iov_base = g->sector;
	g->iov[0].iov_len = n;
	g->req.iov = g->iov;
	g->req.iovcnt = out;
}

bool disk_guard_submit(struct disk *d, struct disk_req *r)
{
	static bool warned;

	/* The magic is the image's first 4 bytes: a write starting past them cannot make one. */
	if (!d->probed_raw || r->op != DISK_WRITE || r->offset >= 4 || r->iovcnt < 0)
		return false;
	struct guarded *g = malloc(sizeof(*g) + sizeof(struct iovec) * ((size_t)r->iovcnt + 1));
	if (!g) {
		r->op = DISK_FAIL; /* the device treats it as the failed write it is */
		r->result = -ENOMEM;
		d->engine->submit(d, r);
		return true;
	}
	g->req = *r;
	g->req.complete = guarded_done;
	g->orig = r;
	guarded_build(g, r);
	/*
	 * virtio-blk writes whole sectors, so offset 1-3 never comes from a guest; refused
	 * rather than checked against bytes this request does not carry.
	 */
	bool header = r->offset != 0 || qcow2_probe(g->sector, g->iov[0].iov_len);
	if (header) {
		if (!warned) {
			warned = true;
			log_warn(
				"disk '%s': the guest wrote a qcow2 header into the first sector "
				"of "
				"a disk that format=auto opened as raw; refused (format=raw allows "
				"it)",
				d->path);
		}
		g->req.op = DISK_FAIL;
		g->req.result = -EPERM;
	}
	d->engine->submit(d, &g->req);
	return true;
}
