/* Size-rotated log files (rotlog.h). */
#include "monitor/rotlog.h"

#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Console output may hold secrets typed at a prompt: only the owner reads the logs. */
#define LOG_MODE 0600

static int reopen(struct rotlog *l, int extra_flags)
{
	struct stat st;

	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, LOG_MODE);
	if (l->fd < 0)
		return -errno;
	l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int rotlog_open(struct rotlog *l, const char *path, uint64_t max, unsigned int keep)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->max = max;
	l->keep = keep;
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	return reopen(l, 0);
}

/* PATH.i -> PATH.i+1 from the oldest down, then PATH -> PATH.1 and a fresh PATH. */
static int rotate(struct rotlog *l)
{
	size_t len = strlen(l->path) + 16;
	char *from = malloc(len), *to = malloc(len);
	int r = 0;

	if (!from || !to) {
		r = -ENOMEM;
		goto out;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	for (unsigned int i = l->keep; i > 1; i--) {
		snprintf(from, len, "%s.%u", l->path, i - 1);
		snprintf(to, len, "%s.%u", l->path, i);
		if (rename(from, to) < 0 && errno != ENOENT && !r)
			r = -errno;
	}
	snprintf(to, len, "%s.1", l->path);
	if (rename(l->path, to) < 0 && errno != ENOENT && !r)
		r = -errno;
	int o = reopen(l, O_TRUNC);
	if (!r)
		r = o;
out:
	free(from);
	free(to);
	return r;
}

int rotlog_write(struct rotlog *l, const void *buf, size_t n)
{
	const char *p = buf;
	int first = 0;

	if (l->fd < 0 && l->path) {
		first = reopen(l, 0);
		if (first)
			return first;
	}
	while (n) {
		uint64_t room = l->size < l->max ? l->max - l->size : 0;
		if (!room) {
			int r = rotate(l);
			if (r && !first)
				first = r;
			if (l->fd < 0)
				return first;
			continue;
		}
		size_t chunk = n < room ? n : (size_t)room;
		int r = fd_write_all(l->fd, p, chunk);
		/* Dropped but counted: a failing file fills up and rotates instead of stalling. */
		if (r && !first)
			first = r;
		l->size += chunk;
		p += chunk;
		n -= chunk;
	}
	return first;
}

void rotlog_close(struct rotlog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->path);
	l->path = NULL;
}
