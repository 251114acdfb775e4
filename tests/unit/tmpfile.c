/* Scratch files for unit tests (tmpfile.h). */
#include "tmpfile.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

bool tmp_make(struct tmp *t, const char *name)
{
	const char *base = getenv("TMPDIR");

	snprintf(t->dir, sizeof(t->dir), "%s/tern-unit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(t->dir))
		return false;
	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	return true;
}

void tmp_remove(struct tmp *t)
{
	unlink(t->path);
	rmdir(t->dir);
}

char *tmp_slurp(const char *path)
{
	static char buf[256 * 1024];
	int fd = open(path, O_RDONLY);
	size_t len = 0;
	ssize_t r;

	buf[0] = 0;
	if (fd < 0)
		return buf;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(fd);
	return buf;
}
