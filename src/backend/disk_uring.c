/*
 * io_uring disk engine (Debian's liburing): reads, writes and fdatasync go to the
 * ring; completions wake the event loop through an eventfd registered with the ring.
 * Discard and write-zeroes are a hole punch (IORING_OP_FALLOCATE) on files; on
 * block devices they are ioctls, which io_uring cannot queue, so they run inline.
 *
 * The ring takes those operations and nothing else (IORING_REGISTER_RESTRICTIONS):
 * io_uring's work runs in the kernel, out of seccomp's reach, and its worker threads
 * (iou-wrk-*) carry whatever filter their creator had when the first one was made.
 */
#include "backend/disk.h"
#include "core/util.h"

#include <errno.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
	bool unsubmitted; /* prepared entries that wait for disk_unplug */
	/* Requests that found the submission queue full wait here. */
	struct disk_req *backlog, **backlog_tail;
	/* Requests completed synchronously, reported from the loop like the others. */
	struct disk_req *sync_done;
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
			io_uring_prep_read(sqe, d->fd, r->iov[0].iov_base,
					   (unsigned int)r->iov[0].iov_len, r->offset);
		else
			io_uring_prep_readv(sqe, d->fd, r->iov, (unsigned int)r->iovcnt, r->offset);
		break;
	case DISK_WRITE:
		if (r->iovcnt == 1)
			io_uring_prep_write(sqe, d->fd, r->iov[0].iov_base,
					    (unsigned int)r->iov[0].iov_len, r->offset);
		else
			io_uring_prep_writev(sqe, d->fd, r->iov, (unsigned int)r->iovcnt,
					     r->offset);
		break;
	case DISK_FLUSH:
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					r->offset, r->len);
		break;
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
			/* Short transfer (rare): redo it synchronously; same data, same offset. */
			res = disk_do_sync(d, r);
		} else if (res > 0) {
			res = 0;
		}
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
static int uring_poll(struct disk *d, int timeout_ms)
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
 * The ring, created disabled, accepts the operations prep() makes and no register
 * call once enabled (its eventfd is registered before). A kernel without restrictions
 * (before 5.10) refuses IORING_SETUP_R_DISABLED, and the disk falls back to threads.
 */
static int ring_open_restricted(struct io_uring *ring, int efd)
{
	static const unsigned char ops[] = {
		IORING_OP_READ,	  IORING_OP_READV, IORING_OP_WRITE,
		IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE
	};
	struct io_uring_restriction res[ARRAY_SIZE(ops)] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	int r = io_uring_queue_init(RING_DEPTH, ring, IORING_SETUP_R_DISABLED);
	if (r < 0)
		return r;
	if ((r = io_uring_register_eventfd(ring, efd)) < 0 ||
	    (r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, ARRAY_SIZE(res))) < 0 ||
	    (r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0) {
		io_uring_queue_exit(ring);
		return r;
	}
	return 0;
}

static int uring_init(struct disk *d, struct loop *loop)
{
	struct uring *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = u->efd < 0 ? -errno : ring_open_restricted(&u->ring, u->efd);
	if (r < 0) {
		if (u->efd >= 0)
			close(u->efd);
		free(u);
		return r;
	}
	u->loop = loop;
	pthread_mutex_init(&u->lock, NULL);
	u->backlog_tail = &u->backlog;
	if (loop_add(loop, u->efd, EPOLLIN | EPOLLET, on_ready, d) < 0) {
		close(u->efd);
		io_uring_queue_exit(&u->ring);
		free(u);
		return -ENOSYS;
	}
	d->engine_state = u;
	return 0;
}

static void uring_submit(struct disk *d, struct disk_req *r)
{
	struct uring *u = d->engine_state;

	r->next = NULL;
	pthread_mutex_lock(&u->lock);
	if (r->op == DISK_FAIL ||
	    (d->block_device && (r->op == DISK_DISCARD || r->op == DISK_WRITE_ZEROES))) {
		/*
		 * A refused request completes as it is; BLKDISCARD/BLKZEROOUT are ioctls,
		 * which io_uring 2.3 cannot queue.
		 */
		r->result = disk_do_sync(d, r);
		r->next = u->sync_done;
		u->sync_done = r;
		pthread_mutex_unlock(&u->lock);
		kick(u);
		return;
	}
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
			pthread_mutex_unlock(&u->lock);
			return;
		}
	}
	*u->backlog_tail = r;
	u->backlog_tail = &r->next;
	pthread_mutex_unlock(&u->lock);
}

static void uring_unplug(struct disk *d)
{
	struct uring *u = d->engine_state;

	pthread_mutex_lock(&u->lock);
	submit_prepared(u, d);
	pthread_mutex_unlock(&u->lock);
}

static void uring_fini(struct disk *d)
{
	struct uring *u = d->engine_state;

	loop_del(u->loop, u->efd);
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
