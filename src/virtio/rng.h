/* virtio-rng (entropy device): one queue the driver fills with buffers to be written with random bytes. */
#ifndef TERN_VIRTIO_RNG_H
#define TERN_VIRTIO_RNG_H

#include "virtio/device.h"

struct vmstate_cursor;
struct vmstate_writer;

/* Bytes tern writes per request at most: a guest offering more gets a short answer. */
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

struct virtio_rng {
	struct virtio_dev dev;
	struct virtq_chain chain;
	unsigned long long bytes, requests;
};

void virtio_rng_init(struct virtio_rng *r, const struct guest_mem *mem);

/*
 * Snapshot state, VMSTATE_TAG_VIRTIO_RNG: an empty payload, all the device has being in
 * the core's section. The pair exists so every kind of device is saved the same way, and
 * so a later version has a place for fields of its own.
 */
#define VIRTIO_RNG_STATE_VERSION 1
int virtio_rng_save(struct virtio_rng *r, struct vmstate_writer *w);
/* -EINVAL (naming the device) for a payload that is not empty. */
int virtio_rng_restore(struct virtio_rng *r, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
