/*
 * The API's Unix socket on the event loop. Every fd is non-blocking and each event does
 * at most one read or a write until the socket would block, so a slow or stalled client
 * never holds up the loop or the others. A connection either reads (EPOLLIN) or has
 * output pending (EPOLLOUT), never both: a client that pipelines requests without
 * reading the answers stops being read, which bounds what it can make us queue. A
 * periodic timer closes connections that made no progress for the idle timeout.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "core/log.h"
#include "core/loop.h"

#define LISTEN_BACKLOG 8
#define READ_CHUNK 8192

struct api_conn {
	struct http_server *s;
	int fd;
	struct http_conn *hc;
	uint64_t last_ms; /* last time bytes moved either way */
	uint32_t events;  /* what the loop watches now */
	bool closing;	  /* close once the output is written */
};

struct http_server {
	struct loop *loop;
	int fd, timer_fd;
	char *path;
	dev_t dev; /* the socket file we created, so destroy unlinks only that */
	ino_t ino;
	http_handler_fn fn;
	void *opaque;
	uint64_t idle_ms;
	bool accept_paused; /* out of fds: the timer retries */
	struct api_conn *conns[HTTP_MAX_CONNS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_close(struct api_conn *c, const char *why)
{
	struct http_server *s = c->s;

	log_debug("api: connection %d closed (%s)", c->fd, why);
	loop_del(s->loop, c->fd);
	close(c->fd);
	http_conn_free(c->hc);
	for (unsigned int i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	free(c);
}

/* Writes what the socket takes. -1: the peer is gone. */
static int conn_flush(struct api_conn *c)
{
	size_t len;
	const char *out = http_conn_output(c->hc, &len);

	while (len) {
		ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		http_conn_consume(c->hc, (size_t)n);
		c->last_ms = now_ms();
		out = http_conn_output(c->hc, &len);
	}
	return 0;
}

/* One read, fed to the protocol. -1: the connection is broken (reset). */
static int conn_read(struct api_conn *c)
{
	char buf[READ_CHUNK];
	/* Descriptors may come with the bytes (PUT /files): taken, the request gets them. */
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * HTTP_MAX_FDS)];
	} ctl;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)
	};
	ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned int k = (unsigned int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int got[HTTP_MAX_FDS];
		if (k > HTTP_MAX_FDS)
			k = HTTP_MAX_FDS; /* the control buffer holds no more */
		memcpy(got, CMSG_DATA(h), sizeof(int) * k);
		http_conn_add_fds(c->hc, got, k);
	}
	c->last_ms = now_ms();
	if (n == 0) {
		if (http_conn_eof(c->hc) < 0)
			log_debug("api: connection %d ended inside a request", c->fd);
		c->closing = true;
	} else if (http_conn_feed(c->hc, buf, (size_t)n) < 0) {
		c->closing = true;
	}
	return 0;
}

static void conn_event(void *opaque, uint32_t events)
{
	struct api_conn *c = opaque;
	size_t pending;

	/* Events can be stale (this fd was closed and its number reused): nothing blocks. */
	if (conn_flush(c) < 0) {
		conn_close(c, "peer gone");
		return;
	}
	http_conn_output(c->hc, &pending);
	if (!pending && !c->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		if (conn_read(c) < 0) {
			conn_close(c, "reset");
			return;
		}
		if (conn_flush(c) < 0) {
			conn_close(c, "peer gone");
			return;
		}
		http_conn_output(c->hc, &pending);
	}
	if (!pending && c->closing) {
		conn_close(c, "done");
		return;
	}
	uint32_t want = pending ? EPOLLOUT : EPOLLIN;
	if (want != c->events) {
		if (loop_mod(c->s->loop, c->fd, want) < 0) {
			conn_close(c, "cannot watch");
			return;
		}
		c->events = want;
	}
}

static void accept_one(struct http_server *s, int fd)
{
	unsigned int slot = HTTP_MAX_CONNS;

	for (unsigned int i = 0; i < HTTP_MAX_CONNS && slot == HTTP_MAX_CONNS; i++)
		if (!s->conns[i])
			slot = i;
	/* Accepted and dropped rather than left queued, so the backlog never fills up. */
	if (slot == HTTP_MAX_CONNS) {
		log_debug("api: %d connections open, refusing another", HTTP_MAX_CONNS);
		close(fd);
		return;
	}
	struct api_conn *c = calloc(1, sizeof(*c));
	if (c)
		c->hc = http_conn_new(s->fn, s->opaque);
	if (!c || !c->hc) {
		log_debug("api: no memory for a connection");
		free(c);
		close(fd);
		return;
	}
	c->s = s;
	c->fd = fd;
	c->last_ms = now_ms();
	c->events = EPOLLIN;
	int err = loop_add_service(s->loop, fd, EPOLLIN, conn_event, c);
	if (err < 0) {
		log_debug("api: cannot watch a connection: %s", strerror(-err));
		http_conn_free(c->hc);
		free(c);
		close(fd);
		return;
	}
	s->conns[slot] = c;
	log_debug("api: connection %d opened", fd);
}

