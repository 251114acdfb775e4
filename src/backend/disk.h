/*
 * Disk images for virtio-blk: raw files and host block devices, qcow2 images with their
 * backing chains (qcow2.h), and tern's own copy-on-write overlays (disk_overlay.h). Opening takes an advisory
 * OFD lock so two VMs cannot write one image; I/O runs on an engine (io_uring, or a
 * thread pool where io_uring is missing, and for overlays) and completes on the event
 * loop thread.
 */
#ifndef TERN_BACKEND_DISK_H
#define TERN_BACKEND_DISK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/loop.h"

/* DISK_FAIL: tern's own, a request refused before it ran; it completes with its result as set. */
enum disk_op { DISK_READ, DISK_WRITE, DISK_FLUSH, DISK_DISCARD, DISK_WRITE_ZEROES, DISK_FAIL };
enum disk_engine { DISK_ENGINE_AUTO, DISK_ENGINE_IO_URING, DISK_ENGINE_THREADS };
/*
 * AUTO (the default) takes a file that starts like a qcow2 image as one and anything else
 * as raw; an image taken as raw that way may not be given a qcow2 header by its guest
 * (disk_submit refuses the write), so no guest can make its disk reopen as a qcow2 image
 * whose backing file it chose (QEMU's rule). An explicit RAW is never probed. Overlays are
 * never probed either. The values are stored in state files: add, never renumber.
 */
enum disk_format { DISK_FORMAT_RAW, DISK_FORMAT_OVERLAY, DISK_FORMAT_QCOW2, DISK_FORMAT_AUTO };
#define DISK_FORMAT_LAST DISK_FORMAT_AUTO

struct disk_req {
	enum disk_op op;
	uint64_t offset, len; /* bytes; len is the iov total for reads and writes */
	struct iovec *iov;
	int iovcnt;
	int result; /* 0 or -errno, set before complete() runs */
	void (*complete)(struct disk_req *r);
	struct disk_req *next; /* engine-private list link */
	/* Engine-private: the file and offset the transfer goes to (a qcow2 image's cluster). */
	int io_fd;
	uint64_t io_off;
};

/*
 * The thread pool adds a worker when one spent at least this long on a request while
 * others waited: the device, not the CPU, was the wait (disk_threads.c). A variable so
 * that tests can make every request count.
 */
extern uint64_t disk_threads_slow_ns;

struct disk_engine_ops;
struct overlay;
struct qcow2;

struct disk {
	int fd;
	bool readonly, direct, block_device;
	bool can_punch;	   /* discard / write-zeroes work on this file */
	uint64_t size;	   /* bytes, rounded down to 512 */
	bool flush_failed; /* once a flush failed, the page cache cannot be trusted again */
	bool sync_writes;  /* O_DSYNC: a write is durable when it completes (cache=none) */
	const struct disk_engine_ops *engine;
	void *engine_state;
	const char *path;
	struct overlay *ovl;	 /* an overlay's, else NULL */
	struct qcow2 *qcow;	 /* a qcow2 image's, else NULL */
	enum disk_format format; /* as opened: AUTO resolved to RAW or QCOW2 */
	bool probed_raw;	 /* AUTO found no header: the guest may not write one */
	bool unlocked;		 /* opened with no_lock: disk_reopen_locked() will replace fd */
	char why[320];		 /* room for a reason disk_open words with names in it */
	/*
	 * disk_plug depth: submissions wait for disk_unplug. Atomic: the loop thread's reap
	 * and a vCPU thread's kick may both plug; the last unplug hands everything over.
	 */
	_Atomic unsigned int plugged;
	/*
	 * Runs on the completing thread after the engine ran a batch of complete()s (one or
	 * more), so the owner can act once per batch (one interrupt, one look at the ring).
	 */
	void (*batch_done)(struct disk *d);
	/*
	 * Set on a disk an engine made to serve another's requests (io_uring's thread pool
	 * for what a qcow2 image cannot place): plugs and batch ends are the owner's.
	 */
	struct disk *owner;
	/* qcow2 requests the ring ran (or zeros answered) without qcow2's code: stats, tests. */
	_Atomic unsigned long long placed;
	/* Reads the thread pool's submitter answered from the page cache (disk_threads.c). */
	_Atomic unsigned long long nowait_reads;
};

struct disk_open_args {
	const char *path;
	bool readonly;
	bool direct; /* O_DIRECT|O_DSYNC: writes are durable when they complete */
	enum disk_engine engine;
	enum disk_format format;
	struct loop *loop;
	size_t l2_cache_bytes; /* qcow2: 0 for QCOW2_L2_CACHE_DEFAULT */
	/*
	 * Raw images only: open without the lock (a migration's destination builds its VM
	 * while the source still runs on the image); disk_reopen_locked() takes it later.
	 */
	bool no_lock;
};

