/*
 * Device state round trips for the unit tests: one device section written through a real
 * vmstate_writer into a memfd, read back and checked with vmstate_file_parse(), and
 * altered copies of its payload (truncated, one byte longer, one field changed) that
 * restore must refuse.
 */
#ifndef TERN_TESTS_DEVSTATE_H
#define TERN_TESTS_DEVSTATE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmstate/vmstate.h"

struct devstate {
	int fd;
	uint32_t tag;
	struct vmstate_writer w;
	uint8_t *buf; /* the whole file, as read back */
	size_t len;
	struct vmstate_file f;
	const struct vmstate_section *s; /* the device's section in f */
	/* An altered copy of the payload, for refusals. */
	uint8_t *alt;
	struct vmstate_section alt_s;
};

/* Opens the file and the device's section: the caller then runs the device's save. */
static inline int devstate_begin(struct devstate *d, uint32_t tag, uint32_t version)
{
	memset(d, 0, sizeof(*d));
	d->tag = tag;
	d->fd = memfd_create("devstate", MFD_CLOEXEC);
	if (d->fd < 0 || vmstate_writer_init(&d->w, d->fd))
		return -1;
	vmstate_begin(&d->w, tag, 0, version);
	return 0;
}

/* Closes the section and the file, reads it back and finds the section. */
static inline int devstate_finish(struct devstate *d)
{
	char err[256];
	off_t end;

	vmstate_end(&d->w);
	if (vmstate_writer_finish(&d->w))
		return -1;
	end = lseek(d->fd, 0, SEEK_END);
	if (end <= 0 || !(d->buf = malloc((size_t)end)))
		return -1;
	d->len = (size_t)end;
	if (pread(d->fd, d->buf, d->len, 0) != (ssize_t)d->len)
		return -1;
	if (vmstate_file_parse(&d->f, d->buf, d->len, err, sizeof(err)))
		return -1;
	d->s = vmstate_find(&d->f, d->tag, 0);
	return d->s ? 0 : -1;
}

static inline void devstate_cursor(const struct devstate *d, struct vmstate_cursor *c)
{
	vmstate_cursor_init(c, d->s);
}

/*
 * A cursor over the payload cut or grown to len bytes (grown with a zero byte), with
 * byte at (if at < len) replaced by val.
 */
static inline void devstate_altered(struct devstate *d, struct vmstate_cursor *c, size_t len,
				    size_t at, uint8_t val)
{
	size_t n = d->s->len < len ? d->s->len : len;

	free(d->alt);
	d->alt = calloc(1, len + 1);
	memcpy(d->alt, d->s->payload, n);
	if (at < len)
		d->alt[at] = val;
	d->alt_s = *d->s;
	d->alt_s.payload = d->alt;
	d->alt_s.len = len;
	vmstate_cursor_init(c, &d->alt_s);
}

static inline void devstate_free(struct devstate *d)
{
	if (d->buf)
		vmstate_file_free(&d->f);
	free(d->buf);
	free(d->alt);
	if (d->fd >= 0)
		close(d->fd);
}

#endif
