/*
 * Snapshot state of a split virtqueue. A restored queue is user input (the state file):
 * a ready one passes the checks the driver's enable did, so the ring code can trust it
 * as much as one the driver set up.
 */
#include "virtio/queue.h"
#include "vmstate/vmstate.h"

#include <errno.h>

void virtq_save(const struct virtq *q, struct vmstate_writer *w)
{
	vmstate_put_u16(w, q->size);
	vmstate_put_bool(w, q->ready);
	vmstate_put_u64(w, q->desc_gpa);
	vmstate_put_u64(w, q->avail_gpa);
	vmstate_put_u64(w, q->used_gpa);
	vmstate_put_u16(w, q->last_avail);
	vmstate_put_u16(w, q->used_idx);
	vmstate_put_u16(w, q->signalled_used);
	vmstate_put_bool(w, q->signalled_valid);
	vmstate_put_bool(w, q->event_idx);
	vmstate_put_bool(w, q->indirect);
	vmstate_put_bool(w, q->broken);
}

void virtq_load(struct virtq *q, struct vmstate_cursor *c)
{
	virtq_reset(q);
	q->size = vmstate_get_u16(c);
	q->ready = vmstate_get_bool(c);
	q->desc_gpa = vmstate_get_u64(c);
	q->avail_gpa = vmstate_get_u64(c);
	q->used_gpa = vmstate_get_u64(c);
	q->last_avail = vmstate_get_u16(c);
	q->used_idx = vmstate_get_u16(c);
	q->signalled_used = vmstate_get_u16(c);
	q->signalled_valid = vmstate_get_bool(c);
	q->event_idx = vmstate_get_bool(c);
	q->indirect = vmstate_get_bool(c);
	q->broken = vmstate_get_bool(c);
}

int virtq_check_loaded(const struct virtq *q, uint16_t queue_max, const struct guest_mem *m,
		       const char **why)
{
	/*
	 * A queue that is not ready is only registers the driver may still be writing (any
	 * size, any address): nothing reads its ring, and enabling it checks them then. The
	 * indices need no check either way: the ring code takes any u16 and re-checks the
	 * distance to the driver's avail index at every pop.
	 */
	if (!q->ready)
		return 0;
	if (q->size == 0 || q->size > queue_max || (q->size & (q->size - 1))) {
		*why = "size (not a power of two up to the queue's maximum)";
		return -EINVAL;
	}
	if (virtq_validate(q, m)) {
		*why = "ring addresses (misaligned or outside guest RAM)";
		return -EINVAL;
	}
	return 0;
}
