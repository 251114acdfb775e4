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
/* Section version of VMSTATE_TAG_VIRTIO (transport, core and queues; see below). */
#define VIRTIO_STATE_VERSION 1

struct virtio_dev;
struct vmstate_cursor;
struct vmstate_writer;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	uint64_t features; /* offered to the driver; VERSION_1 is added by the core */
	/*
	 * Offered bits a snapshot from a tern that did not offer them yet may lack: its
	 * restore then withdraws them (the driver negotiated without), instead of refusing.
	 */
	uint64_t features_optional;
	unsigned int num_queues;
	uint16_t queue_max; /* largest queue size offered (power of two, <= VIRTQ_MAX_SIZE) */
	uint32_t config_size;
	/* Config space accesses, already bounds-checked against config_size. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len);
	/* The driver made buffers available on queue q. Called with d->lock held. */
	void (*notify)(struct virtio_dev *d, unsigned int q);
	/*
	 * DRIVER_OK was set: queues are live. Called with d->lock held. May be NULL. Also
	 * called again by virtio_dev_resume_kick() when a restored device first runs, so it
	 * must do no harm when repeated.
	 */
	void (*activate)(struct virtio_dev *d);
	/*
	 * Back to the initial state (driver wrote 0 to status). Called with d->lock held.
	 * Returns true when done, false when requests are still in flight: the device
	 * then calls virtio_dev_reset_done() once they have drained, and until then the
	 * status register does not read 0 (the driver waits for that, 2.4.1).
	 */
	bool (*reset)(struct virtio_dev *d);
	/*
	 * Just before the core state is saved, with d->lock held. May be NULL. Gives back
	 * chains the device popped but holds unused (the saved queue offers them to it again
	 * after a restore) and returns 0, or -EBUSY while requests are still in flight (they
	 * would be lost: the caller drains first).
	 */
	int (*quiesce)(struct virtio_dev *d);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv; /* the device's own state */
	const struct guest_mem *mem;
	pthread_mutex_t lock;
	uint8_t status;
	bool resetting; /* a reset waits for in-flight requests */
	uint64_t driver_features;
	uint64_t features_withdrawn; /* ops->features a restored snapshot did not offer */
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
/*
 * A kick that came on an eventfd (a KVM ioeventfd, either transport): consumes it and
 * notifies queue q, taking the device lock. Runs on the event loop.
 */
void virtio_dev_kick_fd(struct virtio_dev *d, int fd, unsigned int q);
/*
 * The device changed its configuration space (or status): a new config generation and a
 * configuration-change interrupt on whichever transport carries the device. Lock held.
 */
void virtio_dev_config_changed(struct virtio_dev *d);
/* Marks the device NEEDS_RESET (malformed guest input) and tells the driver. Lock held. */
void virtio_dev_needs_reset(struct virtio_dev *d, const char *why);
/* Returns a chain to the driver and interrupts it if it asked to be. Lock held. */
void virtio_dev_complete(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len);
/*
 * The two halves of virtio_dev_complete, for a device that returns several chains and
 * interrupts once: virtio_dev_push puts the chain on the used ring without moving used->idx
 * (false, and the device needs a reset, when it cannot); virtio_dev_signal_used then hands
 * every chain pushed over at once and interrupts if the driver asked to be told. Both in
 * one hold of the lock, so a driver that sees the index move finds the interrupt status
 * set when it reads it (it takes the lock too). Lock held.
 */
bool virtio_dev_push(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len);
void virtio_dev_signal_used(struct virtio_dev *d, unsigned int q);
bool virtio_dev_live(const struct virtio_dev *d);
/* What the status register reads: never 0 while a reset is still draining. */
uint8_t virtio_dev_status(const struct virtio_dev *d);
/* The device finished a pending reset. Lock held. */
void virtio_dev_reset_done(struct virtio_dev *d);

/*
 * ---- snapshot state ----
 *
 * A device's state is two sections. VMSTATE_TAG_VIRTIO (instance = the device's index
 * among the VM's virtio devices, version VIRTIO_STATE_VERSION) holds what every virtio
 * device has: the transport's registers and, inside them, the core below (features,
 * status, queues); the transports write it (virtio_pci_save(), virtio_mmio_save()).
 * The device's own tag (VMSTATE_TAG_VIRTIO_BLK/NET/VSOCK/RNG, instance = index among
 * devices of that kind) holds what only that kind has (virtio_blk_save() ...). Either may
 * be restored first; virtio_dev_resume_kick() then starts the device.
 *
 * The core part, in order: u8 transport (VIRTIO_TRANSPORT_*), u32 device ID, u64
 * features offered, u64 driver features, u8 status, u32 config generation, u32 queue
 * count, then each queue (virtq_save()); the transport's own registers follow it.
 */
#define VIRTIO_TRANSPORT_PCI 1
#define VIRTIO_TRANSPORT_MMIO 2

struct virtio_dev_state {
	uint8_t status;
	uint64_t driver_features;
	uint64_t withdrawn; /* optional features the snapshot's device did not offer */
	uint32_t config_generation;
	struct virtq q[VIRTIO_MAX_QUEUES];
};

/*
 * Writes the core part. Lock held. 0, or -EBUSY (nothing written) while a reset or
 * requests are still in flight (ops->quiesce).
 */
int virtio_dev_save_state(struct virtio_dev *d, uint8_t transport, struct vmstate_writer *w);
/*
 * Parses a core part into s and checks it against d as the guest's writes are checked:
 * the same transport, device type and offered features (a snapshot of a device configured
 * or backed otherwise is refused; one that lacks only ops->features_optional is taken,
 * and commit withdraws those), driver features among those offered, a sane status
 * (defined bits only; DRIVER_OK only with FEATURES_OK, that only with VERSION_1), the
 * queue count, and each ready queue's size and rings. Changes nothing in d. Lock held.
 * 0, or -EINVAL with err naming the device and the field.
 */
int virtio_dev_load_state(const struct virtio_dev *d, uint8_t transport, struct vmstate_cursor *c,
			  struct virtio_dev_state *s, char *err, size_t errlen);
/* Makes a checked state d's. Lock held. */
void virtio_dev_commit_state(struct virtio_dev *d, const struct virtio_dev_state *s);
/*
 * Starts a restored device when the VM first runs (call it for every virtio device, just
 * before or after vm_resume()). Kicks that reached the old process are not replayed: so a
 * live device is activated again (virtio-net re-applies the negotiated offloads to its
 * backend, virtio-vsock announces the transport reset) and each ready queue is served
 * once, as if the driver had kicked it. Harmless on a device that just went on in its own
 * process (after a drain and save, say), which does not need it: its held kicks are served
 * when the loop resumes. Takes the lock; a device that is not live is left alone.
 */
void virtio_dev_resume_kick(struct virtio_dev *d);
/* Formats "<device name>: <message>" into err; returns -EINVAL (for restore refusals). */
int virtio_state_refuse(const struct virtio_dev *d, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
