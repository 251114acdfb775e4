/*
 * qcow2 images, QEMU's disk format (versions 2 and 3; the specification is QEMU's
 * docs/interop/qcow2.txt): what cloud images, virt-install, libvirt snapshots and
 * virt-clone make. An image maps the guest's disk through a two-level table (L1, L2) to
 * clusters of the file; clusters it does not map come from its backing file (a qcow2 or
 * a raw image, opened read-only) or read as zeros.
 *
 * Every field read from a file is hostile: offsets and sizes are overflow-checked,
 * tables bounded, loops in backing chains refused; a refusal names the field.
 *
 * Thread safety: a struct qcow2 serves requests from several threads at once (the disk
 * thread pool's workers); it locks what it must.
 */
#ifndef TERN_BACKEND_QCOW2_H
#define TERN_BACKEND_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_CLUSTER_BITS_MIN 9  /* 512 B */
#define QCOW2_CLUSTER_BITS_MAX 21 /* 2 MiB */
#define QCOW2_CLUSTER_BITS_DEFAULT 16
#define QCOW2_CHAIN_MAX 16		  /* backing files below one image */
#define QCOW2_L2_CACHE_DEFAULT (1u << 20) /* bytes of L2 tables kept in memory */

struct qcow2;

/* Does buf (the first bytes of an image, len of them) start like a qcow2 image? */
bool qcow2_probe(const uint8_t *buf, size_t len);

struct qcow2_open_args {
	int fd;		  /* the image, opened (and locked) by the caller; not closed by qcow2 */
	const char *path; /* for resolving a relative backing file name, and for messages */
	bool readonly;
	size_t l2_cache_bytes; /* 0: QCOW2_L2_CACHE_DEFAULT */
	/*
	 * Open this file alone, without its backing chain: what it does not map reads as
	 * zeros. For tern img commit, which reads only what qcow2_block_status says the file
	 * holds and writes it into the backing file it has opened for writing itself.
	 */
	bool no_backing;
	/* Freed clusters' space goes back to the file system (a hole is punched). */
	bool punch_freed;
	/*
	 * The backing files opened without their shared lock: for reading the chain's names
	 * and headers only (ternd's lists, which must work while a VM writes the file below a
	 * new overlay), never for I/O.
	 */
	bool no_lock;
};

/*
 * Reads and checks the header, its extensions and tables, opens the backing chain
 * (read-only, each file with a shared OFD lock), and, when the image was left dirty
 * (lazy_refcounts after a crash) and is opened for writing, repairs its refcounts.
 * 0 and *out, or -errno and the reason in err (naming the field or the chain).
 */
int qcow2_open(struct qcow2 **out, const struct qcow2_open_args *a, char *err, size_t n);
/* Writes back what is cached (as qcow2_flush), marks the image clean, frees *q. */
void qcow2_close(struct qcow2 *q);
/* The disk the guest sees, bytes. */
uint64_t qcow2_size(const struct qcow2 *q);

/*
 * Requests, on any thread. off and len are bytes (the virtio-blk device passes sector
 * multiples); len is the iov total for reads and writes. 0 or -errno.
 */
int qcow2_read(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len);
int qcow2_write(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len);
/*
 * Both leave the range reading as zeros and free the clusters it covers wholly (a v3
 * zero flag where a backing file would show through; a version 2 image with a backing
 * file has no zero flag, so there zeros are written). Partial clusters are zeroed.
 */
int qcow2_discard(struct qcow2 *q, uint64_t off, uint64_t len);
int qcow2_write_zeroes(struct qcow2 *q, uint64_t off, uint64_t len);
/*
 * Makes the clusters [off, off+len) covers wholly unallocated again, so that the backing
 * file shows through, and frees them. For tern img commit, once the backing file holds
 * the same bytes: the image then reads as before.
 */
int qcow2_unmap(struct qcow2 *q, uint64_t off, uint64_t len);
/*
 * Writes the guest cluster at off (cluster-aligned; len is the cluster size, or what is
 * left of the disk for its last cluster) compressed, as the header's compression type
 * says; as a plain cluster if it does not get smaller. Only where this image maps nothing
 * (-EEXIST otherwise, as QEMU): for making compressed images (tern img convert). 0 or
 * -errno.
 */
