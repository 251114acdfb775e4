/*
 * A virtio device independent of its transport (MMIO or PCI): feature negotiation,
 * device status, queues, and the NEEDS_RESET path. A device supplies a
 * struct virtio_dev_ops; a transport supplies the two interrupt hooks and maps its
 * registers onto the virtio_dev_* calls below.
 */
#ifndef TERN_VIRTIO_DEVICE_H
#define TERN_VIRTIO_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/guest_mem.h"
#include "virtio/queue.h"

#define VIRTIO_MAX_QUEUES 8

struct virtio_dev;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	uint64_t features; /* offered to the driver; VERSION_1 is added by the core */
	unsigned int num_queues;
	uint16_t queue_max; /* largest queue size offered (power of two, <= VIRTQ_MAX_SIZE) */
	uint32_t config_size;
	/* Config space accesses, already bounds-checked against config_size. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len);
	/* The driver made buffers available on queue q. Called with d->lock held. */
	void (*notify)(struct virtio_dev *d, unsigned int q);
	/* DRIVER_OK was set: queues are live. Called with d->lock held. May be NULL. */
	void (*activate)(struct virtio_dev *d);
	/*
	 * Back to the initial state (driver wrote 0 to status). Called with d->lock held.
	 * Returns true when done, false when requests are still in flight: the device
	 * then calls virtio_dev_reset_done() once they have drained, and until then the
	 * status register does not read 0 (the driver waits for that, 2.4.1).
	 */
	bool (*reset)(struct virtio_dev *d);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv; /* the device's own state */
	const struct guest_mem *mem;
	pthread_mutex_t lock;
	uint8_t status;
	bool resetting; /* a reset waits for in-flight requests */
	uint64_t driver_features;
	uint32_t config_generation;
	struct virtq q[VIRTIO_MAX_QUEUES];
	/* Transport hooks: raise the interrupt for queue q / for a config change. */
	void (*signal_queue)(struct virtio_dev *d, unsigned int q);
	void (*signal_config)(struct virtio_dev *d);
	void *transport;
};

void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, void *priv,
		     const struct guest_mem *mem);
uint64_t virtio_dev_features(const struct virtio_dev *d);
bool virtio_dev_has(const struct virtio_dev *d, unsigned int feature_bit);
/* Status register write: handles reset (0), FEATURES_OK checking, DRIVER_OK. */
void virtio_dev_set_status(struct virtio_dev *d, uint8_t status);
/* Enables queue q after the driver programmed it; false (queue left off) when invalid. */
bool virtio_dev_enable_queue(struct virtio_dev *d, unsigned int q);
/* The driver kicked queue q: forwards to ops->notify unless the device is broken or not live. */
void virtio_dev_notify(struct virtio_dev *d, unsigned int q);
/* Marks the device NEEDS_RESET (malformed guest input) and tells the driver. Lock held. */
void virtio_dev_needs_reset(struct virtio_dev *d, const char *why);
/* Returns a chain to the driver and interrupts it if it asked to be. Lock held. */
void virtio_dev_complete(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len);
bool virtio_dev_live(const struct virtio_dev *d);
/* What the status register reads: never 0 while a reset is still draining. */
uint8_t virtio_dev_status(const struct virtio_dev *d);
/* The device finished a pending reset. Lock held. */
void virtio_dev_reset_done(struct virtio_dev *d);

#endif
