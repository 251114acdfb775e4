/*
 * virtio-blk device. Requests are parsed from the chain, checked, and handed to the
 * disk engine; completions (event loop thread) write the status, return the chain
 * and interrupt the driver. A malformed chain makes the device need a reset.
 */
#include "virtio/blk.h"
#include "core/log.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define CONFIG_SIZE 60

static void slots_reset(struct virtio_blk *b)
{
	b->free = NULL;
	for (int i = VIRTIO_BLK_QUEUE_SIZE - 1; i >= 0; i--) {
		b->slot[i].blk = b;
		b->slot[i].next_free = b->free;
		b->free = &b->slot[i];
	}
}

/*
 * Writes the status and puts the chain on the used ring; signal_pending() hands over, and
 * interrupts for, every chain a kick or a batch of completions returned. Lock held.
 */
static void finish(struct virtio_blk *b, struct blk_inflight *f, uint8_t status, uint32_t written)
{
	if (f->generation == b->generation) {
		*f->req.status = status;
		if (status != VIRTIO_BLK_S_OK)
			b->stats.errors++;
		if (virtio_dev_push(&b->dev, 0, f->head, written + 1))
			b->unsignalled = true;
	}
	f->next_free = b->free;
	b->free = f;
}

/*
 * Hands the driver what finish() returned and interrupts it if it asked to be told, in one
 * hold of the lock. Lock held.
 */
static void signal_pending(struct virtio_blk *b)
{
	if (!b->unsignalled)
		return;
	b->unsignalled = false;
	if (virtio_dev_live(&b->dev))
		virtio_dev_signal_used(&b->dev, 0);
	else
		virtq_publish_used(&b->dev.q[0], b->dev.mem);
}

