/*
 * The insides of the qcow2 library (qcow2.h), shared by its files: qcow2_header.c (the
 * header and its extensions), qcow2_map.c (L1/L2 lookup, the L2 cache), qcow2_alloc.c
 * (refcounts, cluster allocation, metadata write-back), qcow2_io.c (requests),
 * qcow2_chain.c (backing files, describe), qcow2_create.c, qcow2_repair.c and
 * qcow2_resize.c.
 *
 * Locking: q->lock guards every field below that changes after open (the caches, the L1
 * and refcount tables, the allocator, the in-flight list). Data transfers run without it.
 *
 * Crash-safety rules the metadata write-back keeps (qcow2_alloc.c):
 *  - a refcount increment reaches the disk (and is synced) before any L2/L1 entry that
 *    needs it; refcount blocks may be written at any time, since increments only leak;
 *  - data is synced before the L2 entry that points at it is written;
 *  - an L2 table is written and synced before an L1 entry pointing at it;
 *  - a cluster no longer referenced is freed (its refcount decremented, and so made
 *    reusable) only after the L2/L1 change that dropped it is on disk: pending frees.
 * With lazy_refcounts the first rule is dropped, and the dirty bit stands in for it.
 */
#ifndef TERN_BACKEND_QCOW2_IMPL_H
#define TERN_BACKEND_QCOW2_IMPL_H

#include <endian.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/qcow2.h"
#include "core/be.h"

#define Q2_HDR_V2_LEN 72
#define Q2_HDR_V3_LEN 104
#define Q2_EXT_END 0
#define Q2_EXT_BACKING_FMT 0xe2792acau
#define Q2_EXT_FEATURES 0x6803f857u

#define Q2_INCOMPAT_DIRTY (1ull << 0)
#define Q2_INCOMPAT_CORRUPT (1ull << 1)
#define Q2_INCOMPAT_DATA_FILE (1ull << 2)
#define Q2_INCOMPAT_COMPRESSION (1ull << 3)
#define Q2_INCOMPAT_EXTL2 (1ull << 4)
#define Q2_COMPAT_LAZY (1ull << 0)

#define Q2_OFLAG_COPIED (1ull << 63)
#define Q2_OFLAG_COMPRESSED (1ull << 62)
#define Q2_OFLAG_ZERO 1ull
#define Q2_OFFSET_MASK 0x00fffffffffffe00ull
#define Q2_L1_RESERVED 0x7f000000000001ffull
#define Q2_RT_RESERVED 0x1ffull

/* Bounds on hostile sizes (QEMU uses the same orders of magnitude). */
#define Q2_SIZE_MAX (1ull << 55)
#define Q2_L1_MAX_BYTES (32u << 20)
#define Q2_RT_MAX_BYTES (8u << 20)
#define Q2_OFF_MAX (1ull << 56) /* offsets are 56-bit in L1/L2 entries */
#define Q2_BACKING_NAME_MAX 1023

#define Q2_COMP_ZLIB 0
#define Q2_COMP_ZSTD 1

/* One cluster of metadata in a cache: an L2 table (tab) or a refcount block (blk). */
struct q2_cached {
	uint64_t off; /* host offset of the cluster; 0: free slot */
	union {
		uint64_t *tab; /* L2: the entries as on disk (big-endian) */
		uint8_t *blk;  /* refcount block */
	};
	uint64_t lru;
	bool dirty;
};

/* A guest cluster whose new data cluster is being written; others touching it wait. */
struct q2_inflight {
	uint64_t gc;
	struct q2_inflight *next;
};

/* The parsed header, as read from (or about to be written to) the file. */
struct q2_header {
	uint32_t version, cluster_bits, refcount_order, header_len;
	uint64_t size, l1_off, rt_off, snapshots_off;
	uint32_t l1_size, rt_clusters, nb_snapshots;
	uint64_t backing_off;
	uint32_t backing_len;
	uint64_t incompat, compat, autoclear;
	uint8_t compression;
	char backing[Q2_BACKING_NAME_MAX + 1];
	char backing_fmt[16]; /* "" when the extension is absent */
};

/* What a guest cluster maps to. */
enum q2_kind { Q2_UNALLOC, Q2_ZERO, Q2_DATA, Q2_COMP };
struct q2_map {
	enum q2_kind kind;
	uint64_t host;	/* DATA, COMP, and a ZERO cluster that keeps its preallocation */
	uint64_t csize; /* COMP: bytes of compressed data at host */
	bool copied;
	uint64_t raw; /* the L2 entry */
};

struct qcow2 {
	int fd;
	bool own_fd; /* backing files: opened and closed here */
	bool readonly;
	char path[4096];
	struct q2_header h;
	uint64_t cs;	  /* cluster size */
	unsigned l2_bits; /* log2 of entries per L2 table */
	unsigned rc_bits; /* bits per refcount */
	uint64_t epb;	  /* refcount entries per block */
	bool lazy, dirty_on_disk;
	bool punch_freed; /* qcow2_open_args.punch_freed */
	/*
	 * dsync: the file is open O_DSYNC (cache=none): every write is durable when it returns,
	 * in the order made, so no fdatasync is needed, for order or for a flush. unsynced:
	 * something was written since the last fdatasync (a flush with nothing to write and
	 * nothing unsynced costs no system call).
	 */
	bool dsync;
	atomic_bool unsynced;

