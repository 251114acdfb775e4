/*
 * Thread-pool disk engine, for hosts without io_uring and for overlay and qcow2 images:
 * workers run requests with plain system calls; finished requests go back to the event
 * loop through an eventfd. The pool has MIN_WORKERS to MAX_WORKERS active workers (QEMU's
 * grows too): each is one request in flight, so a fixed four made a queue depth of 32 a
 * depth of four on a disk that takes 50 us a read. A worker that spent
 * disk_threads_slow_ns or more on a request while others wait wakes a parked worker, or
 * asks the event loop's thread (grow_fd) to start one: a vCPU thread's or a worker's
 * seccomp list has no clone. One such worker is on its way at a time. A worker whose
 * request was quick parks itself while more than MIN_WORKERS are active: what the page cache answers in microseconds is the CPUs'
 * work, and 32 threads would only queue on the pool's lock (0.09 of the host's io_uring
 * for cached random reads, against 0.24 with four).
 *
 * A small read of a raw image that the page cache holds does not go to a worker at all:
 * the submitting thread tries preadv2(RWF_NOWAIT), which copies what is cached or fails
 * at once with EAGAIN without waiting for the disk, and only a miss is queued. The copy of
 * 4 KiB costs less than waking a worker and switching to it, which is all a cached read
 * spent its time on. The completion still runs on the loop thread, as every engine's.
 * tmpfs refuses RWF_NOWAIT (EOPNOTSUPP, still in Linux 6.18), but its files are memory:
 * a read of one is a copy, made on the submitting thread without the flag, as io_uring's
 * own first try makes it (only a page swapped out could make that thread wait).
 */
#include "backend/disk.h"
#include "core/util.h"
#include "jail/seccomp.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>
#include <unistd.h>

#define MIN_WORKERS 4
#define MAX_WORKERS 32
/*
 * Reads up to this size are tried on the submitting thread. Larger ones stay with the
 * workers, which copy them in parallel instead of holding a vCPU or the loop meanwhile.
 */
#define NOWAIT_MAX_LEN (64 * 1024)
/* After a miss, up to this many reads skip the try (doubling per miss, reset by a hit). */
#define NOWAIT_BACKOFF_MAX 64

uint64_t disk_threads_slow_ns = 50000;

struct pool {
	struct disk *disk;
	struct loop *loop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct disk_req *todo, **todo_tail;
	struct disk_req *done;
	unsigned int held;    /* queued while the disk was plugged, no worker woken yet */
	unsigned int parked;  /* workers waiting on unpark, not on requests */
	unsigned int unparks; /* parked workers told to come back, not yet back */
	pthread_cond_t unpark;
	int done_fd;
	int grow_fd; /* a worker asks the loop for one more worker */
	/*
	 * One was asked for and has not started yet: set with the ask, cleared when that
	 * worker first runs or when the loop could not start it. The first MIN_WORKERS
	 * are not asked for and do not count.
	 */
	bool coming;
	bool stop;
	/*
	 * The page-cache try: nowait_off once the file refused RWF_NOWAIT; after misses,
	 * nowait_skip more reads go straight to the workers. Hints, so relaxed atomics.
	 */
	_Atomic bool nowait_off;
	/* tmpfs: the file is memory; its reads are tried without RWF_NOWAIT (above). */
	bool in_memory;
	_Atomic unsigned int nowait_skip, nowait_backoff;
	unsigned int nthreads; /* thread[0..nthreads) started; only grows until fini */
	pthread_t thread[MAX_WORKERS];
};

static void *worker_run(struct pool *p, bool asked_for);

static void *worker_enter(void *arg)
{
	seccomp_enter_or_die(SECCOMP_IO);
	return worker_run(arg, false);
}

static void *grown_enter(void *arg)
{
	seccomp_enter_or_die(SECCOMP_IO);
	return worker_run(arg, true);
}

/* Starts one worker (one a worker asked for: asked_for); with the lock held. */
static int start_worker(struct pool *p, bool asked_for)
{
	int r = pthread_create(&p->thread[p->nthreads], NULL,
			       asked_for ? grown_enter : worker_enter, p);

	if (r)
		return -r;
	p->nthreads++;
	return 0;
}

