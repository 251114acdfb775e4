/* New identities for clones restored from one snapshot (clone.h). */
#include "vmm/clone.h"
#include "core/log.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies the data extents of in to out (holes stay holes). 0 or -errno. */
static int sparse_copy(int in, int out, off_t size)
{
	off_t pos = 0;

	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		loff_t src = data, dst = data;
		while (src < hole) {
			ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(hole - src), 0);
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO;
		}
		pos = hole;
	}
	return 0;
}

static int clone_disk(struct disk_config *d, char *err, size_t n)
{
	char path[4096];
	struct stat st;
	int in = -1, out = -1, r = 0;

	if (snprintf(path, sizeof(path), "%s.clone-%d", d->path, (int)getpid()) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	in = open(d->path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		r = -errno;
		snprintf(err, n, "clone: cannot read disk '%s': %s", d->path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, n, "clone: disk '%s' is not a regular file; a clone cannot copy it",
			 d->path);
		goto out;
	}
	out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		snprintf(err, n, "clone: cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	/* A reflink shares every block until one side writes it: the cheapest overlay. */
	if (ioctl(out, FICLONE, in) < 0) {
		if (ftruncate(out, st.st_size) < 0 || (r = sparse_copy(in, out, st.st_size))) {
			r = r ? r : -errno;
			snprintf(err, n, "clone: cannot copy '%s': %s", d->path, strerror(-r));
			unlink(path);
			goto out;
		}
		log_info("clone: %s copied to %s (no reflink here: a sparse copy)", d->path, path);
	} else {
		log_info("clone: %s reflinked to %s", d->path, path);
	}
	char *p = strdup(path);
	if (!p) {
		r = -ENOMEM;
		snprintf(err, n, "out of memory");
		unlink(path);
		goto out;
	}
	free(d->path);
	d->path = p;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

int clone_identity(struct vmm_config *c, bool keep_vsock_path, char *err, size_t n)
{
	int r;

	for (unsigned int i = 0; i < c->nnets; i++)
		net_mac_random(c->nets[i].mac);
	if (c->vsock.enabled) {
		uint32_t v;
		if (getrandom(&v, sizeof(v), 0) != sizeof(v))
			return -EIO;
		c->vsock.cid = VSOCK_CID_MIN + v % (VSOCK_CID_MAX - VSOCK_CID_MIN + 1);
		if (!keep_vsock_path) {
			size_t len = strlen(c->vsock.path);
			int w = snprintf(c->vsock.path + len, sizeof(c->vsock.path) - len, ".%d",
					 (int)getpid());
			if (w < 0 || (size_t)w >= sizeof(c->vsock.path) - len) {
				snprintf(err, n,
					 "clone: the vsock socket path is too long to extend");
				return -ENAMETOOLONG;
			}
		}
	}
	for (unsigned int i = 0; i < c->ndisks; i++)
		if (!c->disks[i].readonly && (r = clone_disk(&c->disks[i], err, n)))
			return r;
	return 0;
}
