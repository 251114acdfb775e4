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
};

struct loop {
	int epfd;
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

int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	for (unsigned int i = 0; i < LOOP_MAX_FDS; i++) {
		if (l->e[i].used)
			continue;
		struct epoll_event ev = { .events = events, .data.ptr = &l->e[i] };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		l->e[i] = (struct loop_entry){ fd, fn, opaque, true };
		return 0;
	}
	return -ENOSPC;
}

int loop_del(struct loop *l, int fd)
{
	for (unsigned int i = 0; i < LOOP_MAX_FDS; i++) {
		if (l->e[i].used && l->e[i].fd == fd) {
			l->e[i].used = false;
			return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
		}
	}
	return -ENOENT;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(l->epfd, ev, 32, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct loop_entry *e = ev[i].data.ptr;
		/* An earlier handler in this batch may have removed this one. */
		if (e->used)
			e->fn(e->opaque, ev[i].events);
	}
	return n;
}

int loop_add_timer(struct loop *l, uint64_t first_ns, uint64_t period_ns, loop_fn fn, void *opaque)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {
		.it_value = { (time_t)(first_ns / 1000000000), (long)(first_ns % 1000000000) },
		.it_interval = { (time_t)(period_ns / 1000000000), (long)(period_ns % 1000000000) },
	};

	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, 0, &its, NULL) < 0 || loop_add(l, fd, EPOLLIN, fn, opaque) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}
