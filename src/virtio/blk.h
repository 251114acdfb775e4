/* virtio-blk: one request queue over a disk image (src/backend/disk.h). */
#ifndef TERN_VIRTIO_BLK_H
#define TERN_VIRTIO_BLK_H

#include "backend/disk.h"
#include "virtio/blk_req.h"
#include "virtio/device.h"

#define VIRTIO_BLK_QUEUE_SIZE 256

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
	struct virtq_chain chain;
	struct virtio_blk_stats stats;
};

/*
 * The disk must be open already. writeback: offer FLUSH (cache=writeback);
 * otherwise the image is open O_DSYNC and every write is durable on completion.
 */
void virtio_blk_init(struct virtio_blk *b, const struct guest_mem *mem, const char *name,
		     bool writeback, const char *id);

#endif
