/* A running VM's disk that grew on the host (see disk_resize.h). */
#include "vmm/disk_resize.h"
#include "backend/disk.h"
#include "core/log.h"
#include "core/util.h"
#include "virtio/blk.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* The size of the open image in bytes, as disk_open() measures it. 0 or -errno. */
static int image_size(const struct disk *d, uint64_t *size)
{
	struct stat st;

	if (d->block_device)
		return ioctl(d->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (fstat(d->fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

int vm_disk_rescan(struct vm *vm, unsigned int i, char *err, size_t n)
{
	struct virtio_blk *b = i < VMM_MAX_DISKS ? vm->blk[i] : NULL;
	uint64_t size;
	int r;

	if (!b)
		return fail_msg(err, n, -EINVAL, "disk %u does not exist", i);
	struct disk *d = &b->disk;
	if (d->qcow || d->ovl)
		return fail_msg(err, n, -EINVAL,
				"'%s' is a %s image: its size is in its header, which `tern img "
				"resize` changes while no VM uses it",
				d->path, disk_format_name(d->format));
	/*
	 * A migration measured the disk when it started (and a storage copy logs writes in a
	 * bitmap of that size): the size stays until it is over. Both are set and cleared on
	 * this thread's side of PUT /migrate, so no resize slips in between.
	 */
	if (migrate_under_way() || atomic_load(&b->write_log))
		return fail_msg(err, n, -EINVAL,
				"a migration is under way: resize '%s' before or after it",
				d->path);
	if ((r = image_size(d, &size)))
		return fail_msg(err, n, -EINVAL, "cannot read the size of '%s': %s", d->path,
				strerror(-r));
	size &= ~511ULL;
	if (size < d->size)
		return fail_msg(err, n, -EINVAL,
				"'%s' is now %llu bytes, less than the %llu the guest has: a disk "
				"in use cannot shrink (the guest's data past the end would be "
				"gone)",
				d->path, (unsigned long long)size, (unsigned long long)d->size);
	if (size == d->size) {
		log_info("disk '%s': still %llu bytes; nothing to tell the guest", d->path,
			 (unsigned long long)size);
		return 0;
	}
	log_info("disk '%s': %llu -> %llu bytes; the guest is told", d->path,
		 (unsigned long long)d->size, (unsigned long long)size);
	virtio_blk_set_size(b, size);
	return 0;
}
