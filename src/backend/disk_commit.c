/* qemu-img commit through tern's own disk code (see disk_commit.h). */
#include "backend/disk_commit.h"
#include "backend/disk.h"
#include "backend/image_file.h"
#include "backend/qcow2.h"
#include "core/loop.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20) /* bytes copied at a time */

/* The loop a threads-engine disk registers with; nothing runs it: requests are synchronous. */
static struct loop *commit_loop;
static pthread_once_t commit_loop_once = PTHREAD_ONCE_INIT;

static void make_loop(void)
{
	commit_loop = loop_create();
}

/*
 * path's qcow2 image, locked as a VM would lock it: to read, alone; to empty, with its
 * chain (qcow2 writes no image opened without it).
 */
static int open_top(const char *path, bool write, int *fd, struct qcow2 **q, char *err, size_t n)
{
	struct qcow2_open_args a = { .readonly = !write,
				     .no_backing = !write,
				     .punch_freed = write };

	return image_open_qcow2(path, &a, fd, q, err, n);
}

/* After the copy: the top's clusters hand back to the base, which holds the same bytes. */
static int empty_top(const char *path, uint64_t size, char *err, size_t n)
{
	struct qcow2 *q;
	int fd, r;

	if ((r = open_top(path, true, &fd, &q, err, n)))
		return r;
	if ((r = qcow2_unmap(q, 0, size)) || (r = qcow2_flush(q)))
		fail_msg(err, n, r, "emptying %s: %s", path, strerror(-r));
	qcow2_close(q);
	close(fd);
	return r;
}

/* Each range the top maps itself, read from it and written into base. */
static int copy_mapped(struct disk_commit *c, struct qcow2 *top, struct disk *base, uint64_t size,
		       uint8_t *buf, char *err, size_t n)
{
	int r = 0;

	for (uint64_t off = 0, run; off < size && !r; off += run) {
		if ((r = qcow2_block_status(top, off, size - off, &run)) < 0)
			return fail_msg(err, n, r, "reading %s's map at %llu: %s", c->top,
					(unsigned long long)off, strerror(-r));
		if (run > CHUNK)
			run = CHUNK;
		if (r == 1) {
			struct iovec iov = { buf, run };
			if ((r = qcow2_read(top, &iov, 1, off, run)))
				return fail_msg(err, n, r, "reading %s at %llu: %s", c->top,
						(unsigned long long)off, strerror(-r));
			if ((r = disk_rw_sync(base, DISK_WRITE, buf, off, run)))
				return fail_msg(err, n, r, "writing %s at %llu: %s", c->base,
						(unsigned long long)off, strerror(-r));
			c->bytes += run;
		}
		r = 0;
		if (c->progress)
			c->progress(c->opaque, off + run, size);
	}
	return r;
}

int disk_commit(struct disk_commit *c, char *err, size_t n)
{
	struct qcow2_chain_entry *chain = calloc(2, sizeof(*chain));
	uint8_t *buf = malloc(CHUNK);
	struct qcow2 *top = NULL;
	struct disk base = { .fd = -1 };
	bool base_open = false;
	const char *why = "";
	int fd = -1, r;

	c->bytes = 0;
	c->base[0] = 0;
	if (!chain || !buf || (pthread_once(&commit_loop_once, make_loop), !commit_loop)) {
		r = fail_msg(err, n, -ENOMEM, "out of memory");
		goto out;
	}
	int k = qcow2_describe(c->top, chain, 2, err, n);
	if (k < 0) {
		r = k;
		goto out;
	}
	if (k < 2) {
		r = fail_msg(err, n, -EINVAL,
			     "is an image without a backing file, not a qcow2 image with one");
		goto out;
	}
	snprintf(c->base, sizeof(c->base), "%s", chain[1].path);
	struct disk_open_args a = { .path = c->base,
				    .engine = DISK_ENGINE_THREADS,
				    /* As the top's header says: a raw base is never probed. */
				    .format = strcmp(chain[1].format, "qcow2") ? DISK_FORMAT_RAW :
										 DISK_FORMAT_QCOW2,
				    .loop = commit_loop };
	if ((r = disk_open(&base, &a, &why))) {
		fail_msg(err, n, r, "the backing file %s %s: %s (stop the VMs using it first)",
			 c->base, why, strerror(-r));
		goto out;
	}
	base_open = true;
	/* The top image alone, read-locked so that nothing writes it meanwhile. */
	if ((r = open_top(c->top, false, &fd, &top, err, n)))
		goto out;
	uint64_t size = qcow2_size(top);
	if (size > base.size) {
		r = fail_msg(err, n, -EINVAL,
			     "%s (%llu bytes) is larger than its backing file %s (%llu bytes)",
			     c->top, (unsigned long long)size, c->base,
			     (unsigned long long)base.size);
		goto out;
	}
	if (!(r = copy_mapped(c, top, &base, size, buf, err, n)) && (r = disk_flush_now(&base)))
		fail_msg(err, n, r, "flushing %s: %s", c->base, strerror(-r));
	qcow2_close(top);
	top = NULL;
	close(fd);
	fd = -1;
	disk_close(&base); /* the top's chain opens it for reading next */
	base_open = false;
	/* The base holds everything now: a failure from here on loses nothing. */
	char e2[600];
	if (!r && !c->keep && (r = empty_top(c->top, size, e2, sizeof(e2))))
		fail_msg(err, n, r, "%s is in %s, but %s", c->top, c->base, e2);
out:
	if (top)
		qcow2_close(top);
	if (fd >= 0)
		close(fd);
	if (base_open)
		disk_close(&base);
	free(buf);
	free(chain);
	return r;
}
