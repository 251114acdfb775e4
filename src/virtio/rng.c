/*
 * virtio-rng: random bytes from getrandom() straight into the guest's buffers, so
 * tern never allocates on a guest's behalf; each request is capped.
 */
#include "virtio/rng.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <sys/random.h>

static void fill(struct iovec *iov, unsigned int n, uint64_t cap, uint32_t *written)
{
	uint64_t done = 0;

	for (unsigned int i = 0; i < n && done < cap; i++) {
		size_t want = iov[i].iov_len;
		if (want > cap - done)
			want = cap - done;
		size_t got = 0;
		while (got < want) {
			ssize_t r = getrandom((uint8_t *)iov[i].iov_base + got, want - got, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		done += got;
		if (got < want)
			break;
	}
	*written = (uint32_t)done;
}

static void rng_notify(struct virtio_dev *d, unsigned int qi)
{
	struct virtio_rng *r = d->priv;
	struct virtq *q = &d->q[qi];
	int ret;

	while ((ret = virtq_pop(q, d->mem, &r->chain)) == 1) {
		uint32_t written;
		/* Device-readable segments carry nothing for an entropy device: skip them. */
		fill(r->chain.iov + r->chain.nread, r->chain.nwrite, VIRTIO_RNG_MAX_REQUEST,
		     &written);
		r->bytes += written;
		r->requests++;
		virtio_dev_complete(d, qi, r->chain.head, written);
	}
	if (ret < 0) {
		virtio_dev_needs_reset(d, "malformed descriptor chain");
		return;
	}
	if (virtq_rearm(q, d->mem))
		rng_notify(d, qi);
}

static void rng_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	/* No configuration space: never called (config_size 0). */
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.features = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX),
	.num_queues = 1,
	.queue_max = 256,
	.config_size = 0,
	.config_read = rng_config_read,
	.notify = rng_notify,
};

void virtio_rng_init(struct virtio_rng *r, const struct guest_mem *mem)
{
	virtio_dev_init(&r->dev, &rng_ops, r, mem);
}

int virtio_rng_save(struct virtio_rng *r, struct vmstate_writer *w)
{
	return 0;
}

int virtio_rng_restore(struct virtio_rng *r, struct vmstate_cursor *c, char *err, size_t errlen)
{
	if (vmstate_cursor_done(c))
		return virtio_state_refuse(&r->dev, err, errlen,
					   "state has %llu bytes; this version has none",
					   (unsigned long long)c->len);
	return 0;
}
