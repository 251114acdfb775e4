/*
 * Device side of split virtqueues (virtio 1.x, 2.7): checked ring layout, chain
 * walking with loop and bounds checks, used ring updates and EVENT_IDX decisions.
 */
#include "virtio/queue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "virtio/virtio.h"

/* Ring layout in bytes; the ring sizes include used_event / avail_event. */
#define DESC_SIZE 16u
#define AVAIL_RING 4u
#define USED_RING 4u
#define USED_ELEM 8u

static inline uint64_t desc_bytes(uint64_t size)
{
	return DESC_SIZE * size;
}

static inline uint64_t avail_bytes(uint64_t size)
{
	return 6 + 2 * size;
}

static inline uint64_t used_bytes(uint64_t size)
{
	return 6 + USED_ELEM * size;
}

/* Host views of the three rings; only ever built by layout(), which checks them. */
struct rings {
	uint8_t *desc, *avail, *used;
};

/*
 * The guest may rewrite any ring field at any time: every field is read exactly once,
 * with a single access of its own width (aligned by layout()), so it is neither torn
 * nor re-read behind our back.
 */
static inline uint16_t load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static inline void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/*
 * Indirect tables need not be aligned, so a descriptor is copied bytewise into a local;
 * the compiler barrier stops the compiler from re-reading guest memory instead of the
 * copy (which would reopen the check-then-use race the copy closes).
 */
static void load_desc(const uint8_t *p, struct desc *d)
{
	uint8_t raw[DESC_SIZE];
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;

	memcpy(raw, p, sizeof(raw));
	__asm__ volatile("" ::: "memory");
	memcpy(&addr, raw, 8);
	memcpy(&len, raw + 8, 4);
	memcpy(&flags, raw + 12, 2);
	memcpy(&next, raw + 14, 2);
	d->addr = le64toh(addr);
	d->len = le32toh(len);
	d->flags = le16toh(flags);
	d->next = le16toh(next);
}

static bool size_ok(uint16_t size)
{
	return size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) == 0;
}

static int layout(const struct virtq *q, const struct guest_mem *m, struct rings *r)
{
	if (!size_ok(q->size))
		return -EINVAL;
	if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
		return -EINVAL;
	r->desc = guest_mem_ptr(m, q->desc_gpa, desc_bytes(q->size));
	r->avail = guest_mem_ptr(m, q->avail_gpa, avail_bytes(q->size));
	r->used = guest_mem_ptr(m, q->used_gpa, used_bytes(q->size));
	if (!r->desc || !r->avail || !r->used)
		return -EINVAL;
	return 0;
}

/*
 * layout() for the device's own calls, which run once or twice per request: the last
 * result while nothing it depends on changed. With dirty tracking on, every call goes
 * through guest_mem_ptr(), whose marking covers the used ring the device writes.
 */
static int rings_of(struct virtq *q, const struct guest_mem *m, struct rings *r)
{
	struct virtq_rings_cache *c = &q->rings_cache;

	if (c->desc && !m->dirty && c->m == m && c->host == m->host && c->mem_size == m->size &&
	    c->desc_gpa == q->desc_gpa && c->avail_gpa == q->avail_gpa &&
	    c->used_gpa == q->used_gpa && c->size == q->size) {
		*r = (struct rings){ c->desc, c->avail, c->used };
		return 0;
	}
	c->desc = NULL;
	if (layout(q, m, r))
		return -EINVAL;
	*c = (struct virtq_rings_cache){ .m = m,
					 .host = m->host,
					 .mem_size = m->size,
					 .desc_gpa = q->desc_gpa,
					 .avail_gpa = q->avail_gpa,
					 .used_gpa = q->used_gpa,
					 .size = q->size,
					 .desc = r->desc,
					 .avail = r->avail,
					 .used = r->used };
	return 0;
}

int virtq_validate(const struct virtq *q, const struct guest_mem *m)
{
	struct rings r;

	return layout(q, m, &r);
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

/* Appends one buffer to the chain; zero-length buffers carry no data and get no segment. */
static int add_buf(struct virtq_chain *c, const struct guest_mem *m, const struct desc *d)
{
	unsigned int n = c->nread + c->nwrite;
	void *p;

	if (d->len == 0)
		return 0;
	if (n >= VIRTQ_MAX_SIZE)
		return -EBADMSG;
	p = guest_mem_ptr(m, d->addr, d->len);
	if (!p)
		return -EBADMSG;
	c->iov[n].iov_base = p;
	c->iov[n].iov_len = d->len;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		if (__builtin_add_overflow(c->write_len, d->len, &c->write_len))
			return -EBADMSG;
		c->nwrite++;
	} else {
		if (__builtin_add_overflow(c->read_len, d->len, &c->read_len))
			return -EBADMSG;
		c->nread++;
	}
	return 0;
}

/*
 * Follows the chain from head. The main table allows at most q->size visits and an
 * indirect table at most as many as it has entries, so a loop anywhere ends the walk as
 * malformed. An indirect table may hold up to VIRTQ_MAX_SIZE entries even on a smaller
 * queue: Linux builds indirect chains longer than the queue size.
 */