/* On the loop's thread: one more worker, as a worker asked (unless the pool is full). */
static void on_grow(void *opaque, uint32_t events)
{
	struct pool *p = opaque;
	uint64_t n;

	if (read(p->grow_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&p->lock);
	/* If one cannot start (RLIMIT_NPROC, memory) the pool stays as it is. */
	if (p->nthreads >= MAX_WORKERS || p->stop || start_worker(p, true))
		p->coming = false;
	pthread_mutex_unlock(&p->lock);
}

/*
 * With the lock held, by a worker that spent took_ns on a request. A slow one while more
 * wait: one more active worker, a parked one if there is one, else a new one from the
 * loop (one at a time: not while the last one asked for has yet to run). A quick one:
 * this worker parks if more than MIN_WORKERS are active, until a slow request brings it
 * back or the pool stops.
 */
static void adapt(struct pool *p, uint64_t took_ns)
{
	uint64_t one = 1;

	if (took_ns >= disk_threads_slow_ns) {
		if (!p->todo)
			return;
		if (p->parked > p->unparks) {
			p->unparks++;
			pthread_cond_signal(&p->unpark);
		} else if (!p->coming && p->nthreads < MAX_WORKERS &&
			   write(p->grow_fd, &one, sizeof(one)) > 0) {
			p->coming = true;
		}
		return;
	}
	if (p->nthreads - p->parked <= MIN_WORKERS)
		return;
	p->parked++;
	while (!p->unparks && !p->stop)
		pthread_cond_wait(&p->unpark, &p->lock);
	if (p->unparks)
		p->unparks--;
	p->parked--;
}

/* A finished request goes on the done list for the loop's reap(); with the lock held. */
static void hand_back(struct pool *p, struct disk_req *r)
{
	uint64_t one = 1;

	r->next = p->done;
	p->done = r;
	/*
	 * Only the first of a batch wakes the loop: reap() takes the whole list after reading
	 * the eventfd, so a request added to a non-empty list is seen with it.
	 */
	if (!r->next && write(p->done_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; the loop still drains done. */
	}
}

static void *worker_run(struct pool *p, bool asked_for)
{
	pthread_setname_np(pthread_self(), "disk-io");
	pthread_mutex_lock(&p->lock);
	if (asked_for)
		p->coming = false;
	for (;;) {
		while (!p->todo && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		struct disk_req *r = p->todo;
		p->todo = r->next;
		if (!p->todo)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->lock);
		uint64_t t0 = monotonic_ns();
		r->result = disk_do_sync(p->disk, r);
		uint64_t took = monotonic_ns() - t0;
		pthread_mutex_lock(&p->lock);
		hand_back(p, r);
		adapt(p, took);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Runs the completions the workers handed back; returns how many. */
static int reap(struct pool *p)
{
	uint64_t n;
	int done = 0;

	if (read(p->done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return 0;
	pthread_mutex_lock(&p->lock);
	struct disk_req *list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->lock);
	struct disk *o = p->disk->owner ? p->disk->owner : p->disk;

	/* What the completions start (the driver's next requests) wakes the workers once. */
	disk_plug(o);
	while (list) {
		struct disk_req *r = list;
		list = r->next;
		r->complete(r);
		done++;
	}
	if (done && o->batch_done)
		o->batch_done(o);
	disk_unplug(o);
	return done;
}

static void on_done(void *opaque, uint32_t events)
{
	reap(opaque);
}

/* Workers write done_fd after each request they finish: wait on it. */
static int threads_poll(struct disk *d, int timeout_ms)
{
	struct pool *p = d->engine_state;
	struct pollfd pfd = { .fd = p->done_fd, .events = POLLIN };
	int n = poll(&pfd, 1, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n ? reap(p) : 0;
}

/* Stops the workers (joining every one started) and frees what threads_init made. */
static void pool_free(struct pool *p)
{
	/* Once stop is set no worker starts (on_grow): nthreads is final. */
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_cond_broadcast(&p->unpark);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->thread[i], NULL);
	for (int i = 0; i < 2; i++) {
		int fd = i ? p->grow_fd : p->done_fd;
		if (fd >= 0) {
			loop_del(p->loop, fd);
			close(fd);
		}
	}
	free(p);
}

static int threads_init(struct disk *d, struct loop *loop)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->disk = d;
	p->loop = loop;
	p->todo_tail = &p->todo;
	struct statfs fs;
	p->in_memory = fstatfs(d->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_cond_init(&p->unpark, NULL);
	p->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->grow_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = p->done_fd < 0 || p->grow_fd < 0 ? -EIO : 0;
	if (!r && loop_add(loop, p->done_fd, EPOLLIN, on_done, p) < 0) {
		close(p->done_fd);
		p->done_fd = -1;
		r = -EIO;
	}
	if (!r && loop_add(loop, p->grow_fd, EPOLLIN, on_grow, p) < 0) {
		close(p->grow_fd);
		p->grow_fd = -1;
		r = -EIO;
	}
	pthread_mutex_lock(&p->lock);
	for (int i = 0; !r && i < MIN_WORKERS; i++)
		r = start_worker(p, false);
	pthread_mutex_unlock(&p->lock);
	if (r) {
		pool_free(p); /* closes what was opened and stops the workers already running */
		return r;
	}
	d->engine_state = p;
	return 0;
}

/* Does r qualify for the page-cache try, now? */
static bool nowait_wanted(struct pool *p, const struct disk *d, const struct disk_req *r)
{
	if (r->op != DISK_READ || d->ovl || d->qcow || d->direct || r->len > NOWAIT_MAX_LEN ||
	    atomic_load_explicit(&p->nowait_off, memory_order_relaxed))
		return false;
	unsigned int skip = atomic_load_explicit(&p->nowait_skip, memory_order_relaxed);
	if (!skip)
		return true;
	atomic_store_explicit(&p->nowait_skip, skip - 1, memory_order_relaxed);
	return false;
}

/*
 * Reads r at once if the page cache holds all of it: true when r is done (result 0) and
 * only its completion is left. A partial or refused read is dropped (nothing has reached
 * the disk) and the whole request goes to a worker.
 */
static bool read_nowait(struct pool *p, struct disk *d, struct disk_req *r)
{
	ssize_t k;

	do
		k = preadv2(d->fd, r->iov, r->iovcnt, (off_t)r->offset,
			    p->in_memory ? 0 : RWF_NOWAIT);
	while (k < 0 && errno == EINTR);
	if (k >= 0 && (uint64_t)k == r->len) {
		atomic_store_explicit(&p->nowait_backoff, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&d->nowait_reads, 1, memory_order_relaxed);
		r->result = 0;
		return true;
	}
	if (k < 0 && errno != EAGAIN) {
		/* EOPNOTSUPP (a file system without it), EINVAL (an old kernel): never again. */
		atomic_store_explicit(&p->nowait_off, true, memory_order_relaxed);
		return false;
	}
	unsigned int b = atomic_load_explicit(&p->nowait_backoff, memory_order_relaxed);
	b = b ? (b * 2 > NOWAIT_BACKOFF_MAX ? NOWAIT_BACKOFF_MAX : b * 2) : 1;
	atomic_store_explicit(&p->nowait_backoff, b, memory_order_relaxed);
	atomic_store_explicit(&p->nowait_skip, b, memory_order_relaxed);
	return false;
}

static void threads_submit(struct disk *d, struct disk_req *r)
{
	struct pool *p = d->engine_state;

	if (nowait_wanted(p, d, r) && read_nowait(p, d, r)) {
		pthread_mutex_lock(&p->lock);
		hand_back(p, r);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_lock(&p->lock);
	r->next = NULL;
	*p->todo_tail = r;
	p->todo_tail = &r->next;
	if (atomic_load(&d->plugged))
		p->held++;
	else
		pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void threads_unplug(struct disk *d)
{
	struct pool *p = d->engine_state;

	pthread_mutex_lock(&p->lock);
	if (p->held > 1)
		pthread_cond_broadcast(&p->cond);
	else if (p->held)
		pthread_cond_signal(&p->cond);
	p->held = 0;
	pthread_mutex_unlock(&p->lock);
}

static void threads_fini(struct disk *d)
{
	pool_free(d->engine_state);
}

const struct disk_engine_ops disk_engine_threads = {
	.name = "threads",
	.init = threads_init,
	.submit = threads_submit,
	.poll = threads_poll,
	.fini = threads_fini,
	.unplug = threads_unplug,
};
