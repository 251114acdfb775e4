/* A running VM's disk grown (see disk_resize.h). */
#include "vmm/disk_resize.h"
#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"
#include "virtio/blk.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* The size of the open raw image in bytes, as disk_open() measures it. 0 or -errno. */
static int image_size(const struct disk *d, uint64_t *size)
{
	bool block;

	return disk_fd_size(d->fd, &block, size);
}

/* Makes the image size bytes (size > d->size); 0 or -EINVAL with err. */
static int grow_image(struct disk *d, uint64_t size, char *err, size_t n)
{
	uint64_t have;
	int r;

	if (d->qcow)
		return qcow2_resize(d->qcow, size, err, n) ? -EINVAL : 0;
	if (d->block_device)
		return fail_msg(err, n, -EINVAL,
				"'%s' is a block device: grow it with its own tools (lvextend), "
				"then PATCH without 'tern_size'",
				d->path);
	if ((r = image_size(d, &have)))
		return fail_msg(err, n, -EINVAL, "cannot read the size of '%s': %s", d->path,
				strerror(-r));
	/* A file already longer (grown on the host) keeps what lies past size. */
	if (have < size && ftruncate(d->fd, (off_t)size) < 0)
		return fail_msg(err, n, -EINVAL, "cannot grow '%s' to %llu bytes: %s", d->path,
				(unsigned long long)size, strerror(errno));
	return 0;
}

int vm_disk_grow(struct vm *vm, unsigned int i, uint64_t size, char *err, size_t n)
{
	struct virtio_blk *b = i < VMM_MAX_DISKS ? vm->blk[i] : NULL;
	int r;

	if (!b)
		return fail_msg(err, n, -EINVAL, "disk %u does not exist", i);
	struct disk *d = &b->disk;
	/*
	 * A migration measured the disk when it started (and a storage copy logs writes in a
	 * bitmap of that size): the size stays until it is over. Both are set and cleared on
	 * this thread's side of PUT /migrate, so no resize slips in between.
	 */
	if (migrate_under_way() || atomic_load(&b->write_log))
		return fail_msg(err, n, -EINVAL,
				"a migration is under way: resize '%s' before or after it",
				d->path);
	if (d->ovl)
		return fail_msg(err, n, -EINVAL,
				"'%s' is a tern overlay: it keeps the size of its base (tern img "
				"convert --format qcow2 makes an image that grows)",
				d->path);
	if (size % 512 || size > VM_DISK_SIZE_MAX)
		return fail_msg(err, n, -EINVAL,
				"'tern_size': %llu is not a multiple of 512 bytes up to %llu",
				(unsigned long long)size, VM_DISK_SIZE_MAX);
	if (size && d->readonly)
		return fail_msg(err, n, -EINVAL, "'%s' is read-only: tern does not grow it",
				d->path);
	if (!size && d->qcow)
		return fail_msg(err, n, -EINVAL,
				"'%s' is a qcow2 image: its size is in its header; give "
				"'tern_size' (bytes) and tern grows it",
				d->path);
	if (!size) {
		if ((r = image_size(d, &size)))
			return fail_msg(err, n, -EINVAL, "cannot read the size of '%s': %s",
					d->path, strerror(-r));
		size &= ~511ULL;
	}
	if (size < d->size)
		return fail_msg(err, n, -EINVAL,
				"'%s': %llu bytes is less than the %llu the guest has: a disk in "
				"use cannot shrink (the guest's data past the end would be gone)",
				d->path, (unsigned long long)size, (unsigned long long)d->size);
	if (size == d->size) {
		log_info("disk '%s': still %llu bytes; nothing to tell the guest", d->path,
			 (unsigned long long)size);
		return 0;
	}
	if ((r = grow_image(d, size, err, n)))
		return r;
	log_info("disk '%s': %llu -> %llu bytes; the guest is told", d->path,
		 (unsigned long long)d->size, (unsigned long long)size);
	virtio_blk_set_size(b, size);
	return 0;
}