static void complete(struct disk_req *r)
{
	struct blk_inflight *f = (struct blk_inflight *)r;
	struct virtio_blk *b = f->blk;
	uint32_t written = 0;

	uint8_t *log = atomic_load(&b->write_log);
	if (log && r->op != DISK_READ && r->op != DISK_FLUSH && r->len) {
		/* Even a failed write may have changed some of the range: it is copied again. */
		for (uint64_t c = r->offset / VIRTIO_BLK_LOG_CHUNK;
		     c <= (r->offset + r->len - 1) / VIRTIO_BLK_LOG_CHUNK; c++)
			__atomic_fetch_or(&log[c / 8], (uint8_t)(1u << (c % 8)), __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&b->dev.lock);
	if (r->op == DISK_FLUSH && r->result)
		b->disk.flush_failed = true; /* fsyncgate: never report a later flush as good */
	if (r->result)
		log_debug("%s: I/O error: %s", b->ops.name, strerror(-r->result));
	else if (r->op == DISK_READ)
		written = (uint32_t)r->len;
	b->inflight--;
	finish(b, f, r->result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, written);
	if (b->dev.resetting && !b->inflight)
		virtio_dev_reset_done(&b->dev);
	pthread_mutex_unlock(&b->dev.lock);
}

/* After the engine's batch of complete()s: one interrupt and one look at the ring. */
static void batch_done(struct disk *d)
{
	struct virtio_blk *b = (struct virtio_blk *)((char *)d - offsetof(struct virtio_blk, disk));

	pthread_mutex_lock(&b->dev.lock);
	/* Freed slots: chains a full slot table left on the ring can start now. */
	virtio_dev_notify(&b->dev, 0);
	signal_pending(b);
	pthread_mutex_unlock(&b->dev.lock);
}

/* Starts one parsed request, or finishes it at once. Lock held. */
static void start(struct virtio_blk *b, struct blk_inflight *f, int status)
{
	struct blk_parsed *p = &f->req;
	struct disk_req *r = &f->dr;
	uint32_t written = 0;

	if (status != VIRTIO_BLK_S_OK)
		goto done;
	memset(r, 0, sizeof(*r));
	r->complete = complete;
	switch (p->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (p->type == VIRTIO_BLK_T_OUT && b->disk.readonly) {
			status = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		r->op = p->type == VIRTIO_BLK_T_IN ? DISK_READ : DISK_WRITE;
		r->offset = p->sector * VIRTIO_BLK_SECTOR;
		r->len = p->data_len;
		r->iov = p->data;
		r->iovcnt = p->ndata;
		if (r->op == DISK_READ) {
			b->stats.read_ops++;
			b->stats.read_bytes += r->len;
		} else {
			b->stats.write_ops++;
			b->stats.write_bytes += r->len;
		}
		if (!r->len)
			goto done;
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!b->writeback) {
			status = VIRTIO_BLK_S_UNSUPP;
			goto done;
		}
		if (b->disk.flush_failed) {
			status = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		b->stats.flush_ops++;
		r->op = DISK_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID:
		written = (uint32_t)virtq_iov_write(p->data, (unsigned int)p->ndata, 0, b->id,
						    VIRTIO_BLK_ID_BYTES);
		goto done;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (b->disk.readonly || !b->disk.can_punch) {
			status = b->disk.readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_UNSUPP;
			goto done;
		}
		b->stats.discard_ops++;
		r->op = p->type == VIRTIO_BLK_T_DISCARD ? DISK_DISCARD : DISK_WRITE_ZEROES;
		r->offset = p->range_sector * VIRTIO_BLK_SECTOR;
		r->len = (uint64_t)p->range_sectors * VIRTIO_BLK_SECTOR;
		break;
	}
	/* A drive whose image could not be opened again after a swap (disk_swap.c). */
	if (b->disk.fd < 0) {
		status = VIRTIO_BLK_S_IOERR;
		goto done;
	}
	b->inflight++;
	disk_submit(&b->disk, r);
	return;
done:
	if (status != VIRTIO_BLK_S_OK)
		b->stats.invalid_reqs++;
	finish(b, f, (uint8_t)status, written);
}

static void blk_notify(struct virtio_dev *d, unsigned int qi)
{
	struct virtio_blk *b = d->priv;
	struct virtq *q = &d->q[qi];
	int r = 0;

	/* Every request of this kick goes to the engine in one submission. */
	disk_plug(&b->disk);
	while (b->free && (r = virtq_pop(q, d->mem, &b->chain)) == 1) {
		struct blk_inflight *f = b->free;
		int status = blk_parse(&b->chain, b->disk.size, &f->req);
		if (status < 0) {
			r = status;
			break;
		}
		b->free = f->next_free;
		f->head = b->chain.head;
		f->generation = b->generation;
		start(b, f, status);
	}
	disk_unplug(&b->disk);
	if (r < 0) {
		b->stats.invalid_reqs++;
		signal_pending(b);
		virtio_dev_needs_reset(d, "malformed request chain");
		return;
	}
	/* Out of chains (not of slots): re-arm the kick, and go on if one raced with it. */
	if (b->free && virtq_rearm(q, d->mem))
		blk_notify(d, qi);
	else
		signal_pending(b);
}

static void put32(uint8_t *cfg, unsigned int off, uint32_t v)
{
	memcpy(cfg + off, &v, 4);
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct virtio_blk *b = d->priv;
	uint8_t cfg[CONFIG_SIZE] = { 0 };
	uint64_t sectors = b->disk.size / VIRTIO_BLK_SECTOR;

	memcpy(cfg, &sectors, 8);
	put32(cfg, 12, VIRTIO_BLK_SEG_MAX);
	put32(cfg, 20, VIRTIO_BLK_SECTOR);
	cfg[32] = b->writeback;
	/* One range per discard / write-zeroes request; up to 4 GiB - 1 sector each. */
	put32(cfg, 36, 0xffffffffu >> 9);
	put32(cfg, 40, 1);
	put32(cfg, 44, 1);
	put32(cfg, 48, 0xffffffffu >> 9);
	put32(cfg, 52, 1);
	cfg[56] = 1;
	memcpy(data, cfg + off, len);
}

static bool blk_reset(struct virtio_dev *d)
{
	struct virtio_blk *b = d->priv;

	/*
	 * Requests still in the engine finish later but write nothing back. Their slots
	 * stay out of the free list until then: the engine still owns them. The reset
	 * completes when the last of them has (complete()).
	 */
	b->generation++;
	b->unsignalled = false;
	return b->inflight == 0;
}

static int blk_quiesce(struct virtio_dev *d)
{
	struct virtio_blk *b = d->priv;

	return b->inflight ? -EBUSY : 0;
}

void virtio_blk_init(struct virtio_blk *b, const struct guest_mem *mem, const char *name,
		     bool writeback, const char *id)
{
	uint64_t f = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		     (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE);

	b->writeback = writeback && !b->disk.readonly;
	if (b->disk.readonly)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	if (b->writeback)
		f |= 1ULL << VIRTIO_BLK_F_FLUSH;
	if (b->disk.can_punch)
		f |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	b->ops = (struct virtio_dev_ops){
		.name = name,
		.device_id = VIRTIO_ID_BLOCK,
		.features = f,
		.num_queues = 1,
		.queue_max = VIRTIO_BLK_QUEUE_SIZE,
		.config_size = CONFIG_SIZE,
		.config_read = blk_config_read,
		.notify = blk_notify,
		.reset = blk_reset,
		.quiesce = blk_quiesce,
	};
	memset(b->id, 0, sizeof(b->id));
	if (id)
		memcpy(b->id, id, strnlen(id, sizeof(b->id)));
	slots_reset(b);
	b->unsignalled = false;
	virtio_blk_disk_opened(b);
	virtio_dev_init(&b->dev, &b->ops, b, mem);
}

void virtio_blk_disk_opened(struct virtio_blk *b)
{
	b->disk.batch_done = batch_done;
}

void virtio_blk_set_size(struct virtio_blk *b, uint64_t size)
{
	pthread_mutex_lock(&b->dev.lock);
	b->disk.size = size;
	/* A driver not yet running reads the capacity when it starts. */
	if (virtio_dev_live(&b->dev))
		virtio_dev_config_changed(&b->dev);
	else
		b->dev.config_generation++;
	pthread_mutex_unlock(&b->dev.lock);
}

/* ---- snapshot state ---- */

bool virtio_blk_quiesced(struct virtio_blk *b)
{
	bool idle;

	pthread_mutex_lock(&b->dev.lock);
	idle = !b->inflight && !b->dev.resetting;
	pthread_mutex_unlock(&b->dev.lock);
	return idle;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int virtio_blk_drain(struct virtio_blk *b, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	/*
	 * Polled without the lock: completions take it. The vCPUs are stopped and the loop
	 * serves no kicks, so only completions run here can start requests (those whose
	 * kick the paused loop held back, found when a completion looks at the ring), and
	 * those complete here too.
	 */
	for (;;) {
		if (virtio_blk_quiesced(b))
			return 0;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int r = disk_poll(&b->disk, (int)left);
		if (r < 0)
			return r;
	}
}

int virtio_blk_save(struct virtio_blk *b, struct vmstate_writer *w)
{
	int r = 0;

	pthread_mutex_lock(&b->dev.lock);
	if (b->inflight || b->dev.resetting) {
		r = -EBUSY;
	} else {
		vmstate_put_u64(w, b->disk.size);
		vmstate_put_bool(w, b->disk.flush_failed);
		vmstate_put(w, b->id, VIRTIO_BLK_ID_BYTES);
	}
	pthread_mutex_unlock(&b->dev.lock);
	return r;
}

int virtio_blk_restore(struct virtio_blk *b, struct vmstate_cursor *c, char *err, size_t errlen)
{
	struct virtio_dev *d = &b->dev;
	char id[VIRTIO_BLK_ID_BYTES];
	uint64_t size;
	bool flush_failed;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	size = vmstate_get_u64(c);
	flush_failed = vmstate_get_bool(c);
	vmstate_get(c, id, sizeof(id));
	if (c->error) {
		r = virtio_state_refuse(d, err, errlen, "virtio-blk state truncated or malformed");
	} else if (vmstate_cursor_done(c)) {
		r = virtio_state_refuse(d, err, errlen,
					"state has %llu byte(s) past the end of this version's",
					(unsigned long long)(c->len - c->off));
	} else if (size != b->disk.size) {
		/* The guest's file systems were laid out on the capacity it read at probe. */
		r = virtio_state_refuse(d, err, errlen,
					"capacity: %llu bytes in the snapshot, the disk has %llu",
					(unsigned long long)size, (unsigned long long)b->disk.size);
	} else {
		if (memcmp(id, b->id, sizeof(id)))
			log_warn("%s: the drive id differs from the snapshot's; the guest may have "
				 "read the old one",
				 b->ops.name);
		/* Sticky: the pages a failed flush covered may be gone from the host's cache. */
		b->disk.flush_failed |= flush_failed;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}
