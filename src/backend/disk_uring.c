/*
 * io_uring disk engine (Debian's liburing): reads, writes and fdatasync go to the
 * ring; completions wake the event loop through an eventfd registered with the ring.
 * Discard and write-zeroes are a hole punch (IORING_OP_FALLOCATE) on files; on
 * block devices they are ioctls, which io_uring cannot queue, so they run inline.
 *
 * A qcow2 image (disk_engine_uring_qcow2) sends the ring what qcow2_place() finds one
 * place for, the cluster of its own or the raw file below where the bytes are, and
 * everything else to a thread pool of its own, which runs qcow2's code.
 *
 * The ring takes those operations and nothing else (IORING_REGISTER_RESTRICTIONS):
 * io_uring's work runs in the kernel, out of seccomp's reach, and its worker threads
 * (iou-wrk-*) carry whatever filter their creator had when the first one was made.
 */
#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING_DEPTH 256

struct uring {
	struct io_uring ring; /* its completion side: the loop thread's (or disk_poll's) */
	struct loop *loop;
	int efd;
	/*
	 * The submission side. A kick that exits instead of going through an ioeventfd
	 * starts requests on a vCPU thread (under the device's lock) while the loop thread
	 * reaps and submits what completions start (without it): this lock keeps the
	 * submission queue, the backlog and the synchronous completions whole.
	 */
	pthread_mutex_t lock;
	/*
	 * The image's file is registered with the ring (slot 0): requests on it skip the
	 * kernel's per-request file lookup and reference count. Not for a disk opened
	 * unlocked, whose file disk_reopen_locked() replaces under the same number later.
	 */
	bool fixed;
	bool unsubmitted; /* prepared entries that wait for disk_unplug */
	/* Requests that found the submission queue full wait here. */
	struct disk_req *backlog, **backlog_tail;
	/* Requests completed synchronously, reported from the loop like the others. */
	struct disk_req *sync_done;
	/*
	 * A qcow2 image's requests that the ring cannot take run on this disk's thread pool
	 * (its owner is the image's disk); slow_plugged: it holds them for the owner's unplug.
	 */
	bool has_slow, slow_plugged;
	struct disk slow;
};

static bool prep(struct uring *u, struct disk *d, struct disk_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe)
		return false;
	/* One buffer (most 4 KiB requests): the plain op, which skips importing an iovec. */
	switch (r->op) {
	case DISK_READ:
		if (r->iovcnt == 1)
			io_uring_prep_read(sqe, r->io_fd, r->iov[0].iov_base,
					   (unsigned int)r->iov[0].iov_len, r->io_off);
		else
			io_uring_prep_readv(sqe, r->io_fd, r->iov, (unsigned int)r->iovcnt,
					    r->io_off);
		break;
	case DISK_WRITE:
		if (r->iovcnt == 1)
			io_uring_prep_write(sqe, r->io_fd, r->iov[0].iov_base,
					    (unsigned int)r->iov[0].iov_len, r->io_off);
		else
			io_uring_prep_writev(sqe, r->io_fd, r->iov, (unsigned int)r->iovcnt,
					     r->io_off);
		break;
	case DISK_FLUSH:
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					r->offset, r->len);
		break;
	}
	/* Reads and writes, the many: a flush or a discard is not worth a second path. */
	if (u->fixed && sqe->fd == d->fd && (r->op == DISK_READ || r->op == DISK_WRITE)) {
		sqe->fd = 0;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	io_uring_sqe_set_data(sqe, r);
	return true;
}

static void kick(struct uring *u)
{
	uint64_t one = 1;

	if (write(u->efd, &one, sizeof(one)) < 0) {
		/* eventfd counters do not overflow at these rates */
	}
}

/* Hands what was prepared to the kernel, unless the disk is plugged. Lock held. */
static void submit_prepared(struct uring *u, struct disk *d)
{
	if (!u->unsubmitted || atomic_load(&d->plugged))
		return;
	u->unsubmitted = false;
	io_uring_submit(&u->ring);
}

/* Lock held. */
static void drain_backlog(struct uring *u, struct disk *d)
{
	while (u->backlog && prep(u, d, u->backlog)) {
		u->backlog = u->backlog->next;
		u->unsubmitted = true;
	}
	if (!u->backlog)
		u->backlog_tail = &u->backlog;
}

