/* Transport-independent virtio device logic: status, features, queues, NEEDS_RESET. */
#include "virtio/device.h"
#include "core/log.h"
#include "virtio/virtio.h"

#include <string.h>

void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, void *priv,
		     const struct guest_mem *mem)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->mem = mem;
	pthread_mutex_init(&d->lock, NULL);
}

uint64_t virtio_dev_features(const struct virtio_dev *d)
{
	return d->ops->features | (1ULL << VIRTIO_F_VERSION_1);
}

bool virtio_dev_has(const struct virtio_dev *d, unsigned int feature_bit)
{
	return (d->driver_features >> feature_bit) & 1;
}

bool virtio_dev_live(const struct virtio_dev *d)
{
	return !d->resetting && (d->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(d->status & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

uint8_t virtio_dev_status(const struct virtio_dev *d)
{
	/* The pre-reset value stays visible until the reset completes. */
	return d->status;
}

void virtio_dev_reset_done(struct virtio_dev *d)
{
	d->resetting = false;
	d->status = 0;
}

static void reset(struct virtio_dev *d)
{
	d->driver_features = 0;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&d->q[i]);
	d->resetting = true;
	if (!d->ops->reset || d->ops->reset(d))
		virtio_dev_reset_done(d);
}

void virtio_dev_set_status(struct virtio_dev *d, uint8_t status)
{
	if (status == 0) {
		if (!d->resetting)
			reset(d);
		return;
	}
	/* The driver must wait for a reset to finish; writes before that are ignored. */
	if (d->resetting)
		return;
	/* DRIVER_OK without accepted features would run with unchecked features. */
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK) &&
	    !(d->status & VIRTIO_STATUS_DRIVER_OK)) {
		log_warn("%s: driver set DRIVER_OK without FEATURES_OK; ignored", d->ops->name);
		status &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	}
	/* FEATURES_OK sticks only for a subset of what was offered that includes VERSION_1. */
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t extra = d->driver_features & ~virtio_dev_features(d);
		if (extra || !virtio_dev_has(d, VIRTIO_F_VERSION_1)) {
			log_warn("%s: driver accepted features 0x%llx that were not offered or "
				 "lacks VERSION_1",
				 d->ops->name, (unsigned long long)d->driver_features);
			status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		}
	}
	bool was_live = d->status & VIRTIO_STATUS_DRIVER_OK;
	/* The driver cannot clear NEEDS_RESET; only a reset does. */
	d->status = status | (d->status & VIRTIO_STATUS_NEEDS_RESET);
	if (!was_live && (status & VIRTIO_STATUS_DRIVER_OK)) {
		for (unsigned int i = 0; i < d->ops->num_queues; i++) {
			d->q[i].event_idx = virtio_dev_has(d, VIRTIO_RING_F_EVENT_IDX);
			d->q[i].indirect = virtio_dev_has(d, VIRTIO_RING_F_INDIRECT_DESC);
		}
		if (d->ops->activate)
			d->ops->activate(d);
	}
}

bool virtio_dev_enable_queue(struct virtio_dev *d, unsigned int q)
{
	if (q >= d->ops->num_queues)
		return false;
	struct virtq *vq = &d->q[q];
	vq->event_idx = virtio_dev_has(d, VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = virtio_dev_has(d, VIRTIO_RING_F_INDIRECT_DESC);
	if (vq->size > d->ops->queue_max || virtq_validate(vq, d->mem)) {
		virtio_dev_needs_reset(d, "queue enabled with an invalid size or ring address");
		return false;
	}
	vq->ready = true;
	return true;
}

void virtio_dev_notify(struct virtio_dev *d, unsigned int q)
{
	if (q >= d->ops->num_queues || !virtio_dev_live(d) || !d->q[q].ready)
		return;
	d->ops->notify(d, q);
}

void virtio_dev_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("%s: %s; device needs reset", d->ops->name, why);
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	d->config_generation++;
	if (d->signal_config)
		d->signal_config(d);
}

void virtio_dev_complete(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len)
{
	struct virtq *vq = &d->q[q];

	if (virtq_push(vq, d->mem, head, len)) {
		virtio_dev_needs_reset(d, "used ring write failed");
		return;
	}
	if (virtq_should_signal(vq, d->mem) && d->signal_queue)
		d->signal_queue(d, q);
}
