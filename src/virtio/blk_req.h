/*
 * Parsing one virtio-blk request from a descriptor chain (virtio 1.x, 5.2.6). Pure,
 * so it can be fuzzed: it reads the header and slices the chain into the data and
 * status parts, checking every length, sector range and segment count.
 */
#ifndef TERN_VIRTIO_BLK_REQ_H
#define TERN_VIRTIO_BLK_REQ_H

#include <stdint.h>
#include <sys/uio.h>

#include "virtio/queue.h"

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SEG_MAX 126 /* data segments per request we advertise (seg_max) */
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR 512

struct blk_parsed {
	uint32_t type;
	uint64_t sector;
	struct iovec data[VIRTIO_BLK_SEG_MAX];
	int ndata;
	uint64_t data_len;
	uint8_t *status; /* the request's status byte in guest memory */
	/* DISCARD / WRITE_ZEROES: the one range of the request */
	uint64_t range_sector;
	uint32_t range_sectors;
};

/*
 * Returns -EBADMSG when the chain cannot even carry a status (no header or no
 * writable byte): the device must then need a reset. Otherwise returns a
 * VIRTIO_BLK_S_* status: S_OK means p describes a request that is in range for a
 * disk of capacity_bytes and whose data fits the advertised limits.
 */
int blk_parse(const struct virtq_chain *c, uint64_t capacity_bytes, struct blk_parsed *p);

#endif
