/* virtio-blk: one request queue over a disk image (src/backend/disk.h). */
#ifndef TERN_VIRTIO_BLK_H
#define TERN_VIRTIO_BLK_H

#include <stdatomic.h>

#include "backend/disk.h"
#include "virtio/blk_req.h"
#include "virtio/device.h"

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_STATE_VERSION 1 /* section version of VMSTATE_TAG_VIRTIO_BLK */

struct vmstate_cursor;
struct vmstate_writer;

struct virtio_blk;

/* One request between virtq_pop and its completion. */
struct blk_inflight {
	struct disk_req dr;
	struct virtio_blk *blk;
	struct blk_parsed req;
	uint16_t head;
	uint32_t generation; /* device resets since: a stale completion touches nothing */
	struct blk_inflight *next_free;
};

/* Written under dev.lock; read_* and write_* count requests handed to the disk. */
struct virtio_blk_stats {
	unsigned long long read_bytes, write_bytes, read_ops, write_ops, flush_ops, discard_ops;
	unsigned long long errors; /* every request answered with a status other than OK */
	/*
	 * Requests that never reached the disk because the driver should not have sent
	 * them: malformed chains (the device then needs a reset), out of range, or asking
	 * for what was not offered (writes to a read-only disk, FLUSH without
	 * cache=writeback, unknown types).
	 */
	unsigned long long invalid_reqs;
};

struct virtio_blk {
	struct virtio_dev dev;
	struct virtio_dev_ops ops; /* per disk: features depend on the image and options */
	struct disk disk;
	bool writeback;
	char id[VIRTIO_BLK_ID_BYTES];
	uint32_t generation;
	struct blk_inflight slot[VIRTIO_BLK_QUEUE_SIZE];
	struct blk_inflight *free;
	unsigned int inflight; /* requests the disk engine owns */
	bool unsignalled;      /* chains returned that no interrupt told of yet */
	struct virtq_chain chain;
	struct virtio_blk_stats stats;
	/*
	 * A migration copying this disk (src/vmm/migrate_disk.c): one bit per
	 * VIRTIO_BLK_LOG_CHUNK of the image, set (atomically, on the loop thread) for every
	 * write, discard or write-zeroes that completed; NULL when nobody copies.
	 */
	uint8_t *_Atomic write_log;
};

#define VIRTIO_BLK_LOG_CHUNK (64 * 1024ULL)

/*
 * The disk must be open already. writeback: offer FLUSH (cache=writeback);
 * otherwise the image is open O_DSYNC and every write is durable on completion.
 */
void virtio_blk_init(struct virtio_blk *b, const struct guest_mem *mem, const char *name,
		     bool writeback, const char *id);

/*
 * ---- snapshot state ----
 *
 * A request handed to the disk engine lives in this process only (its slot, its iovecs
 * into guest memory, the engine's queue): a device is saved with none in flight. Pausing
 * the VM does not get there by itself, because the paused loop no longer runs disk
 * completions; virtio_blk_drain() runs them.
 */

/* Nothing is in the disk engine and no reset waits for it: the device can be saved. */
bool virtio_blk_quiesced(struct virtio_blk *b);
/*
 * b->disk was opened anew (disk_open() over the old one: a drive swapped, disk_swap.c):
 * its completions come back to this device again.
 */
void virtio_blk_disk_opened(struct virtio_blk *b);
/*
 * The disk is now size bytes (a multiple of 512): the capacity the device reports changes
 * at once and a running driver is told (a configuration change interrupt), as after QEMU's
 * block_resize. Requests are checked against the new size from the next one on.
 */
void virtio_blk_set_size(struct virtio_blk *b, uint64_t size);
/*
 * With the VM paused (vCPUs stopped, so no new request arrives), waits up to timeout_ms
 * until no request is in flight, reaping the disk engine's completions itself
 * (disk_poll(): call this on the loop thread, or while the loop is paused). Completions
 * do what they always do (status, used ring, interrupt; a completion's look at the ring
 * may start requests whose kick the paused loop held back, which are waited for too), so
 * save the vCPUs and interrupt controllers after draining. 0, -ETIMEDOUT, or -errno.
 * A VM that goes on in this process needs nothing more: the loop serves the kicks it held
 * back once resumed (virtio_dev_resume_kick() would do no harm either).
 */
int virtio_blk_drain(struct virtio_blk *b, int timeout_ms);
/*
 * VMSTATE_TAG_VIRTIO_BLK payload: u64 capacity in bytes, bool "a flush failed", the 20-byte
 * serial. Takes the lock. 0, or -EBUSY with requests in flight (drain first).
 */
int virtio_blk_save(struct virtio_blk *b, struct vmstate_writer *w);
/*
 * Loads a virtio_blk_save() payload into a device opened as at boot: the capacity the
 * guest knows must be the disk's (-EINVAL naming the device otherwise, nothing changed).
 * A failed flush stays failed: the host may have dropped the data it covered.
 */
int virtio_blk_restore(struct virtio_blk *b, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
