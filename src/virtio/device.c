/* Transport-independent virtio device logic: status, features, queues, NEEDS_RESET. */
#include "virtio/device.h"
#include "core/log.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	return (d->ops->features & ~d->features_withdrawn) | (1ULL << VIRTIO_F_VERSION_1);
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

void virtio_dev_kick_fd(struct virtio_dev *d, int fd, unsigned int q)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&d->lock);
	virtio_dev_notify(d, q);
	pthread_mutex_unlock(&d->lock);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	/* A driver reading several fields retries when the generation moved (2.5). */
	d->config_generation++;
	if (d->signal_config)
		d->signal_config(d);
}

void virtio_dev_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("%s: %s; device needs reset", d->ops->name, why);
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	virtio_dev_config_changed(d);
}

bool virtio_dev_push(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len)
{
	if (virtq_push_unpublished(&d->q[q], d->mem, head, len)) {
		virtio_dev_needs_reset(d, "used ring write failed");
		return false;
	}
	return true;
}

void virtio_dev_signal_used(struct virtio_dev *d, unsigned int q)
{
	if (virtq_publish_used(&d->q[q], d->mem)) {
		virtio_dev_needs_reset(d, "used ring write failed");
		return;
	}
	if (virtq_should_signal(&d->q[q], d->mem) && d->signal_queue)
		d->signal_queue(d, q);
}

void virtio_dev_complete(struct virtio_dev *d, unsigned int q, uint16_t head, uint32_t len)
{
	if (virtio_dev_push(d, q, head, len))
		virtio_dev_signal_used(d, q);
}

/* ---- snapshot state ---- */

#define STATUS_KNOWN                                                                  \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

int virtio_state_refuse(const struct virtio_dev *d, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", d->ops->name);

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int virtio_dev_save_state(struct virtio_dev *d, uint8_t transport, struct vmstate_writer *w)
{
	int r;

	/* A reset waiting for requests would finish in the old process only. */
	if (d->resetting)
		return -EBUSY;
	if (d->ops->quiesce && (r = d->ops->quiesce(d)))
		return r;
	vmstate_put_u8(w, transport);
	vmstate_put_u32(w, d->ops->device_id);
	vmstate_put_u64(w, virtio_dev_features(d));
	vmstate_put_u64(w, d->driver_features);
	vmstate_put_u8(w, d->status);
	vmstate_put_u32(w, d->config_generation);
	vmstate_put_u32(w, d->ops->num_queues);
	for (unsigned int i = 0; i < d->ops->num_queues; i++)
		virtq_save(&d->q[i], w);
	return 0;
}

static const char *transport_name(uint8_t transport)
{
	return transport == VIRTIO_TRANSPORT_PCI  ? "virtio-pci" :
	       transport == VIRTIO_TRANSPORT_MMIO ? "virtio-mmio" :
						    "an unknown transport";
}

int virtio_dev_load_state(const struct virtio_dev *d, uint8_t transport, struct vmstate_cursor *c,
			  struct virtio_dev_state *s, char *err, size_t errlen)
{
	uint64_t offered = virtio_dev_features(d), saved_offered;
	uint32_t device_id, nq;
	uint8_t saved_transport;

	memset(s, 0, sizeof(*s));
	saved_transport = vmstate_get_u8(c);
	device_id = vmstate_get_u32(c);
	saved_offered = vmstate_get_u64(c);
	s->driver_features = vmstate_get_u64(c);
	s->status = vmstate_get_u8(c);
	s->config_generation = vmstate_get_u32(c);
	nq = vmstate_get_u32(c);
	if (c->error)
		return virtio_state_refuse(d, err, errlen, "device state truncated");
	if (saved_transport != transport)
		return virtio_state_refuse(
			d, err, errlen, "the snapshot has this device on %s, this VM on %s",
			transport_name(saved_transport), transport_name(transport));
	if (device_id != d->ops->device_id)
		return virtio_state_refuse(d, err, errlen,
					   "the snapshot has a virtio device of type %u here, "
					   "this VM one of type %u",
					   device_id, d->ops->device_id);
	/*
	 * The driver read the offered features once, at probe: a device that now offers
	 * others (another image, backend or host) is not the one it negotiated with.
	 */
	uint64_t missing = offered & ~saved_offered;
	if (!(saved_offered & ~offered) && !(missing & ~d->ops->features_optional)) {
		s->withdrawn = missing;
		offered = saved_offered;
	}
	if (saved_offered != offered)
		return virtio_state_refuse(d, err, errlen,
					   "features: the snapshot's device offered 0x%llx, this "
					   "one offers 0x%llx (configured or backed differently)",
					   (unsigned long long)saved_offered,
					   (unsigned long long)offered);
	if (s->driver_features & ~offered)
		return virtio_state_refuse(d, err, errlen,
					   "driver features 0x%llx include 0x%llx, which were not "
					   "offered",
					   (unsigned long long)s->driver_features,
					   (unsigned long long)(s->driver_features & ~offered));
	if (s->status & ~STATUS_KNOWN)
		return virtio_state_refuse(d, err, errlen, "status 0x%02x has undefined bits",
					   s->status);
	/* What virtio_dev_set_status() lets through: DRIVER_OK only after checked features. */
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK))
		return virtio_state_refuse(
			d, err, errlen, "status 0x%02x: DRIVER_OK without FEATURES_OK", s->status);
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) &&
	    !(s->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
		return virtio_state_refuse(
			d, err, errlen, "status 0x%02x: FEATURES_OK without VERSION_1", s->status);
	if (nq != d->ops->num_queues)
		return virtio_state_refuse(d, err, errlen, "%u queues in the snapshot, %u here", nq,
					   d->ops->num_queues);
	for (unsigned int i = 0; i < nq; i++)
		virtq_load(&s->q[i], c);
	if (c->error)
		return virtio_state_refuse(d, err, errlen, "queue state truncated or malformed");
	for (unsigned int i = 0; i < nq; i++) {
		const char *why;
		if (virtq_check_loaded(&s->q[i], d->ops->queue_max, d->mem, &why))
			return virtio_state_refuse(d, err, errlen, "queue %u: %s", i, why);
	}
	return 0;
}

void virtio_dev_commit_state(struct virtio_dev *d, const struct virtio_dev_state *s)
{
	d->status = s->status;
	d->resetting = false;
	d->driver_features = s->driver_features;
	d->features_withdrawn |= s->withdrawn;
	d->config_generation = s->config_generation;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		d->q[i] = i < d->ops->num_queues ? s->q[i] : (struct virtq){ 0 };
}

void virtio_dev_resume_kick(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	if (virtio_dev_live(d)) {
		if (d->ops->activate)
			d->ops->activate(d);
		/* virtio_dev_notify() looks again: activating may have broken the device. */
		for (unsigned int i = 0; i < d->ops->num_queues; i++)
			virtio_dev_notify(d, i);
	}
	pthread_mutex_unlock(&d->lock);
}
