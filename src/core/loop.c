/* epoll-based event loop. Registrations are heap entries so epoll can carry a pointer. */
#include "core/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_MAX_FDS 256

struct loop_entry {
	int fd;
	loop_fn fn;
	void *opaque;
	bool used;
	bool service; /* keeps running while the loop is paused */
	uint32_t events;
};

struct loop {
	int epfd;
	bool paused;
	struct loop_entry e[LOOP_MAX_FDS];
};

struct loop *loop_create(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

static int add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque, bool service)
{
	for (unsigned int i = 0; i < LOOP_MAX_FDS; i++) {
		if (l->e[i].used)
			continue;
		/* Added while paused: registered with no events, armed at resume. */
		bool armed = service || !l->paused;
		struct epoll_event ev = { .events = armed ? events : 0, .data.ptr = &l->e[i] };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		l->e[i] = (struct loop_entry){ fd, fn, opaque, true, service, events };
		return 0;
	}
	return -ENOSPC;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	return add(l, fd, events, fn, opaque, false);
}

int loop_add_service(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	return add(l, fd, events, fn, opaque, true);
}

static struct loop_entry *find(struct loop *l, int fd)
{
	for (unsigned int i = 0; i < LOOP_MAX_FDS; i++)
		if (l->e[i].used && l->e[i].fd == fd)
			return &l->e[i];
	return NULL;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	struct loop_entry *e = find(l, fd);

	if (!e)
		return -ENOENT;
	e->events = events;
	if (l->paused && !e->service)
		return 0; /* applied at resume */
	struct epoll_event ev = { .events = events, .data.ptr = e };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Pausing disarms every non-service fd (events 0) rather than removing it, so nothing is
 * lost: re-arming with EPOLL_CTL_MOD re-checks readiness, so edge-triggered fds that
 * became ready meanwhile are reported at resume.
 */
int loop_set_paused(struct loop *l, bool paused)
{
	int err = 0;

	if (l->paused == paused)
		return 0;
	l->paused = paused;
	for (unsigned int i = 0; i < LOOP_MAX_FDS; i++) {
		struct loop_entry *e = &l->e[i];
		if (!e->used || e->service)
			continue;
		struct epoll_event ev = { .events = paused ? 0 : e->events, .data.ptr = e };
		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, e->fd, &ev) < 0 && !err)
			err = -errno;
	}
	return err;
}

bool loop_paused(const struct loop *l)
{
	return l->paused;
}

int loop_del(struct loop *l, int fd)
{
	struct loop_entry *e = find(l, fd);

	if (!e)
		return -ENOENT;
	e->used = false;
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(l->epfd, ev, 32, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct loop_entry *e = ev[i].data.ptr;
		/* An earlier handler in this batch may have removed this one, or paused. */
		if (e->used && (e->service || !l->paused))
			e->fn(e->opaque, ev[i].events);
	}
	return n;
}

int loop_add_timer(struct loop *l, uint64_t first_ns, uint64_t period_ns, loop_fn fn, void *opaque,
		   bool service)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {
		.it_value = { (time_t)(first_ns / 1000000000), (long)(first_ns % 1000000000) },
		.it_interval = { (time_t)(period_ns / 1000000000), (long)(period_ns % 1000000000) },
	};

	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, 0, &its, NULL) < 0 ||
	    add(l, fd, EPOLLIN, fn, opaque, service) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
