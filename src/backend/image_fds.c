/* Image files handed in already open (image_fds.h). */
#include "backend/image_fds.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
	pthread_mutex_t lock;
	unsigned int n;
	struct {
		char *path;
		int fd, flags; /* flags: F_GETFL's */
	} e[IMAGE_FDS_MAX];
} fds = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void drop(unsigned int i)
{
	free(fds.e[i].path);
	fds.e[i] = fds.e[--fds.n];
}

void image_fds_clear(void)
{
	pthread_mutex_lock(&fds.lock);
	while (fds.n) {
		close(fds.e[fds.n - 1].fd);
		drop(fds.n - 1);
	}
	pthread_mutex_unlock(&fds.lock);
}

int image_fds_add(const char *path, int fd, char *err, size_t n)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL), r = 0;

	if (path[0] != '/') {
		close(fd);
		return fail_msg(err, n, -EINVAL, "'%s': a handed file's path must be absolute",
				path);
	}
	if (fl < 0 || fstat(fd, &st) || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		close(fd);
		return fail_msg(err, n, -EINVAL,
				"the file handed as '%s' is not a regular file or block device",
				path);
	}
	pthread_mutex_lock(&fds.lock);
	if (fds.n == IMAGE_FDS_MAX) {
		close(fd);
		r = fail_msg(err, n, -ENOSPC, "at most %d files are handed in at once",
			     IMAGE_FDS_MAX);
	} else if (!(fds.e[fds.n].path = strdup(path))) {
		close(fd);
		r = fail_msg(err, n, -ENOMEM, "out of memory");
	} else {
		fds.e[fds.n].fd = fd;
		fds.e[fds.n++].flags = fl;
	}
	pthread_mutex_unlock(&fds.lock);
	return r;
}

/* How well entry flags fl serve an open with flags: 0 not at all, 2 best. */
static int fit(int fl, int flags)
{
	int want = flags & O_ACCMODE, have = fl & O_ACCMODE;

	if ((flags & O_DSYNC) && (fl & O_DSYNC) != O_DSYNC)
		return 0;
	if (want == O_RDONLY)
		return have == O_RDONLY ? 2 : have == O_RDWR;
	return have == O_RDWR ? 2 : 0;
}

int image_fds_open(const char *path, int flags)
{
	int best = -1, score = 0, fd = -1, e = 0;
	bool handed = false;

	pthread_mutex_lock(&fds.lock);
	for (unsigned int i = 0; i < fds.n; i++) {
		if (strcmp(fds.e[i].path, path))
			continue;
		handed = true;
		int s = fit(fds.e[i].flags, flags);
		if (s > score) {
			score = s;
			best = (int)i;
		}
	}
	if (handed && (flags & O_DIRECT)) {
		e = EINVAL;
	} else if (best >= 0) {
		fd = fds.e[best].fd;
		drop((unsigned int)best);
	}
	pthread_mutex_unlock(&fds.lock);
	if (e) {
		errno = e;
		return -1;
	}
	/* O_NONBLOCK and O_CLOEXEC as asked: the descriptor is the opener's now. */
	if (fd >= 0 &&
	    (fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | (flags & O_NONBLOCK)) < 0 ||
	     fcntl(fd, F_SETFD, flags & O_CLOEXEC ? FD_CLOEXEC : 0) < 0)) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd >= 0 ? fd : open(path, flags);
}

bool image_fds_has(const char *path)
{
	bool yes = false;

	pthread_mutex_lock(&fds.lock);
	for (unsigned int i = 0; !yes && i < fds.n; i++)
		yes = !strcmp(fds.e[i].path, path);
	pthread_mutex_unlock(&fds.lock);
	return yes;
}