int qcow2_write_compressed(struct qcow2 *q, uint64_t off, const void *data, size_t len);
/*
 * Grows the disk to size bytes (a multiple of 512), with a larger L1 table when needed;
 * the new part reads as zeros, also where a backing file is longer (zeroed there, as QEMU
 * 5.1 on does). Shrinking is refused (-ENOTSUP): qcow2_shrink() does it. 0, or -errno with
 * err naming the fault.
 */
int qcow2_resize(struct qcow2 *q, uint64_t size, char *err, size_t n);
/*
 * A smaller virtual size (tern img resize --shrink, as qemu-img resize --shrink): what
 * lies past it is gone, its clusters and L2 tables freed; the bytes of the last cluster
 * past the new end are zeroed first. An image with internal snapshots is refused
 * (-ENOTSUP). 0, or -errno with err naming the fault.
 */
int qcow2_shrink(struct qcow2 *q, uint64_t size, char *err, size_t n);
/*
 * Where a read or write of [off, off+len) can go without qcow2's help, for an engine that
 * moves the data itself (io_uring): QCOW2_PLACE_FILE, len bytes of the open file fd from
 * offset off (one run of this image's own clusters, or of a raw file below it); or
 * QCOW2_PLACE_ZERO, a read that is all zeros. A write is placed only on clusters this
 * image owns alone (no allocation, no copy), and qcow2_placed_write_done() is told when it
 * completed. Never does I/O nor waits: -EAGAIN when the request needs qcow2_read/qcow2_write (several places, an
 * L2 table not in memory, a cluster being allocated, a compressed one, a qcow2 below that
 * is not in memory either); other -errno for a request that fails.
 */
enum qcow2_place_kind { QCOW2_PLACE_FILE, QCOW2_PLACE_ZERO };
struct qcow2_place {
	enum qcow2_place_kind kind;
	int fd;
	uint64_t off;
};
int qcow2_place(struct qcow2 *q, bool write, uint64_t off, uint64_t len, struct qcow2_place *p);
/* A write placed by qcow2_place() completed: the next flush must sync the file. */
void qcow2_placed_write_done(struct qcow2 *q);
/* Makes every completed write durable (data, then metadata in a crash-safe order). */
int qcow2_flush(struct qcow2 *q);
/*
 * Where the guest's bytes from off come from: sets *run to how many of the len bytes from
 * off share the answer (at least 1 byte... up to a cluster boundary or more). Returns 1
 * when this file holds them (data, or zeros it records), 0 when they come from below (the
 * backing file, or zeros without one), or -errno.
 */
int qcow2_block_status(struct qcow2 *q, uint64_t off, uint64_t len, uint64_t *run);

struct qcow2_create_args {
	const char *path;	    /* must not exist; nothing is left behind on failure */
	uint64_t size;		    /* 0 with a backing file: the backing file's size */
	const char *backing;	    /* NULL for none; stored as given (relative to path's dir) */
	const char *backing_format; /* "qcow2" or "raw"; NULL: probed */
	unsigned cluster_bits;	    /* 0: QCOW2_CLUSTER_BITS_DEFAULT */
	bool lazy_refcounts;
	bool zstd; /* compressed clusters are zstd frames (compression_type 1), not zlib */
};
/* Makes a new, empty version 3 image (as `qemu-img create -f qcow2` would). 0 or -errno. */
int qcow2_create(const struct qcow2_create_args *a, char *err, size_t n);

/* One file of a chain, top first. */
struct qcow2_chain_entry {
	char path[4096]; /* as opened (a relative name resolved) */
	char format[8];	 /* "qcow2" or "raw" */
	uint64_t size;	 /* virtual size */
	uint64_t
		allocated; /* bytes of guest data this file maps itself (qcow2), or its size (raw) */
	unsigned cluster_bits, version; /* qcow2 only */
	bool dirty, lazy_refcounts;	/* qcow2 only */
	char compression[8];		/* "zlib" or "zstd" (qcow2 only) */
};
/*
 * Describes the image at path and its backing chain without writing to it (a dirty image
 * is reported as dirty, not repaired). Fills up to max entries; returns how many the
 * chain has, or -errno with err.
 */
int qcow2_describe(const char *path, struct qcow2_chain_entry *chain, int max, char *err, size_t n);
/* The same without taking the backing files' locks (qcow2_open_args.no_lock). */
int qcow2_describe_unlocked(const char *path, struct qcow2_chain_entry *chain, int max, char *err,
			    size_t n);

#endif
