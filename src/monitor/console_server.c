/* The console socket (console_server.h). */
#include "monitor/console_server.h"
#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum client_mode { CLIENT_HANDSHAKE, CLIENT_RO, CLIENT_RW };

struct console_client {
	struct console_server *srv;
	struct console_client *next;
	int fd;
	enum client_mode mode;
	bool dead;
	bool in_eof;	      /* it shut down its sending side: nothing more to read */
	bool in_paused;	      /* rw, and the input buffer is full: not read until it drains */
	uint64_t deadline_ns; /* for the ATTACH line */
	char line[16];
	size_t line_len;
	uint8_t *buf; /* ring of CONSOLE_CLIENT_BUF bytes of output it has not taken yet */
	size_t head, len;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void watch(struct console_client *c)
{
	uint32_t ev = 0;

	if (!c->in_eof && !c->in_paused)
		ev |= EPOLLIN;
	if (c->len)
		ev |= EPOLLOUT;
	/* With no events, hang-ups and errors are still reported: a gone client is noticed. */
	loop_mod(c->srv->loop, c->fd, ev);
}

/* Marks c gone; console_server_reap() closes and frees it after this loop turn. */
static void end(struct console_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->srv->rw == c)
		c->srv->rw = NULL;
}

/*
 * A Unix stream socket closed with unread bytes makes the peer's next read fail with
 * ECONNRESET instead of EOF, even after what we sent last ("BUSY"): read them first.
 */
static void drain_close(int fd)
{
	char buf[4096];

	for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

/* A refusal: one line, sent while the socket buffer surely has room, then the end. */
static void refuse(struct console_client *c, const char *line)
{
	/* If even this does not fit, the client sees the close alone. */
	send(c->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	end(c);
}

/* Sends what the ring holds until the socket takes no more. */
static void flush(struct console_client *c)
{
	while (c->len) {
		struct iovec iov[2];
		size_t first = CONSOLE_CLIENT_BUF - c->head;
		iov[0] = (struct iovec){ c->buf + c->head, first < c->len ? first : c->len };
		iov[1] = (struct iovec){ c->buf, c->len - iov[0].iov_len };
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1 };
		ssize_t w = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				end(c);
			break;
		}
		c->head = (c->head + (size_t)w) % CONSOLE_CLIENT_BUF;
		c->len -= (size_t)w;
	}
	if (!c->dead)
		watch(c);
}

static void client_send(struct console_client *c, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (!c->len) {
		ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			end(c);
			return;
		}
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	if (!n)
		return;
	if (CONSOLE_CLIENT_BUF - c->len < n) {
		c->srv->note("console client %d is %zu bytes behind: disconnected", c->fd,
			     c->len + n);
		end(c);
		return;
	}
	if (!c->buf && !(c->buf = malloc(CONSOLE_CLIENT_BUF))) {
		c->srv->note("console client %d: out of memory: disconnected", c->fd);
		end(c);
		return;
	}
	bool was_empty = !c->len;
	size_t tail = (c->head + c->len) % CONSOLE_CLIENT_BUF;
	size_t first = CONSOLE_CLIENT_BUF - tail < n ? CONSOLE_CLIENT_BUF - tail : n;
	memcpy(c->buf + tail, p, first);
	memcpy(c->buf, p + first, n - first);
	c->len += n;
	if (was_empty)
		watch(c);
}

static void input_ready(void *opaque, uint32_t events);

/* Moves buffered input into PROGRAM's stdin, as much as the pipe takes. */
static void input_flush(struct console_server *s)
{
	while (s->input_len && s->input_fd >= 0) {
		ssize_t w = write(s->input_fd, s->input, s->input_len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			s->note("console input dropped: PROGRAM's stdin: %s", strerror(errno));
			if (s->input_watched)
				loop_del(s->loop, s->input_fd);
			s->input_watched = false;
			close(s->input_fd);
			s->input_fd = -1;
			break;
		}
		memmove(s->input, s->input + w, s->input_len - (size_t)w);
		s->input_len -= (size_t)w;
	}
	if (s->input_fd < 0)
		s->input_len = 0; /* nowhere to go */
	/* Watched only while something waits: an idle pipe would report its errors forever. */
	bool want = s->input_len && s->input_fd >= 0;
	if (want && !s->input_watched)
		s->input_watched = loop_add(s->loop, s->input_fd, EPOLLOUT, input_ready, s) == 0;
	else if (!want && s->input_watched) {
		loop_del(s->loop, s->input_fd);
		s->input_watched = false;
	}
	if (s->rw && s->rw->in_paused && s->input_len < CONSOLE_INPUT_BUF) {
		s->rw->in_paused = false;
		watch(s->rw);
	}
}

static void input_ready(void *opaque, uint32_t events)
{
	input_flush(opaque);
}

