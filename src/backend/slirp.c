/*
 * User-mode networking over libslirp. slirp is driven the way its API expects a poll()
 * loop to: fill (which fds, which events, how long) then poll (what happened). Its fds go
 * into a private epoll set, registered in the event loop as one fd, and its deadline and
 * timers into one timerfd; either wakes service(). slirp is single-threaded, so every call
 * into it holds mu. Frames slirp emits go to a bounded queue the device pulls from; when
 * the queue is full they are dropped, as libslirp allows (its TCP resends them).
 */
#include "backend/slirp.h"
#include "backend/slirp_ack.h"
#include "core/log.h"
#include "virtio/net_hdr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RING_FRAMES 256
#define RING_BYTES (4u << 20)
#define MAX_EVENTS 64

struct frame {
	uint8_t *data;
	size_t len;
};

struct stimer {
	SlirpTimerId id;
	SlirpTimerCb cb; /* set for timers made by timer_new (older libslirp) */
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
	struct stimer *next;
};

struct pollent {
	int fd;
	int events, revents; /* SLIRP_POLL_* */
};

struct slirp_be {
	struct net_backend be;
	Slirp *slirp;
	pthread_mutex_t mu;
	struct loop *loop;
	int epfd, timer_fd;
	/* The last fill: what slirp asked for, and which fds are in epfd because of it. */
	struct pollent *polls;
	unsigned int npolls, cap;
	int *watched;
	unsigned int nwatched, cap_watched;
	int64_t poll_deadline_ms; /* slirp's own timeout from the last fill; -1: none */
	struct stimer *timers;
	/* Frames for the guest. */
	struct frame ring[RING_FRAMES];
	unsigned int head, count;
	size_t bytes;
	unsigned long long dropped;
	uint8_t txbuf[NET_MAX_FRAME];
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * slirp's clock: monotonic time since the first user network of this process. slirp keeps
 * milliseconds in 32 bits; counting from here rather than from boot keeps them small.
 */
static int64_t clock_base_ns;

static int64_t now_ns(void)
{
	return mono_ns() - clock_base_ns;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* Arms the timerfd for the earliest of slirp's deadline and its timers (mu held). */
static void rearm(struct slirp_be *s)
{
	int64_t when = s->poll_deadline_ms;
	struct itimerspec its = { 0 };

	for (struct stimer *t = s->timers; t; t = t->next)
		if (t->expire_ms >= 0 && (when < 0 || t->expire_ms < when))
			when = t->expire_ms;
	if (when >= 0) {
		int64_t abs_ns = clock_base_ns + when * 1000000;
		if (abs_ns <= 0)
			abs_ns = 1; /* 0 would disarm */
		its.it_value.tv_sec = abs_ns / 1000000000;
		its.it_value.tv_nsec = abs_ns % 1000000000;
	}
	timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Makes the loop run service() soon: after guest input, slirp wants different fds. */
static void schedule(struct slirp_be *s)
{
	s->poll_deadline_ms = 0;
	rearm(s);
}

/* ---- callbacks from slirp (mu held: they run inside slirp calls) ---- */

/*
 * slirp acknowledges every segment the guest sends; a newer pure ACK of the same
 * connection, acknowledging more, makes an older one still waiting for the guest
 * redundant: it takes its place (slirp_ack.c), so the guest handles about one ACK per
 * batch of segments, not one per 1.5 KiB.
 */
static bool replaces_last_ack(struct slirp_be *s, const uint8_t *f, size_t len)
{
	if (!s->count)
		return false;
	struct frame *last = &s->ring[(s->head + s->count - 1) % RING_FRAMES];
	if (len != last->len || !slirp_ack_supersedes(f, len, last->data, last->len))
		return false;
	memcpy(last->data, f, len);
	return true;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_be *s = opaque;
	uint64_t one = 1;

	if (replaces_last_ack(s, buf, len))
		return (ssize_t)len;

	if (s->count == RING_FRAMES || s->bytes + len > RING_BYTES || len > NET_MAX_FRAME) {
		s->dropped++;
		return (ssize_t)len;
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		s->dropped++;
		return (ssize_t)len;
	}
	memcpy(copy, buf, len);
	s->ring[(s->head + s->count) % RING_FRAMES] = (struct frame){ copy, len };
	s->count++;
	s->bytes += len;
	if (write(s->be.poll_fd, &one, sizeof(one)) < 0)
		log_debug("user net: cannot signal a frame");
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	log_debug("user net: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return now_ns();
}

static struct stimer *timer_add(struct slirp_be *s)
{
	struct stimer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->expire_ms = -1;
	t->next = s->timers;
	s->timers = t;
	return t;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct stimer *t = timer_add(opaque);

	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct stimer *t = timer_add(opaque);

	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_be *s = opaque;

	for (struct stimer **p = &s->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = ((struct stimer *)timer)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct stimer *t = timer;

	if (!t)
		return;
	t->expire_ms = expire_ms < 0 ? 0 : expire_ms;
	rearm(opaque);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	/* Nothing: every service() asks slirp afresh which fds to watch. */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct slirp_be *s = opaque;

	/* slirp closes fd next: take it out of epfd while it still names that socket. */
	for (unsigned int i = 0; i < s->nwatched; i++) {
		if (s->watched[i] == fd) {
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
			s->watched[i] = s->watched[--s->nwatched];
			break;
		}
	}
	for (unsigned int i = 0; i < s->npolls; i++)
		if (s->polls[i].fd == fd)
			s->polls[i].fd = -1;
}

static void cb_notify(void *opaque)
{
	schedule(opaque);
}

static void cb_init_completed(Slirp *slirp, void *opaque)
{
}

static const SlirpCb callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.init_completed = cb_init_completed,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- fill / poll ---- */

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_be *s = opaque;

	if (s->npolls == s->cap) {
		unsigned int cap = s->cap ? 2 * s->cap : 32;
		struct pollent *p = realloc(s->polls, cap * sizeof(*p));
		if (!p)
			return -1; /* slirp then skips this fd this round */
		s->polls = p;
		s->cap = cap;
	}
	s->polls[s->npolls] = (struct pollent){ fd, events, 0 };
	return (int)s->npolls++;
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_be *s = opaque;

	if (idx < 0 || (unsigned int)idx >= s->npolls)
		return 0;
	return s->polls[idx].revents;
}

static uint32_t to_epoll(int ev)
{
	return (ev & SLIRP_POLL_IN ? EPOLLIN : 0) | (ev & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (ev & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int from_epoll(uint32_t ev)
{
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

static bool watch_add(struct slirp_be *s, int fd)
{
	if (s->nwatched == s->cap_watched) {
		unsigned int cap = s->cap_watched ? 2 * s->cap_watched : 32;
		int *w = realloc(s->watched, cap * sizeof(*w));
		if (!w)
			return false;
		s->watched = w;
		s->cap_watched = cap;
	}
	s->watched[s->nwatched++] = fd;
	return true;
}

/*
 * Puts exactly the fds of the last fill into epfd. Each is (re)registered every time: a
 * number slirp closed and reused since is a different socket, which MOD reports (ENOENT)
 * and ADD then registers.
 */
static void sync_epoll(struct slirp_be *s)
{
	unsigned int i, j;

	/* Drop the fds slirp no longer asks about. */
	for (i = 0; i < s->nwatched;) {
		for (j = 0; j < s->npolls; j++)
			if (s->polls[j].fd == s->watched[i])
				break;
		if (j < s->npolls) {
			i++;
			continue;
		}
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->watched[i], NULL);
		s->watched[i] = s->watched[--s->nwatched];
	}
	for (i = 0; i < s->npolls; i++) {
		int fd = s->polls[i].fd;
		uint32_t ev = 0;
		bool first = true;
		if (fd < 0)
			continue;
		for (j = 0; j < s->npolls; j++) {
			if (s->polls[j].fd != fd)
				continue;
			if (j < i)
				first = false;
			ev |= to_epoll(s->polls[j].events);
		}
		if (!first)
			continue;
		struct epoll_event e = { .events = ev, .data.fd = fd };
		if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &e) == 0)
			continue;
		if (errno == ENOENT && epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) == 0) {
			for (j = 0; j < s->nwatched && s->watched[j] != fd; j++)
				;
			if (j == s->nwatched && !watch_add(s, fd))
				epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
			continue;
		}
		log_debug("user net: cannot watch fd %d: %s", fd, strerror(errno));
	}
}

static void refill(struct slirp_be *s)
{
	uint32_t timeout = UINT32_MAX;

	s->npolls = 0;
	slirp_pollfds_fill(s->slirp, &timeout, add_poll, s);
	sync_epoll(s);
	s->poll_deadline_ms = timeout == UINT32_MAX ? -1 : now_ms() + timeout;
	rearm(s);
}

static void run_timers(struct slirp_be *s)
{
	int64_t now = now_ms();
	bool again = true;

	/* A callback may add, change or free timers: start over after each one. */
	while (again) {
		again = false;
		for (struct stimer *t = s->timers; t; t = t->next) {
			if (t->expire_ms < 0 || t->expire_ms > now)
				continue;
			t->expire_ms = -1;
			if (t->cb)
				t->cb(t->cb_opaque);
			else
				slirp_handle_timer(s->slirp, t->id, t->cb_opaque);
			again = true;
			break;
		}
	}
}

/* Tells slirp what happened to its fds and its timers, then asks what to watch next. */
static void service(struct slirp_be *s)
{
	struct epoll_event ev[MAX_EVENTS];
	int n;

	pthread_mutex_lock(&s->mu);
	for (unsigned int i = 0; i < s->npolls; i++)
		s->polls[i].revents = 0;
	n = epoll_wait(s->epfd, ev, MAX_EVENTS, 0);
	for (int k = 0; k < n; k++)
		for (unsigned int i = 0; i < s->npolls; i++)
			if (s->polls[i].fd == ev[k].data.fd)
				s->polls[i].revents |= from_epoll(ev[k].events);
	slirp_pollfds_poll(s->slirp, n < 0, get_revents, s);
	run_timers(s);
	refill(s);
	pthread_mutex_unlock(&s->mu);
}

static void on_sockets(void *opaque, uint32_t events)
{
	service(opaque);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct slirp_be *s = opaque;
	uint64_t v;

	if (read(s->timer_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	service(s);
}

/* ---- backend ops ---- */

static int be_send(struct net_backend *be, const struct iovec *iov, unsigned int n)
{
	struct slirp_be *s = (struct slirp_be *)be;
	size_t len = 0;

	pthread_mutex_lock(&s->mu);
	for (unsigned int i = 0; i < n; i++) {
		if (iov[i].iov_len > sizeof(s->txbuf) - len) {
			pthread_mutex_unlock(&s->mu);
			return -EMSGSIZE;
		}
		memcpy(s->txbuf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	slirp_input(s->slirp, s->txbuf, (int)len);
	schedule(s);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static ssize_t be_recv(struct net_backend *be, void *buf, size_t len)
{
	struct slirp_be *s = (struct slirp_be *)be;
	ssize_t r;
	uint64_t v;

	pthread_mutex_lock(&s->mu);
	if (!s->count) {
		/* Empty: reset the eventfd, so the next frame is a fresh wake-up. */
		if (read(s->be.poll_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("user net: cannot reset the frame signal");
		pthread_mutex_unlock(&s->mu);
		return -EAGAIN;
	}
	struct frame *f = &s->ring[s->head];
	if (f->len > len) {
		r = -EMSGSIZE;
	} else {
		memcpy(buf, f->data, f->len);
		r = (ssize_t)f->len;
	}
	s->bytes -= f->len;
	free(f->data);
	f->data = NULL;
	s->head = (s->head + 1) % RING_FRAMES;
	s->count--;
	pthread_mutex_unlock(&s->mu);
	return r;
}

static void be_close(struct net_backend *be)
{
	struct slirp_be *s = (struct slirp_be *)be;

	if (s->loop) {
		loop_del(s->loop, s->epfd);
		loop_del(s->loop, s->timer_fd);
	}
	if (s->slirp)
		slirp_cleanup(s->slirp);
	while (s->timers)
		cb_timer_free(s->timers, s);
	for (unsigned int i = 0; i < s->count; i++)
		free(s->ring[(s->head + i) % RING_FRAMES].data);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	if (s->be.poll_fd >= 0)
		close(s->be.poll_fd);
	free(s->polls);
	free(s->watched);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static const struct net_backend_ops slirp_ops = {
	.send = be_send,
	.recv = be_recv,
	.close = be_close,
};

unsigned long long slirp_backend_dropped(const struct net_backend *be)
{
	const struct slirp_be *s = (const struct slirp_be *)be;

	return s->dropped;
}

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

static struct in6_addr ip6(const char *s)
{
	struct in6_addr a;

	inet_pton(AF_INET6, s, &a);
	return a;
}

int slirp_backend_open(struct net_backend **out, const struct slirp_backend_opts *o,
		       struct loop *loop, char *err, size_t errlen)
{
	struct slirp_be *s = calloc(1, sizeof(*s));
	int r;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "user: out of memory");
		return -ENOMEM;
	}
	if (!clock_base_ns)
		clock_base_ns = mono_ns() - 1000000; /* slirp's clock starts at 1 ms, not 0 */
	pthread_mutex_init(&s->mu, NULL);
	s->be.ops = &slirp_ops;
	s->be.vnet_hdr = false;
	s->be.features = 0; /* no offloads: slirp wants whole, checksummed frames */
	snprintf(s->be.name, sizeof(s->be.name), "user");
	s->poll_deadline_ms = -1;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s->be.poll_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->timer_fd < 0 || s->be.poll_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "user: cannot create its file descriptors: %s", strerror(-r));
		goto fail;
	}
	if (o->mtu && (o->mtu < 68 || o->mtu > SLIRP_MTU_MAX)) {
		snprintf(err, errlen, "user: mtu=%u is not from 68 to %d", o->mtu, SLIRP_MTU_MAX);
		r = -EINVAL;
		goto fail;
	}
	SlirpConfig cfg = {
		.version = 4,
		.restricted = 0,
		.in_enabled = true,
		.vnetwork = ip4("10.0.2.0"),
		.vnetmask = ip4("255.255.255.0"),
		.vhost = ip4("10.0.2.2"),
		.in6_enabled = true,
		.vprefix_addr6 = ip6("fec0::"),
		.vprefix_len = 64,
		.vhost6 = ip6("fec0::2"),
		.vdhcp_start = ip4("10.0.2.15"),
		.vnameserver = ip4("10.0.2.3"),
		.vnameserver6 = ip6("fec0::3"),
		.if_mtu = o->mtu,
		.if_mru = o->mtu,
	};
	s->slirp = slirp_new(&cfg, &callbacks, s);
	if (!s->slirp) {
		snprintf(err, errlen, "user: libslirp refused its configuration");
		r = -EINVAL;
		goto fail;
	}
	/*
	 * slirp reads its clock only when polled; until then it stamps new sockets with time
	 * 0, and the first poll would expire them at once. Poll once before any input.
	 */
	pthread_mutex_lock(&s->mu);
	slirp_pollfds_poll(s->slirp, 0, get_revents, s);
	pthread_mutex_unlock(&s->mu);
	for (unsigned int i = 0; i < o->nhostfwd; i++) {
		const struct slirp_hostfwd *f = &o->hostfwd[i];
		struct in_addr guest = f->guest_addr;
		char host[INET_ADDRSTRLEN];
		if (!guest.s_addr)
			guest = cfg.vdhcp_start;
		inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
		errno = 0;
		if (slirp_add_hostfwd(s->slirp, f->udp, f->host_addr, f->host_port, guest,
				      f->guest_port) < 0) {
			int e = errno;
			snprintf(err, errlen, "user: hostfwd: cannot listen on %s %s:%u%s%s",
				 f->udp ? "udp" : "tcp", host, f->host_port, e ? ": " : "",
				 e ? strerror(e) : "");
			r = e ? -e : -EADDRINUSE;
			goto fail;
		}
		log_debug("user net: %s %s:%u -> guest port %u", f->udp ? "udp" : "tcp", host,
			  f->host_port, f->guest_port);
	}
	pthread_mutex_lock(&s->mu);
	refill(s);
	pthread_mutex_unlock(&s->mu);
	if ((r = loop_add(loop, s->epfd, EPOLLIN, on_sockets, s)))
		goto fail_loop;
	if ((r = loop_add(loop, s->timer_fd, EPOLLIN, on_timer, s))) {
		loop_del(loop, s->epfd);
		goto fail_loop;
	}
	s->loop = loop;
	*out = &s->be;
	return 0;
fail_loop:
	snprintf(err, errlen, "user: cannot watch its fds on the event loop: %s", strerror(-r));
fail:
	be_close(&s->be);
	return r;
}