/* "raw", "overlay", "qcow2", "auto". */
const char *disk_format_name(enum disk_format f);
/* The inverse; -EINVAL for anything else. */
int disk_format_parse(const char *s, enum disk_format *f);
/*
 * What AUTO makes of the image open at fd (its first bytes): QCOW2 or RAW. -errno when it
 * cannot be read. disk_probe_path opens path read-only for it.
 */
int disk_probe_fd(int fd, enum disk_format *out);
int disk_probe_path(const char *path, enum disk_format *out);
/* f itself, or for AUTO what disk_probe_path() finds at path: 0, or -errno with *out = f. */
int disk_format_resolve(const char *path, enum disk_format f, enum disk_format *out);

/*
 * The lock disk_open() takes on an image's open file: an OFD lock, shared for readonly,
 * else exclusive, so two VMs cannot write one image. 0, or -errno (EAGAIN: another holds it).
 */
int disk_lock_fd(int fd, bool readonly);
/*
 * Would disk_open() find the image locked by another process (a running VM)? 1 yes, 0 no,
 * -errno when it cannot be opened. For refusing a start or restore before anything is built.
 */
int disk_lock_holder(const char *path, bool readonly);
/*
 * The size in bytes of the file or block device open at fd (not rounded), and which it is:
 * what disk_open() measures, and a running VM's disk measured again. 0, -EINVAL for
 * anything else, or -errno.
 */
int disk_fd_size(int fd, bool *block_device, uint64_t *size);
/*
 * Opens, locks and sizes the image. On failure returns -errno and a reason in why (which
 * may point into d, so read it before d is reused).
 */
int disk_open(struct disk *d, const struct disk_open_args *a, const char **why);
/*
 * Opens the image again, takes the lock and puts the new open file in place of the old at
 * the same fd number (so the engine goes on using d->fd): a migration's destination, once
 * the source flushed and unlocked, sees the image as the source left it, even on a network
 * file system that only promises close-to-open consistency. 0 or -errno with why.
 */
int disk_reopen_locked(struct disk *d, const char **why);
/*
 * path (the image open at fd, by any name) opened once more with fd's access mode and its
 * O_DIRECT/O_DSYNC, close-on-exec and unlocked. The new descriptor, or -errno.
 */
int disk_open_like(int fd, const char *path);
/* Flushes what the guest wrote (an overlay's bitmap too), then closes. */
void disk_close(struct disk *d);
/* A FLUSH run now on the calling thread (before a snapshot, at exit). 0 or -errno. */
int disk_flush_now(struct disk *d);
/* Starts r; r->complete runs later on the loop thread (never inside disk_submit). */
void disk_submit(struct disk *d, struct disk_req *r);
/*
 * Between disk_plug and disk_unplug (nested), requests submitted are held and go to the
 * kernel together at the outermost unplug: one io_uring_enter, one worker wake-up, for
 * every request of a kick or of a batch of completions.
 */
void disk_plug(struct disk *d);
void disk_unplug(struct disk *d);
const char *disk_engine_name(const struct disk *d);
/*
 * Waits up to timeout_ms (0: just looks) for finished requests and runs their complete()
 * on the calling thread, as the event loop would. For a paused VM, whose loop no longer
 * serves the engine's fd: call it on the loop thread, or on another one while the loop is
 * paused, never while the loop may be running this disk's handler. Returns how many
 * requests completed (0 when none did in time) or -errno.
 */
int disk_poll(struct disk *d, int timeout_ms);

/* Engines (disk_uring.c, disk_threads.c); -ENOSYS when unavailable here. */
struct disk_engine_ops {
	const char *name;
	int (*init)(struct disk *d, struct loop *loop);
	void (*submit)(struct disk *d, struct disk_req *r);
	int (*poll)(struct disk *d, int timeout_ms);
	void (*fini)(struct disk *d);
	void (*unplug)(struct disk *d); /* hands the held requests over */
};
extern const struct disk_engine_ops disk_engine_uring, disk_engine_threads;
/*
 * io_uring for a qcow2 image: reads and writes that qcow2_place() finds a place for (its
 * own allocated clusters, a raw file below, zeros) go to the ring; the rest (allocating
 * writes, compressed clusters, an L2 table to read, discards, flushes) to a thread pool.
 */
extern const struct disk_engine_ops disk_engine_uring_qcow2;

/* Runs one request synchronously (thread-pool workers, and io_uring's fallback for hole punching). */
int disk_do_sync(struct disk *d, const struct disk_req *r);
/* One read or write of len bytes at off through buf, synchronously (tern img, commits). */
int disk_rw_sync(struct disk *d, enum disk_op op, void *buf, uint64_t off, uint64_t len);
/*
 * preadv/pwritev of len bytes of iov at off, to the end despite short transfers and
 * EINTR. Reads past the end of the file leave the rest of the buffers as they were.
 */
int disk_iov_rw(int fd, const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
		bool write);

#endif
