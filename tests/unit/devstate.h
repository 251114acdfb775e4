/*
 * Device state round trips for the unit tests: one device section written through a real
 * vmstate_writer into a memfd, read back and checked with vmstate_file_parse(), and
 * altered copies of its payload (truncated, one byte longer, one field changed) that
 * restore must refuse.
 */
#ifndef TERN_TESTS_DEVSTATE_H
#define TERN_TESTS_DEVSTATE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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

/* One field of a payload a restore must refuse, and a word its message must contain. */
struct devstate_bad {
	size_t at;
	uint8_t val; /* the byte's new value, or (with xor) what is XORed into it */
	const char *what;
};

/* A device's restore, called through a three-line wrapper that names its type. */
typedef int (*devstate_restore_fn)(void *dev, struct vmstate_cursor *c, char *err, size_t n);

/* Did restore refuse c with -EINVAL and a message starting with prefix (and naming what)? */
static inline bool devstate_refused(devstate_restore_fn restore, void *dev,
				    struct vmstate_cursor *c, const char *prefix, const char *what,
				    const char *case_name, size_t case_n)
{
	char err[256] = "";
	int r = restore(dev, c, err, sizeof(err));

	if (r == -EINVAL && !strncmp(err, prefix, strlen(prefix)) && (!what || strstr(err, what)))
		return true;
	printf("  %s %zu: restore %d \"%s\", wanted -EINVAL \"%s...%s\"\n", case_name, case_n, r,
	       err, prefix, what ? what : "");
	return false;
}

/*
 * The refusals every device section must give: the payload cut at every length or one
 * byte too long, and each bad[] field changed, must each make restore return -EINVAL with
 * a message starting with prefix (and, for bad[], containing its what). Prints each miss;
 * returns how many there were.
 */
static inline int devstate_refusals(struct devstate *d, devstate_restore_fn restore, void *dev,
				    const char *prefix, const struct devstate_bad *bad, size_t nbad,
				    bool xor)
{
	struct vmstate_cursor c;
	size_t len = d->s->len;
	int missed = 0;

	for (size_t n = 0; n <= len + 1; n++) {
		if (n == len)
			continue;
		devstate_altered(d, &c, n, SIZE_MAX, 0);
		missed += !devstate_refused(restore, dev, &c, prefix, NULL, "payload length", n);
	}
	for (size_t i = 0; i < nbad; i++) {
		uint8_t v = xor? d->s->payload[bad[i].at] ^ bad[i].val : bad[i].val;
		devstate_altered(d, &c, len, bad[i].at, v);
		missed +=
			!devstate_refused(restore, dev, &c, prefix, bad[i].what, "byte", bad[i].at);
	}
	return missed;
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
