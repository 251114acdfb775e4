/* Whole-file copies of disk images (disk_copy.h). */
#include "backend/disk_copy.h"

#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

bool disk_reflink(const char *from, const char *to)
{
	const char *no = getenv("TERN_CLONE_NO_REFLINK");
	int in = -1, out = -1;
	bool ok = false;

	if (no && !strcmp(no, "1"))
		return false;
	in = open(from, O_RDONLY | O_CLOEXEC);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in >= 0 && out >= 0)
		ok = ioctl(out, FICLONE, in) == 0;
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		if (!ok)
			unlink(to);
	}
	return ok;
}

uint64_t disk_copy_bytes(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int64_t b = -1;

	if (fd >= 0 && !fstat(fd, &st))
		b = file_data_bytes(fd, st.st_size);
	if (fd >= 0)
		close(fd);
	return b > 0 ? (uint64_t)b : 0;
}

int disk_copy(const char *from, const char *to, char *err, size_t n)
{
	return disk_copy_cb(from, to, NULL, NULL, err, n);
}

int disk_copy_cb(const char *from, const char *to, void (*progress)(void *, uint64_t), void *opaque,
		 char *err, size_t n)
{
	struct stat st;
	int in, out = -1, r = 0;

	if (disk_reflink(from, to)) {
		if (progress)
			progress(opaque, disk_copy_bytes(from));
		return 0;
	}
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		r = fail_msg(err, n, -errno, "cannot read '%s': %s", from, strerror(errno));
		goto out;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		r = fail_msg(err, n, -errno, "cannot create '%s': %s", to, strerror(errno));
		goto out;
	}
	if (ftruncate(out, st.st_size) < 0 ||
	    (r = file_copy_sparse_cb(in, out, st.st_size, progress, opaque)) || fsync(out) < 0) {
		r = r ? r : -errno;
		fail_msg(err, n, r, "cannot copy '%s' to '%s': %s", from, to, strerror(-r));
		unlink(to);
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}