/* Runs every finished request's completion; returns how many. */
static int reap(struct disk *d)
{
	struct uring *u = d->engine_state;
	struct io_uring_cqe *cqe;
	int done = 0;

	/* What the completions start (the driver's next requests) goes in one submission. */
	disk_plug(d);
	pthread_mutex_lock(&u->lock);
	struct disk_req *sync = u->sync_done;
	u->sync_done = NULL;
	pthread_mutex_unlock(&u->lock);
	while (sync) {
		struct disk_req *r = sync;
		sync = r->next;
		r->complete(r);
		done++;
	}
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct disk_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		if (res >= 0 && (r->op == DISK_READ || r->op == DISK_WRITE) &&
		    (uint64_t)res < r->len) {
			/*
			 * Short transfer (rare; a qcow2 image's raw base shorter than it says):
			 * redo it synchronously, same data, same offset, through qcow2's code.
			 */
			res = disk_do_sync(d, r);
		} else if (res > 0) {
			res = 0;
		}
		if (d->qcow && r->op == DISK_WRITE)
			qcow2_placed_write_done(d->qcow);
		r->result = res;
		r->complete(r);
		done++;
	}
	pthread_mutex_lock(&u->lock);
	drain_backlog(u, d);
	pthread_mutex_unlock(&u->lock);
	if (done && d->batch_done)
		d->batch_done(d);
	disk_unplug(d);
	return done;
}

/*
 * The loop watches efd edge-triggered: every signal is an edge, and reap() takes every
 * completion there is, so the counter need not be read back (one system call fewer per
 * batch). It saturates rather than overflows, and disk_poll() below clears it.
 */
static void on_ready(void *opaque, uint32_t events)
{
	reap(opaque);
}