static int walk(const struct virtq *q, const struct guest_mem *m, const uint8_t *desc_table,
		uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = desc_table;
	unsigned int count = q->size, budget = q->size, idx = head;
	bool in_indirect = false, writable = false;
	struct desc d;
	int err;

	c->head = head;
	c->nread = c->nwrite = 0;
	c->read_len = c->write_len = 0;
	for (;;) {
		if (idx >= count || budget == 0)
			return -EBADMSG;
		budget--;
		load_desc(table + (size_t)idx * DESC_SIZE, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* The spec has the device ignore WRITE on a descriptor naming a table. */
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EBADMSG;
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_SIZE)
				return -EBADMSG;
			table = guest_mem_ptr(m, d.addr, d.len);
			if (!table)
				return -EBADMSG;
			count = budget = d.len / DESC_SIZE;
			idx = 0;
			in_indirect = true;
			continue;
		}
		if (d.flags & VIRTQ_DESC_F_WRITE)
			writable = true;
		else if (writable)
			return -EBADMSG; /* the spec puts all writable buffers last */
		/* The readable-then-writable order makes iov[] split at nread by itself. */
		err = add_buf(c, m, &d);
		if (err)
			return err;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

static int broken(struct virtq *q)
{
	q->broken = true;
	return -EBADMSG;
}

int virtq_pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c)
{
	struct rings r;
	uint16_t avail_idx, pending, head;

	if (q->broken)
		return -EBADMSG;
	if (!q->ready)
		return 0;
	if (rings_of(q, m, &r))
		return broken(q);
	avail_idx = load16(r.avail + 2);
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending > q->size)
		return broken(q);
	if (pending == 0)
		return 0;
	/* The ring entry and the descriptors were written before avail->idx. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	head = load16(r.avail + AVAIL_RING + 2 * (q->last_avail & (q->size - 1)));
	if (head >= q->size)
		return broken(q);
	if (walk(q, m, r.desc, head, c))
		return broken(q);
	q->last_avail++;
	return 1;
}

bool virtq_pending(const struct virtq *q, const struct guest_mem *m)
{
	struct rings r;

	if (q->broken || !q->ready || layout(q, m, &r))
		return false;
	return load16(r.avail + 2) != q->last_avail;
}

bool virtq_rearm(struct virtq *q, const struct guest_mem *m)
{
	if (!q->event_idx)
		return false;
	virtq_set_avail_event(q, m);
	return virtq_pending(q, m);
}

int virtq_push_unpublished(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len)
{
	struct rings r;
	uint8_t *elem;

	if (!q->ready || rings_of(q, m, &r) || head >= q->size)
		return -EINVAL;
	elem = r.used + USED_RING + USED_ELEM * (q->used_idx & (q->size - 1));
	store32(elem, head);
	store32(elem + 4, len);
	q->used_idx++;
	return 0;
}

int virtq_publish_used(struct virtq *q, const struct guest_mem *m)
{
	struct rings r;

	if (!q->ready || rings_of(q, m, &r))
		return -EINVAL;
	/* The elements must be visible before the index that hands them to the driver. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store16(r.used + 2, q->used_idx);
	return 0;
}

int virtq_push(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len)
{
	int r = virtq_push_unpublished(q, m, head, len);

	return r ? r : virtq_publish_used(q, m);
}

int virtq_push_batch(struct virtq *q, const struct guest_mem *m, const uint16_t *heads,
		     const uint32_t *lens, unsigned int n)
{
	int r;

	if (n > q->size)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		if (heads[i] >= q->size)
			return -EINVAL;
	/* With the heads checked, only the ring's layout can fail: at the first, or never. */
	for (unsigned int i = 0; i < n; i++)
		if ((r = virtq_push_unpublished(q, m, heads[i], lens[i])))
			return r;
	return virtq_publish_used(q, m);
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
	q->last_avail = (uint16_t)(q->last_avail - n);
}

/*
 * With EVENT_IDX the driver wants an interrupt once the used index moves past used_event:
 * this asks whether used_event lies among the entries added since the previous
 * call. Comparing against the previous call rather than the previous interrupt keeps the
 * u16 window exact: after 65536 pushes without an interrupt the latter would wrap and miss
 * the driver's request. A driver that moves used_event backwards rechecks the ring itself.
 */
bool virtq_should_signal(struct virtq *q, const struct guest_mem *m)
{
	struct rings r;
	uint16_t event, old, now;
	bool valid;

	if (!q->ready || rings_of(q, m, &r))
		return false;
	/* Our used->idx store must be visible before we read what the driver asked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(r.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	event = load16(r.avail + AVAIL_RING + 2 * q->size);
	old = q->signalled_used;
	now = q->used_idx;
	valid = q->signalled_valid;
	q->signalled_used = now;
	q->signalled_valid = true;
	if (!valid)
		return true;
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

void virtq_set_avail_event(struct virtq *q, const struct guest_mem *m)
{
	struct rings r;

	if (!q->ready || !q->event_idx || rings_of(q, m, &r))
		return;
	store16(r.used + USED_RING + USED_ELEM * q->size, q->last_avail);
	/* Published before the caller rechecks avail->idx, so a racing kick is not lost. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Copies between the segments (from byte off on) and a flat buffer, either way. */
static size_t iov_copy(const struct iovec *iov, unsigned int n, uint64_t off, uint8_t *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off;
		if (chunk > len - done)
			chunk = len - done;
		uint8_t *p = (uint8_t *)iov[i].iov_base + off;
		if (to_iov)
			memcpy(p, buf + done, chunk);
		else
			memcpy(buf + done, p, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t virtq_iov_read(const struct iovec *iov, unsigned int n, uint64_t off, void *dst, size_t len)
{
	return iov_copy(iov, n, off, dst, len, false);
}

size_t virtq_iov_write(const struct iovec *iov, unsigned int n, uint64_t off, const void *src,
		       size_t len)
{
	return iov_copy(iov, n, off, (uint8_t *)src, len, true);
}
