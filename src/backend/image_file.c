/* Image files opened by a tool, locked as a VM locks its disk (see image_file.h). */
#include "backend/image_file.h"
#include "backend/disk.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int image_open_locked(const char *path, bool write, char *err, size_t n)
{
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);

	if (fd < 0)
		return fail_msg(err, n, -errno, "%s: %s", path, strerror(errno));
	if (disk_lock_fd(fd, !write)) {
		close(fd);
		return fail_msg(err, n, -EBUSY, "%s is in use by a running VM (stop it first)",
				path);
	}
	return fd;
}

int image_open_qcow2(const char *path, struct qcow2_open_args *a, int *fd, struct qcow2 **q,
		     char *err, size_t n)
{
	char why[512];
	int r;

	if ((*fd = image_open_locked(path, !a->readonly, err, n)) < 0)
		return *fd;
	a->fd = *fd;
	a->path = path;
	if ((r = qcow2_open(q, a, why, sizeof(why)))) {
		close(*fd);
		*fd = -1;
		return fail_msg(err, n, r, "%s: %s", path, why);
	}
	return 0;
}