static void attach(struct console_client *c)
{
	struct console_server *s = c->srv;

	if (c->line_len && c->line[c->line_len - 1] == '\r')
		c->line_len--;
	c->line[c->line_len] = 0;
	if (!strcmp(c->line, "ATTACH rw")) {
		if (s->rw) {
			refuse(c, "BUSY\n");
			return;
		}
		c->mode = CLIENT_RW;
		s->rw = c;
	} else if (!strcmp(c->line, "ATTACH ro")) {
		c->mode = CLIENT_RO;
	} else {
		refuse(c, "ERROR expected ATTACH rw or ATTACH ro\n");
		return;
	}
	client_send(c, "OK\n", 3);
}

/* One recv's worth of c's bytes; false when there is nothing more to read now. */
static bool read_some(struct console_client *c)
{
	struct console_server *s = c->srv;
	char scratch[4096];
	ssize_t n;

	if (c->mode == CLIENT_HANDSHAKE) {
		/* Byte by byte: what follows the line is console input, not ours to take. */
		char ch;
		n = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (n == 1) {
			if (ch == '\n')
				attach(c);
			else if (c->line_len < sizeof(c->line) - 1)
				c->line[c->line_len++] = ch;
			else
				refuse(c, "ERROR expected ATTACH rw or ATTACH ro\n");
			return !c->dead;
		}
	} else if (c->mode == CLIENT_RW && s->input_fd >= 0) {
		size_t room = CONSOLE_INPUT_BUF - s->input_len;
		if (!room) {
			c->in_paused = true;
			watch(c);
			return false;
		}
		n = recv(c->fd, s->input + s->input_len, room, MSG_DONTWAIT);
		if (n > 0) {
			s->input_len += (size_t)n;
			input_flush(s);
			return !c->in_paused;
		}
	} else {
		n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0)
			return true;
	}
	if (n == 0) {
		c->in_eof = true;
		if (c->mode == CLIENT_HANDSHAKE)
			end(c);
		else
			watch(c);
		return false;
	}
	if (errno == EINTR)
		return true;
	if (errno != EAGAIN)
		end(c);
	return false;
}

static void on_client(void *opaque, uint32_t events)
{
	struct console_client *c = opaque;

	if (c->dead)
		return;
	if (events & EPOLLOUT)
		flush(c);
	/* Bounded: one chatty client must not hold the loop from the console's output. */
	for (int i = 0; i < 64 && !c->dead && !c->in_eof && !c->in_paused; i++)
		if (!read_some(c))
			break;
	/* Gone for good (both directions closed, or an error): what it still had is moot. */
	if (events & (EPOLLHUP | EPOLLERR))
		end(c);
}

static unsigned int live_clients(const struct console_server *s)
{
	unsigned int n = 0;

	for (const struct console_client *c = s->clients; c; c = c->next)
		n += !c->dead;
	return n;
}

/* Arms the timer for the earliest ATTACH deadline, or disarms it. */
static void arm_timer(struct console_server *s)
{
	uint64_t next = 0;
	struct itimerspec its = { 0 };

	for (const struct console_client *c = s->clients; c; c = c->next)
		if (!c->dead && c->mode == CLIENT_HANDSHAKE && (!next || c->deadline_ns < next))
			next = c->deadline_ns;
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000000ULL);
		its.it_value.tv_nsec = (long)(next % 1000000000ULL);
	}
	timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct console_server *s = opaque;
	uint64_t now = now_ns(), n;

	if (read(s->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	for (struct console_client *c = s->clients; c; c = c->next)
		if (!c->dead && c->mode == CLIENT_HANDSHAKE && c->deadline_ns <= now)
			refuse(c, "ERROR no ATTACH line in time\n");
	arm_timer(s);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct console_server *s = opaque;

	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				s->note("console socket: accept: %s", strerror(errno));
			return;
		}
		struct console_client *c = NULL;
		if (live_clients(s) < CONSOLE_MAX_CLIENTS)
			c = calloc(1, sizeof(*c));
		if (!c || loop_add(s->loop, fd, EPOLLIN, on_client, c) < 0) {
			send(fd, "BUSY\n", 5, MSG_DONTWAIT | MSG_NOSIGNAL);
			drain_close(fd);
			free(c);
			continue;
		}
		c->srv = s;
		c->fd = fd;
		c->deadline_ns = now_ns() + CONSOLE_HANDSHAKE_SECONDS * 1000000000ULL;
		c->next = s->clients;
		s->clients = c;
		arm_timer(s);
	}
}