/* The ring signals efd for every completion (and kick() for inline ones): wait on it. */
static int ring_poll(struct disk *d, int timeout_ms)
{
	struct uring *u = d->engine_state;
	struct pollfd pfd = { .fd = u->efd, .events = POLLIN };
	uint64_t n;

	/* Level-triggered here: what the loop left in the counter is cleared first. */
	if (read(u->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&u->lock);
	bool sync = u->sync_done;
	pthread_mutex_unlock(&u->lock);
	if (io_uring_cq_ready(&u->ring) || sync)
		return reap(d);
	int k = poll(&pfd, 1, timeout_ms);
	if (k < 0)
		return errno == EINTR ? 0 : -errno;
	if (k && read(u->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return -errno;
	return k ? reap(d) : 0;
}

/* Debian's liburing 2.3 declares io_uring_register_restrictions() but does not export it. */
static int ring_register(struct io_uring *ring, unsigned int op, void *arg, unsigned int n)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/*
 * The file the ring registers: the image opened once more, through fd's /proc/self/fd
 * link (the same file, whatever its path now names) with the same access mode and
 * O_DIRECT/O_DSYNC, not the open file that holds the image's lock. The kernel tears a
 * ring down some time after its process is gone and lets go of the registered file only
 * then: a lock on it would outlive a killed tern-vmm (ternd's destroy, a qemu-img right
 * after a kill -9 were refused it). -1 when it cannot be opened (no /proc): the ring then
 * names the file by its number.
 */
static int ring_file(int fd)
{
	char link[64];
	struct stat a, b;
	int again;

	if (fstat(fd, &a))
		return -1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((again = disk_open_like(fd, link)) < 0)
		return -1;
	if (fstat(again, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(again);
		return -1;
	}
	return again;
}

/*
 * The ring, created disabled, accepts the operations prep() makes, with no SQE flag but
 * IOSQE_FIXED_FILE, and no register call once enabled but the unregistering of files
 * (its eventfd, and the image's file unless fd is -1, are registered before; *fixed says
 * whether the file was). A kernel without restrictions (before 5.10) refuses
 * IORING_SETUP_R_DISABLED, and the disk falls back to threads.
 */
static int ring_open_restricted(struct io_uring *ring, int efd, int fd, bool *fixed)
{
	static const unsigned char ops[] = {
		IORING_OP_READ,	  IORING_OP_READV, IORING_OP_WRITE,
		IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE
	};
	struct io_uring_restriction res[ARRAY_SIZE(ops) + 2] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	res[ARRAY_SIZE(ops)].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[ARRAY_SIZE(ops)].sqe_flags = IOSQE_FIXED_FILE;
	/* uring_fini() lets go of the file at once: its lock must not outlive disk_close(). */
	res[ARRAY_SIZE(ops) + 1].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[ARRAY_SIZE(ops) + 1].register_op = IORING_UNREGISTER_FILES;
	int r = io_uring_queue_init(RING_DEPTH, ring, IORING_SETUP_R_DISABLED);
	if (r < 0)
		return r;
	if ((r = io_uring_register_eventfd(ring, efd)) < 0)
		goto fail;
	/* Best effort: without it every request names the file by its number. */
	int rf = fd >= 0 ? ring_file(fd) : -1;
	*fixed = rf >= 0 && io_uring_register_files(ring, &rf, 1) == 0;
	if (rf >= 0)
		close(rf); /* the ring holds it now, or it was not wanted */
	if ((r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, ARRAY_SIZE(res))) < 0 ||
	    (r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0)
		goto fail;
	return 0;
fail:
	io_uring_queue_exit(ring);
	return r;
}

/* A qcow2 image's: the ring and the thread pool in turn, a millisecond at most each time. */
static int uring_poll(struct disk *d, int timeout_ms)
{
	struct uring *u = d->engine_state;

	if (!u->has_slow)
		return ring_poll(d, timeout_ms);
	for (int waited = 0;; waited++) {
		int a = disk_engine_threads.poll(&u->slow, 0);
		if (a < 0)
			return a;
		int b = ring_poll(d, a || waited >= timeout_ms ? 0 : 1);
		if (b < 0)
			return b;
		if (a + b || waited >= timeout_ms)
			return a + b;
	}
}

/* The thread pool for what a qcow2 image's ring cannot take: a disk of the same image. */
static int slow_init(struct uring *u, struct disk *d, struct loop *loop)
{
	memcpy(&u->slow, d, sizeof(*d));
	atomic_init(&u->slow.plugged, 0);
	u->slow.engine = &disk_engine_threads;
	u->slow.engine_state = NULL;
	u->slow.batch_done = NULL;
	u->slow.owner = d;
	int r = disk_engine_threads.init(&u->slow, loop);
	u->has_slow = r == 0;
	return r;
}

static int uring_init(struct disk *d, struct loop *loop)
{
	struct uring *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = u->efd < 0 ?
			-errno :
			ring_open_restricted(&u->ring, u->efd, d->unlocked ? -1 : d->fd, &u->fixed);
	if (r < 0) {
		if (u->efd >= 0)
			close(u->efd);
		free(u);
		return r;
	}
	u->loop = loop;
	pthread_mutex_init(&u->lock, NULL);
	u->backlog_tail = &u->backlog;
	if (d->qcow && (r = slow_init(u, d, loop)) < 0) {
		close(u->efd);
		io_uring_queue_exit(&u->ring);
		pthread_mutex_destroy(&u->lock);
		free(u);
		return r;
	}
	if (loop_add(loop, u->efd, EPOLLIN | EPOLLET, on_ready, d) < 0) {
		if (u->has_slow)
			disk_engine_threads.fini(&u->slow);
		close(u->efd);
		io_uring_queue_exit(&u->ring);
		pthread_mutex_destroy(&u->lock);
		free(u);
		return -ENOSYS;
	}
	d->engine_state = u;
	return 0;
}

static void to_ring(struct uring *u, struct disk *d, struct disk_req *r);

/* Lock held: r completes with its result from the loop, as if the kernel had run it. */
static void complete_inline(struct uring *u, struct disk_req *r)
{
	r->next = u->sync_done;
	u->sync_done = r;
}

static void uring_submit(struct disk *d, struct disk_req *r)
{
	struct uring *u = d->engine_state;

	r->next = NULL;
	r->io_fd = d->fd;
	r->io_off = r->offset;
	pthread_mutex_lock(&u->lock);
	if (r->op == DISK_FAIL ||
	    (d->block_device && (r->op == DISK_DISCARD || r->op == DISK_WRITE_ZEROES))) {
		/*
		 * A refused request completes as it is; BLKDISCARD/BLKZEROOUT are ioctls,
		 * which io_uring 2.3 cannot queue.
		 */
		r->result = disk_do_sync(d, r);
		complete_inline(u, r);
		pthread_mutex_unlock(&u->lock);
		kick(u);
		return;
	}
	to_ring(u, d, r);
	pthread_mutex_unlock(&u->lock);
}

/*
 * A qcow2 image's request: to the ring where qcow2_place() finds the bytes in one place,
 * else to the thread pool. cache=none writes always go to the pool: there a write is
 * durable when it completes, tables included, which qcow2_do_sync() sees to.
 */
static void qcow2_submit(struct disk *d, struct disk_req *r)
{
	struct uring *u = d->engine_state;
	struct qcow2_place p;
	int e = -EAGAIN;

	r->next = NULL;
	if (r->op == DISK_READ || (r->op == DISK_WRITE && !d->sync_writes))
		e = qcow2_place(d->qcow, r->op == DISK_WRITE, r->offset, r->len, &p);
	if (e == 0)
		atomic_fetch_add(&d->placed, 1);
	pthread_mutex_lock(&u->lock);
	if (e == -EAGAIN) {
		if (atomic_load(&d->plugged) && !u->slow_plugged) {
			u->slow_plugged = true;
			disk_plug(&u->slow);
		}
		pthread_mutex_unlock(&u->lock);
		disk_engine_threads.submit(&u->slow, r);
		return;
	}
	if (e == 0 && p.kind == QCOW2_PLACE_FILE) {
		r->io_fd = p.fd;
		r->io_off = p.off;
		to_ring(u, d, r);
		pthread_mutex_unlock(&u->lock);
		return;
	}
	if (e == 0)
		for (int i = 0; i < r->iovcnt; i++)
			memset(r->iov[i].iov_base, 0, r->iov[i].iov_len);
	r->result = e;
	complete_inline(u, r);
	pthread_mutex_unlock(&u->lock);
	kick(u);
}

/* Lock held: prepares r (io_fd and io_off set), or queues it when the ring is full. */
static void to_ring(struct uring *u, struct disk *d, struct disk_req *r)
{
	if (!u->backlog) {
		bool ok = prep(u, d, r);
		if (!ok && u->unsubmitted) {
			/* The submission queue is full of held entries: they go now, r after. */
			u->unsubmitted = false;
			io_uring_submit(&u->ring);
			ok = prep(u, d, r);
		}
		if (ok) {
			u->unsubmitted = true;
			submit_prepared(u, d);
			return;
		}
	}
	*u->backlog_tail = r;
	u->backlog_tail = &r->next;
}

static void uring_unplug(struct disk *d)
{
	struct uring *u = d->engine_state;

	pthread_mutex_lock(&u->lock);
	submit_prepared(u, d);
	bool slow = u->slow_plugged;
	u->slow_plugged = false;
	pthread_mutex_unlock(&u->lock);
	if (slow)
		disk_unplug(&u->slow);
}

static void uring_fini(struct disk *d)
{
	struct uring *u = d->engine_state;

	if (u->has_slow)
		disk_engine_threads.fini(&u->slow);

	loop_del(u->loop, u->efd);
	/*
	 * The ring's own teardown runs later in the kernel, and the registered file with it:
	 * until then the image would stay open, and locked against the next open of it.
	 */
	if (u->fixed)
		io_uring_unregister_files(&u->ring);
	io_uring_queue_exit(&u->ring);
	close(u->efd);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

const struct disk_engine_ops disk_engine_uring = {
	.name = "io_uring",
	.init = uring_init,
	.submit = uring_submit,
	.poll = uring_poll,
	.fini = uring_fini,
	.unplug = uring_unplug,
};

const struct disk_engine_ops disk_engine_uring_qcow2 = {
	.name = "io_uring+threads",
	.init = uring_init,
	.submit = qcow2_submit,
	.poll = uring_poll,
	.fini = uring_fini,
	.unplug = uring_unplug,
};
