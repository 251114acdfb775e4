/*
 * copy_storage: a migration that streams the VM's writable disks too (QEMU's drive-mirror
 * role), for disks the destination cannot reach. The source sends every allocated extent
 * once, then, round by round with RAM, the 64 KiB chunks the guest wrote meanwhile
 * (virtio-blk's write log); the rest goes at the switchover, after the disks are drained
 * and flushed. The destination writes into a new image of its own: a raw one, whatever the
 * source's format (a qcow2 image goes as the guest sees it, its backing chain flattened,
 * as libvirt's --copy-storage-all copies the whole disk).
 */
#ifndef TERN_VMM_MIGRATE_DISK_H
#define TERN_VMM_MIGRATE_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"
#include "vmstate/migration.h"

struct vm;

struct disk_copy_src {
	unsigned int n;
	struct {
		unsigned int index; /* in the VM's disk list */
		struct disk *disk;  /* the VM's, read as its guest reads it (qcow2: its chain) */
		uint64_t size, chunks;
		uint8_t *pending; /* chunks to send */
		bool all;	  /* not sent once yet: every extent goes */
	} d[VMM_MAX_DISKS];
};

/*
 * Starts logging writes on each writable disk (raw or qcow2; a tern overlay is refused)
 * and writes the DISKS section.
 */
int disk_copy_src_start(struct disk_copy_src *s, struct vm *vm, struct vmstate_writer *w, char *err,
			size_t errlen);
/* Moves what the guest wrote since the last call into the pending chunks. */
void disk_copy_src_collect(struct disk_copy_src *s, struct vm *vm);
/* Bytes still to send (whole disks not yet sent count whole). */
uint64_t disk_copy_src_pending(const struct disk_copy_src *s);
/* Sends what is pending; stops early when *cancel is set. 0 or -errno. */
int disk_copy_src_send(struct disk_copy_src *s, struct vmstate_writer *w,
		       const _Atomic bool *cancel);
/* Stops logging (the log stays allocated: the loop thread may be writing into it). */
void disk_copy_src_stop(struct disk_copy_src *s, struct vm *vm);

struct disk_copy_dst {
	unsigned int n;
	struct mig_disk_target t[MIG_MAX_DISKS]; /* by disk index; fd -1: not copied */
	bool created[MIG_MAX_DISKS];
	uint64_t bytes;
};

/*
 * Reads the DISKS section and creates each copied disk's image at its path in cfg (which
 * must not exist: a destination never writes over an image it did not make), a raw one,
 * which cfg's disk then opens as (format=raw, never probed). 0 or -errno + err (what it
 * created so far is removed).
 */
int disk_copy_dst_prepare(struct disk_copy_dst *d, const struct vmstate_section *s,
			  struct vmm_config *cfg, char *err, size_t errlen);
/* Makes the copies durable. 0 or -errno + err. */
int disk_copy_dst_finish(struct disk_copy_dst *d, char *err, size_t errlen);
/* A failed migration: the images it created are removed. */
void disk_copy_dst_abort(struct disk_copy_dst *d, const struct vmm_config *cfg);

#endif