/* A socket at path that still accepts connections belongs to a live process. */
static int check_stale(const char *path, const struct sockaddr_un *addr, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ?
			       0 :
			       fail_msg(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return fail_msg(err, errlen, -EEXIST, "%s exists and is not a socket", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail_msg(err, errlen, -errno, "socket: %s", strerror(errno));
	/* Non-blocking: a live server with a full backlog answers EAGAIN, not a wait. */
	int r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	int e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN)
		return fail_msg(err, errlen, -EADDRINUSE,
				"%s is served by a running process (another tern-monitor?)", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return fail_msg(err, errlen, -errno, "cannot remove the stale %s: %s", path,
				strerror(errno));
	return 0;
}

int console_server_open(struct console_server *s, struct loop *loop, const char *path,
			void (*note)(const char *fmt, ...), char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int r;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->note = note;
	s->listen_fd = s->timer_fd = s->input_fd = -1;
	if (strlen(path) >= sizeof(addr.sun_path))
		return fail_msg(err, errlen, -ENAMETOOLONG, "%s: longer than a socket path can be",
				path);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	r = check_stale(path, &addr, err, errlen);
	if (r)
		return r;
	s->path = strdup(path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!s->path || s->listen_fd < 0) {
		r = fail_msg(err, errlen, s->path ? -errno : -ENOMEM, "socket: %s",
			     strerror(s->path ? errno : ENOMEM));
		goto fail;
	}
	/* The umask makes the socket 0600 from birth: no window where others can connect. */
	mode_t old = umask(0177);
	r = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	int e = errno;
	umask(old);
	if (r < 0) {
		r = fail_msg(err, errlen, -e, "%s: %s", path, strerror(e));
		goto fail;
	}
	if (listen(s->listen_fd, CONSOLE_MAX_CLIENTS) < 0 ||
	    (r = loop_add(loop, s->listen_fd, EPOLLIN, on_accept, s)) < 0) {
		r = fail_msg(err, errlen, r < 0 ? r : -errno, "%s: %s", path,
			     strerror(r < 0 ? -r : errno));
		unlink(path);
		goto fail;
	}
	s->timer_fd = loop_add_timer(loop, 0, 0, on_timer, s, true);
	if (s->timer_fd < 0) {
		r = fail_msg(err, errlen, s->timer_fd, "timer: %s", strerror(-s->timer_fd));
		loop_del(loop, s->listen_fd);
		unlink(path);
		goto fail;
	}
	return 0;
fail:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->listen_fd = -1;
	free(s->path);
	s->path = NULL;
	return r;
}

void console_server_set_input(struct console_server *s, int fd)
{
	s->input_fd = fd;
}

void console_server_output(struct console_server *s, const void *buf, size_t n)
{
	for (struct console_client *c = s->clients; c; c = c->next)
		if (!c->dead && c->mode != CLIENT_HANDSHAKE)
			client_send(c, buf, n);
}

static void free_client(struct console_client *c)
{
	loop_del(c->srv->loop, c->fd);
	drain_close(c->fd);
	free(c->buf);
	free(c);
}

void console_server_reap(struct console_server *s)
{
	struct console_client **p = &s->clients;
	bool any = false;

	while (*p) {
		struct console_client *c = *p;
		if (c->dead) {
			*p = c->next;
			free_client(c);
			any = true;
		} else {
			p = &c->next;
		}
	}
	if (any)
		arm_timer(s);
}

/* Waits (poll) for clients with output left to take it, up to timeout_ms in all. */
static void final_flush(struct console_server *s, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		struct pollfd pfd[CONSOLE_MAX_CLIENTS];
		struct console_client *who[CONSOLE_MAX_CLIENTS];
		nfds_t n = 0;
		for (struct console_client *c = s->clients; c && n < CONSOLE_MAX_CLIENTS;
		     c = c->next) {
			if (!c->dead && c->len) {
				pfd[n] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
				who[n++] = c;
			}
		}
		uint64_t now = now_ns();
		if (!n || now >= deadline)
			return;
		int r = poll(pfd, n, (int)((deadline - now + 999999) / 1000000));
		if (r < 0 && errno != EINTR)
			return;
		for (nfds_t i = 0; r > 0 && i < n; i++) {
			if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
				end(who[i]);
			else if (pfd[i].revents & POLLOUT)
				flush(who[i]);
		}
	}
}

void console_server_close(struct console_server *s, int timeout_ms)
{
	final_flush(s, timeout_ms);
	for (struct console_client *c = s->clients; c; c = c->next)
		end(c);
	console_server_reap(s);
	if (s->input_watched)
		loop_del(s->loop, s->input_fd);
	if (s->input_fd >= 0)
		close(s->input_fd);
	s->input_fd = -1;
	if (s->timer_fd >= 0) {
		loop_del(s->loop, s->timer_fd);
		close(s->timer_fd);
	}
	if (s->listen_fd >= 0) {
		loop_del(s->loop, s->listen_fd);
		close(s->listen_fd);
		unlink(s->path);
	}
	free(s->path);
	s->path = NULL;
	s->listen_fd = s->timer_fd = -1;
}
