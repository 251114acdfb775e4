/* New identities for clones restored from one snapshot (clone.h). */
#include "vmm/clone.h"
#include "backend/disk_copy.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is path held for writing by another process (the VM the snapshot was taken of)? */
static int refuse_if_written(const struct disk_config *d, bool is_raw, char *err, size_t n)
{
	int r = disk_lock_holder(d->path, true);

	if (r < 0)
		return fail_msg(err, n, r, "clone: cannot read disk '%s': %s", d->path,
				strerror(-r));
	if (r > 0)
		return fail_msg(err, n, -EBUSY,
				"clone: disk '%s' is in use by another process (the VM the "
				"snapshot was taken of?). Without reflinks a clone's disk %s it, "
				"which needs it unchanged: stop that VM first",
				d->path,
				is_raw ? "is a qcow2 overlay in front of" : "is a copy of");
	return 0;
}

static int clone_disk(struct disk_config *d, char *err, size_t n)
{
	char path[4096];
	int r;

	if (snprintf(path, sizeof(path), "%s.clone-%d", d->path, (int)getpid()) >=
	    (int)sizeof(path))
		return fail_msg(err, n, -ENAMETOOLONG, "clone: disk path '%s' is too long",
				d->path);
	enum disk_format f;
	if ((r = disk_format_resolve(d->path, d->format, &f)))
		return fail_msg(err, n, r, "clone: cannot read disk '%s': %s", d->path,
				strerror(-r));
	if (disk_reflink(d->path, path)) {
		log_info("clone: %s reflinked to %s", d->path, path);
	} else if ((r = refuse_if_written(d, f == DISK_FORMAT_RAW, err, n))) {
		return r;
	} else if (f != DISK_FORMAT_RAW) {
		/*
		 * A qcow2 image or an overlay holds only what its VM wrote: the copy has that
		 * (holes stay), beside it, so a relative backing file name still resolves.
		 */
		if ((r = disk_copy(d->path, path, err, n)))
			return r;
		log_info("clone: %s %s copied to %s (no reflink here)", disk_format_name(f),
			 d->path, path);
	} else {
		struct qcow2_create_args qa = { .path = path,
						.backing = d->path,
						.backing_format = "raw" };
		if ((r = qcow2_create(&qa, err, n)))
			return r;
		log_info("clone: %s is a qcow2 overlay in front of %s (no reflink here)", path,
			 d->path);
		d->format = DISK_FORMAT_QCOW2;
		if (d->engine == DISK_ENGINE_IO_URING) {
			log_info("clone: %s runs on the threads engine (qcow2 needs it)", path);
			d->engine = DISK_ENGINE_THREADS;
		}
	}
	char *p = strdup(path);
	if (!p) {
		unlink(path);
		return fail_msg(err, n, -ENOMEM, "out of memory");
	}
	free(d->path);
	d->path = p;
	return 0;
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
