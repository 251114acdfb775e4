/*
 * Split virtqueues (virtio 1.x, 2.7), device side. Pure: no KVM, no threads, no
 * allocation, so it can be fuzzed. Every guest address goes through guest_mem_ptr();
 * every index, length and chain is checked. A malformed ring makes virtq_pop()
 * return -EBADMSG; the caller marks its device NEEDS_RESET and stops using the queue.
 */
#ifndef TERN_VIRTIO_QUEUE_H
#define TERN_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "kvm/guest_mem.h"

struct vmstate_cursor;
struct vmstate_writer;

#define VIRTQ_MAX_SIZE 256 /* the largest queue size tern offers; chains are at most this long */

struct virtq {
	/* Set by the transport from the driver's writes. */
	uint16_t size; /* power of two, 1..VIRTQ_MAX_SIZE */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Negotiated features that change the ring's behaviour. */
	bool event_idx;
	bool indirect;
	/* Device-side state (saved with the device). */
	uint16_t last_avail;	 /* next avail ring entry to consume */
	uint16_t used_idx;	 /* next used ring entry to fill */
	uint16_t signalled_used; /* used_idx at the last virtq_should_signal() (EVENT_IDX) */
	bool signalled_valid;	 /* false: the next virtq_should_signal() says yes */
	bool broken;		 /* a malformed ring was seen: nothing more is popped */
	/*
	 * The rings' host addresses as last checked, for the guest memory and ring
	 * addresses they were checked against (any change, virtq_reset, or dirty tracking
	 * on, and they are checked again): not device state, never saved.
	 */
	struct virtq_rings_cache {
		const struct guest_mem *m;
		const uint8_t *host;
		uint64_t mem_size, desc_gpa, avail_gpa, used_gpa;
		uint16_t size;
		uint8_t *desc, *avail, *used; /* NULL: nothing cached */
	} rings_cache;
};

/* One descriptor chain, split in device-readable then device-writable segments. */
struct virtq_chain {
	uint16_t head;
	unsigned int nread, nwrite; /* iov[0..nread) readable, iov[nread..nread+nwrite) writable */
	uint64_t read_len, write_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* Checks size/addresses against RAM; called when the driver enables the queue. */
int virtq_validate(const struct virtq *q, const struct guest_mem *m);
void virtq_reset(struct virtq *q);
/*
 * Takes the next available chain. Returns 1 and fills c; 0 when none is available (or
 * the queue is not ready); -EBADMSG when the ring or the chain is malformed (q->broken
 * is then set, and stays until virtq_reset()). Zero-length buffers are accepted and
 * get no segment. An indirect table may hold up to VIRTQ_MAX_SIZE entries whatever the
 * queue size (Linux builds indirect chains longer than small queues). Does not publish
 * avail_event: see virtq_set_avail_event().
 */
int virtq_pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c);
/* Returns a used chain with the number of bytes written into it. 0, or -EINVAL (bad head). */
int virtq_push(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len);
/*
 * virtq_push without moving used->idx: the driver sees nothing until virtq_publish_used(),
 * which hands over every entry pushed so far at once (a device that returns a batch and
 * interrupts for it in one critical section).
 */
int virtq_push_unpublished(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len);
int virtq_publish_used(struct virtq *q, const struct guest_mem *m);
/*
 * Returns n used chains at once: their entries are written first and the used index moves
 * once, so the driver sees all of them or none (one frame spread over several mergeable
 * receive buffers). 0, or -EINVAL (bad head, n > size: nothing is written).
 */
int virtq_push_batch(struct virtq *q, const struct guest_mem *m, const uint16_t *heads,
		     const uint32_t *lens, unsigned int n);
/*
 * Gives back the last n chains virtq_pop() returned and that were not pushed: the driver
 * still owns them in the avail ring, so the next pops return them again (re-walked and
 * re-checked). For a device that took buffers it then could not use.
 */
void virtq_unpop(struct virtq *q, uint16_t n);
/*
 * After each batch of pushes: does the driver want an interrupt now (NO_INTERRUPT, or
 * with EVENT_IDX: did this batch write the used entry the driver named in used_event)?
 */
bool virtq_should_signal(struct virtq *q, const struct guest_mem *m);
/* Has the driver made chains available that virtq_pop() has not taken yet? */
bool virtq_pending(const struct virtq *q, const struct guest_mem *m);
/*
 * Before a device stops popping: with EVENT_IDX, publishes avail_event and returns
 * whether a chain arrived meanwhile (it would otherwise wait for a kick that never
 * comes, so the device must pop again). Without EVENT_IDX: false.
 */
bool virtq_rearm(struct virtq *q, const struct guest_mem *m);
/*
 * With EVENT_IDX: publish avail_event = last_avail so the driver kicks for the next chain.
 * Ends with a full fence; pop again afterwards, or a chain added meanwhile waits for a kick
 * that will not come.
 */
void virtq_set_avail_event(struct virtq *q, const struct guest_mem *m);

/* Copies between a chain's segments and a flat buffer (used by device parsers). */
size_t virtq_iov_read(const struct iovec *iov, unsigned int n, uint64_t off, void *dst, size_t len);
size_t virtq_iov_write(const struct iovec *iov, unsigned int n, uint64_t off, const void *src,
		       size_t len);

/*
 * Snapshot state of one queue (queue_state.c, kept out of this file so the fuzzed queue
 * code links without the state format): every field of struct virtq, little-endian.
 * virtq_load() only parses (errors stick in the cursor); virtq_check_loaded() then
 * decides whether a parsed queue may be used over m, as the transport's enable path
 * would (0, or -EINVAL with *why naming the field).
 */
void virtq_save(const struct virtq *q, struct vmstate_writer *w);
void virtq_load(struct virtq *q, struct vmstate_cursor *c);
int virtq_check_loaded(const struct virtq *q, uint16_t queue_max, const struct guest_mem *m,
		       const char **why);

#endif