static void on_listen(void *opaque, uint32_t events)
{
	struct http_server *s = opaque;

	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(s, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Level-triggered, the socket would wake us at once again: wait for the timer. */
			log_debug("api: cannot accept: %s", strerror(errno));
			if (loop_mod(s->loop, s->fd, 0) == 0)
				s->accept_paused = true;
		}
		return;
	}
}

static void on_timer(void *opaque, uint32_t events)
{
	struct http_server *s = opaque;
	uint64_t ticks, now = now_ms();

	if (read(s->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_debug("api: timer: %s", strerror(errno));
	if (s->accept_paused && loop_mod(s->loop, s->fd, EPOLLIN) == 0)
		s->accept_paused = false;
	for (unsigned int i = 0; i < HTTP_MAX_CONNS; i++) {
		struct api_conn *c = s->conns[i];
		if (c && now - c->last_ms >= s->idle_ms)
			conn_close(c, "idle timeout");
	}
}

static uint64_t idle_timeout_ms(void)
{
	const char *env = getenv("TERN_API_IDLE_MS");
	char *end;

	if (!env || !*env)
		return HTTP_IDLE_TIMEOUT_MS;
	/* Digits only: strtoull would take "-1" for a huge number. */
	if (*env >= '0' && *env <= '9') {
		errno = 0;
		unsigned long long v = strtoull(env, &end, 10);
		if (!errno && !*end && v > 0)
			return v;
	}
	log_warn("TERN_API_IDLE_MS=%s is not a positive number of milliseconds, ignored", env);
	return HTTP_IDLE_TIMEOUT_MS;
}

/* Removes a stale socket file at path; any other kind of file is left alone. */
static int clear_path(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "API socket %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "API socket %s: a file that is not a socket exists there",
			 path);
		return -EEXIST;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "API socket %s: cannot remove the old socket: %s", path,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

static int listen_on(struct http_server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	struct stat st;
	int ret;

	if (n == 0 || n >= sizeof(a.sun_path)) {
		snprintf(err, errlen,
			 "API socket path %s: %s (%zu bytes; a Unix socket path has at most %zu)",
			 n ? path : "\"\"", n ? "too long" : "empty", n, sizeof(a.sun_path) - 1);
		return n ? -ENAMETOOLONG : -EINVAL;
	}
	memcpy(a.sun_path, path, n);
	ret = clear_path(path, err, errlen);
	if (ret < 0)
		return ret;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "API socket: %s", strerror(errno));
		return ret;
	}
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "API socket %s: bind: %s", path, strerror(errno));
		return ret;
	}
	if (lstat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	if (listen(s->fd, LISTEN_BACKLOG) < 0) {
		ret = -errno;
		snprintf(err, errlen, "API socket %s: listen: %s", path, strerror(errno));
		unlink(path);
		return ret;
	}
	return 0;
}

int http_server_create(struct http_server **out, struct loop *loop, const char *path,
		       http_handler_fn fn, void *opaque, char *err, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof(*s));
	char dummy[1];
	int ret;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	*out = NULL;
	if (!s || !(s->path = strdup(path))) {
		free(s);
		snprintf(err, errlen, "API socket: out of memory");
		return -ENOMEM;
	}
	s->loop = loop;
	s->fn = fn;
	s->opaque = opaque;
	s->fd = s->timer_fd = -1;
	s->idle_ms = idle_timeout_ms();
	ret = listen_on(s, path, err, errlen);
	if (ret < 0)
		goto fail;
	ret = loop_add_service(loop, s->fd, EPOLLIN, on_listen, s);
	if (ret < 0) {
		snprintf(err, errlen, "API socket %s: cannot watch it: %s", path, strerror(-ret));
		goto fail_unlink;
	}
	/* A quarter of the timeout (at most 1 s): connections close within 25% of it. */
	uint64_t period_ms = s->idle_ms / 4 ? s->idle_ms / 4 : 1;
	if (period_ms > 1000)
		period_ms = 1000;
	s->timer_fd =
		loop_add_timer(loop, period_ms * 1000000, period_ms * 1000000, on_timer, s, true);
	if (s->timer_fd < 0) {
		ret = s->timer_fd;
		snprintf(err, errlen, "API socket %s: timer: %s", path, strerror(-ret));
		loop_del(loop, s->fd);
		goto fail_unlink;
	}
	log_debug("api: listening on %s (idle timeout %llu ms)", path,
		  (unsigned long long)s->idle_ms);
	*out = s;
	return 0;

fail_unlink:
	unlink(path);
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s);
	return ret;
}

void http_server_destroy(struct http_server *s)
{
	struct stat st;

	if (!s)
		return;
	for (unsigned int i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s->conns[i], "server stopped");
	loop_del(s->loop, s->timer_fd);
	close(s->timer_fd);
	loop_del(s->loop, s->fd);
	close(s->fd);
	/* Only our own socket file: another process may have taken the path since. */
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	free(s->path);
	free(s);
}
