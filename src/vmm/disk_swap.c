/* A running VM's drive moved onto another image (see disk_swap.h). */
#include "vmm/disk_swap.h"
#include "core/log.h"
#include "core/util.h"
#include "virtio/blk.h"
#include "vmm/migrate.h"
#include "vmm/virtio_setup.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As long as a snapshot waits for a disk's requests (snapshot.c). */
#define SWAP_DRAIN_MS 10000

/* With the VM paused: the old image drained, flushed and closed, the new one opened. */
static int swap_paused(struct vm *vm, unsigned int i, char *path, enum disk_format format,
		       char *err, size_t n)
{
	struct virtio_blk *b = vm->blk[i];
	struct disk_config *c = &vm->cfg.disks[i];
	struct disk_open_args before = virtio_setup_disk_args(vm, c), now;
	/*
	 * Locked: a drive still unlocked is refused above, and a migrated-in VM's
	 * disks_unlocked may outlive its switch-over.
	 */
	before.no_lock = false;
	now = before;
	now.path = path;
	now.format = format;
	const char *why = "";
	int r;

	if ((r = virtio_blk_drain(b, SWAP_DRAIN_MS)))
		return fail_msg(err, n, -EINVAL, "'%s' did not finish its requests: %s", c->path,
				strerror(-r));
	/* A drive left with no image by an earlier swap has nothing to flush: it may recover. */
	if (!b->disk.readonly && b->disk.fd >= 0 && (r = disk_flush_now(&b->disk)))
		return fail_msg(err, n, -EINVAL, "cannot flush '%s' (the guest stays on it): %s",
				c->path, strerror(-r));
	uint64_t old_size = b->disk.size;
	bool flush_failed = b->disk.flush_failed;

	/*
	 * Closed first: the new image is often an overlay whose backing file is the old
	 * one, which it opens read-only under a shared lock that this process's own
	 * exclusive one would refuse.
	 */
	disk_close(&b->disk);
	r = disk_open(&b->disk, &now, &why);
	if (!r && b->disk.size == 0) {
		disk_close(&b->disk);
		r = -EINVAL;
		why = "is smaller than one 512-byte sector";
	}
	if (r) {
		char first[480]; /* why may point into the disk, which the reopening reuses */
		snprintf(first, sizeof(first), "'%s' %s: %s", path, why, strerror(-r));
		if (!disk_open(&b->disk, &before, &why)) {
			virtio_blk_disk_opened(b);
			return fail_msg(err, n, -EINVAL,
					"'path_on_host': %s; the guest stays on '%s'", first,
					c->path);
		}
		/* The guest's requests fail from now on (blk.c: a drive with no image). */
		fail_msg(err, n, -EINVAL,
			 "'path_on_host': %s; '%s' could not be opened again (%s): the drive "
			 "has no image",
			 first, c->path, why);
		log_error("disk %u: %s", i, err);
		pthread_mutex_lock(&b->dev.lock);
		virtio_dev_needs_reset(&b->dev, "its image could not be opened again");
		pthread_mutex_unlock(&b->dev.lock);
		return -EINVAL;
	}
	/* A flush that failed may have lost what the new image now builds on. */
	b->disk.flush_failed = flush_failed;
	virtio_blk_disk_opened(b);
	log_info("disk %u: '%s' -> '%s' (%s, %llu bytes)", i, c->path, path,
		 disk_format_name(b->disk.format), (unsigned long long)b->disk.size);
	/* The old string stays: the command line's configuration may still point at it. */
	c->path = path;
	c->format = format;
	c->swapped = true;
	if (b->disk.size != old_size)
		virtio_blk_set_size(b, b->disk.size);
	return 0;
}

int vm_disk_swap(struct vm *vm, unsigned int i, const char *path, enum disk_format format,
		 char *err, size_t n)
{
	struct virtio_blk *b = i < VMM_MAX_DISKS ? vm->blk[i] : NULL;
	char *p;
	int r;

	if (!b)
		return fail_msg(err, n, -EINVAL, "disk %u does not exist", i);
	struct disk_config *c = &vm->cfg.disks[i];
	/* A migration streams this image (or sized it) from start to end: not under it. */
	if (migrate_under_way() || atomic_load(&b->write_log))
		return fail_msg(err, n, -EINVAL,
				"a migration is under way: swap '%s' before or after it", c->path);
	if (b->disk.unlocked)
		return fail_msg(err, n, -EINVAL,
				"'%s' is not this VM's yet (the migration that brings it has not "
				"switched over)",
				c->path);
	if (!(p = strdup(path)))
		return fail_msg(err, n, -ENOMEM, "out of memory");
	bool was_paused = vm_is_paused(vm);
	if (!was_paused && (r = vm_pause(vm))) {
		free(p);
		return fail_msg(err, n, -EINVAL, "cannot pause the VM to swap its drive: %s",
				strerror(-r));
	}
	r = swap_paused(vm, i, p, format, err, n);
	if (!was_paused)
		vm_resume(vm);
	if (r)
		free(p);
	return r;
}
