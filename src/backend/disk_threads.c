/*
 * Thread-pool disk engine, for hosts without io_uring: workers run requests with
 * plain system calls; finished requests go back to the event loop through an eventfd.
 */
#include "backend/disk.h"
#include "jail/seccomp.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WORKERS 4

struct pool {
	struct disk *disk;
	struct loop *loop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct disk_req *todo, **todo_tail;
	struct disk_req *done;
	unsigned int held; /* queued while the disk was plugged, no worker woken yet */
	int done_fd;
	bool stop;
	pthread_t thread[WORKERS];
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	pthread_setname_np(pthread_self(), "disk-io");
	seccomp_enter_or_die(SECCOMP_IO);
	pthread_mutex_lock(&p->lock);
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
		r->result = disk_do_sync(p->disk, r);
		pthread_mutex_lock(&p->lock);
		r->next = p->done;
		p->done = r;
		/*
		 * Only the first of a batch wakes the loop: reap() takes the whole list after
		 * reading the eventfd, so a request added to a non-empty list is seen with it.
		 */
		uint64_t one = 1;
		if (!r->next && write(p->done_fd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow in practice; the loop still drains done. */
		}
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
	/* What the completions start (the driver's next requests) wakes the workers once. */
	disk_plug(p->disk);
	while (list) {
		struct disk_req *r = list;
		list = r->next;
		r->complete(r);
		done++;
	}
	if (done && p->disk->batch_done)
		p->disk->batch_done(p->disk);
	disk_unplug(p->disk);
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

static int threads_init(struct disk *d, struct loop *loop)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->disk = d;
	p->loop = loop;
	p->todo_tail = &p->todo;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->done_fd < 0 || loop_add(loop, p->done_fd, EPOLLIN, on_done, p) < 0) {
		if (p->done_fd >= 0)
			close(p->done_fd);
		free(p);
		return -EIO;
	}
	for (int i = 0; i < WORKERS; i++) {
		if (pthread_create(&p->thread[i], NULL, worker, p)) {
			/* Stop the workers already running and undo everything. */
			pthread_mutex_lock(&p->lock);
			p->stop = true;
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			for (int j = 0; j < i; j++)
				pthread_join(p->thread[j], NULL);
			loop_del(loop, p->done_fd);
			close(p->done_fd);
			free(p);
			return -EAGAIN;
		}
	}
	d->engine_state = p;
	return 0;
}

static void threads_submit(struct disk *d, struct disk_req *r)
{
	struct pool *p = d->engine_state;

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
	struct pool *p = d->engine_state;

	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(p->thread[i], NULL);
	loop_del(p->loop, p->done_fd);
	close(p->done_fd);
	free(p);
}

const struct disk_engine_ops disk_engine_threads = {
	.name = "threads",
	.init = threads_init,
	.submit = threads_submit,
	.poll = threads_poll,
	.fini = threads_fini,
	.unplug = threads_unplug,
};
