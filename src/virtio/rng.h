/* virtio-rng (entropy device): one queue the driver fills with buffers to be written with random bytes. */
#ifndef TERN_VIRTIO_RNG_H
#define TERN_VIRTIO_RNG_H

#include "virtio/device.h"

/* Bytes tern writes per request at most: a guest offering more gets a short answer. */
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

struct virtio_rng {
	struct virtio_dev dev;
	struct virtq_chain chain;
	unsigned long long bytes, requests;
};

void virtio_rng_init(struct virtio_rng *r, const struct guest_mem *mem);

#endif