	uint64_t *l1; /* host order */
	bool l1_dirty;
	uint64_t *rt; /* refcount table, host order */
	uint64_t rt_entries;
	bool rt_dirty;
	uint64_t end; /* end of the file (cluster-aligned), grows with allocations */

	/* The backing file: a qcow2 image, a raw file, or neither. */
	struct qcow2 *bq;
	int bfd;
	uint64_t bsize;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct q2_cached *l2c;
	unsigned nl2;
	struct q2_cached *rbc;
	unsigned nrb;
	uint64_t tick;
	uint64_t free_hint;
	uint64_t *pending; /* clusters to decrement after the next full write-back */
	size_t npending, cap_pending;
	struct q2_inflight *inflight;
	int werr;	    /* a failed metadata write: every later write and flush fails */
	uint64_t comp_next; /* where the next compressed cluster may go (0: a new cluster) */
};

/* Messages: "path: what", into err (may be NULL or n == 0). */
void q2_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Request-time errors: logged (there is no err buffer on the request path). -EIO. */
int q2_eio(const struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Notes a write to q's file that no fdatasync has covered yet. */
static inline void q2_wrote(struct qcow2 *q)
{
	if (!q->dsync)
		atomic_store_explicit(&q->unsynced, true, memory_order_relaxed);
}

/* Whole-buffer positioned I/O; a read past the end of the file is zero-filled. */
int q2_pread(int fd, void *buf, size_t len, uint64_t off);
int q2_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* qcow2_header.c */
int q2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct q2_header *h,
		    char *err, size_t n);
/* Bytes of the header, extensions and backing name; 0 if they do not fit in cs bytes. */
size_t q2_header_build(const struct q2_header *h, uint8_t *buf, size_t cs);
int q2_write_features(struct qcow2 *q); /* the three feature words, then fdatasync */

/* qcow2_map.c */
int q2_l2_get(struct qcow2 *q, uint64_t off, bool fresh, uint64_t **tab);
int q2_lookup(struct qcow2 *q, uint64_t gc, struct q2_map *m);
/* How long the image below this one is: its backing file's size, 0 without one. */
static inline uint64_t q2_backing_size(const struct qcow2 *q)
{
	return q->bq ? q->bq->h.size : q->bfd >= 0 ? q->bsize : 0;
}
/* Under the lock: a new data cluster for guest cluster gc is being written just now. */
bool q2_in_flight(const struct qcow2 *q, uint64_t gc);
/* q2_lookup without I/O: -EAGAIN when gc's L2 table is not in the cache. */
int q2_lookup_cached(struct qcow2 *q, uint64_t gc, struct q2_map *m);
int q2_decode(const struct qcow2 *q, uint64_t e, struct q2_map *m);
/* The L2 table for gc ready to be changed (allocated, or copied if shared). */
int q2_l2_prepare(struct qcow2 *q, uint64_t gc, uint64_t **tab);
int q2_l2_write(struct qcow2 *q, struct q2_cached *e);
/*
 * The cached cluster at off from cache c (n slots): found, or loaded into the least
 * recently used slot (zeroed instead when fresh), whose dirty contents evict() writes
 * back first. 0 and *out, or -errno.
 */
int q2_cache_get(struct qcow2 *q, struct q2_cached *c, unsigned n, uint64_t off, bool fresh,
		 int (*evict)(struct qcow2 *q, struct q2_cached *e), struct q2_cached **out);
/* Sets gc's L2 entry to v (old: what it was), preparing the table first. */
int q2_l2_set(struct qcow2 *q, uint64_t gc, uint64_t v, uint64_t *old);
int q2_caches_init(struct qcow2 *q, size_t l2_bytes);
void q2_caches_free(struct qcow2 *q);

/* qcow2_alloc.c */
int q2_rc_get(struct qcow2 *q, uint64_t c, uint64_t *rc);
int q2_rc_set(struct qcow2 *q, uint64_t c, uint64_t v);
uint64_t q2_rc_entry(const struct qcow2 *q, const uint8_t *blk, uint64_t i);
void q2_rc_entry_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v);
int q2_alloc(struct qcow2 *q, uint64_t *off);
int q2_free_later(struct qcow2 *q, const struct q2_map *m);
int q2_rc_writeback(struct qcow2 *q);
int q2_writeback(struct qcow2 *q, bool full);
int q2_mark_dirty(struct qcow2 *q);
/* fdatasync (nothing under O_DSYNC); a failure is kept in q->werr. 0 or -errno. */
int q2_sync(struct qcow2 *q);
/*
 * Drops a reference from each of the n clusters at off (0: none), a table that nothing on
 * disk names any more, making them reusable at once.
 */
int q2_release(struct qcow2 *q, uint64_t off, uint64_t n);

/* qcow2_io.c */
int q2_decompress(const struct qcow2 *q, const uint8_t *in, size_t inlen, uint8_t *out);

/* qcow2_chain.c */
struct q2_chain;
int q2_open(struct qcow2 **out, const struct qcow2_open_args *a, struct q2_chain *ch, char *err,
	    size_t n);

/* qcow2_repair.c */
int q2_repair(struct qcow2 *q, char *err, size_t n);

#endif
