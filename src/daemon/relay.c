/* A byte tunnel between a socket and a TLS connection, or two of either (relay.h). */
#include "daemon/relay.h"

#include "core/tls.h"
#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
/* A peer that takes nothing for this long is gone: tern-vmm's own stream timeouts are
 * longer, so the tunnel never ends a migration that tern-vmm would still wait for. */
#define WRITE_MS 60000

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int end_fd(const struct relay_end *e)
{
	return e->tls ? tls_fd(e->tls) : e->fd;
}

/* Bytes GnuTLS decrypted already: a poll would not report them. */
static bool end_buffered(struct relay_end *e)
{
	return e->tls && tls_pending(e->tls) > 0;
}

/* Without waiting: > 0 bytes, 0 at the end, -EAGAIN when none yet, or -errno. */
static ssize_t end_read(struct relay_end *e, void *buf, size_t n)
{
	ssize_t r;

	if (e->tls)
		return tls_read(e->tls, buf, n, 0);
	r = recv(e->fd, buf, n, MSG_DONTWAIT);
	if (r >= 0)
		return r;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
}

/* All n bytes within WRITE_MS, or -errno. */
static int end_write(struct relay_end *e, const char *p, size_t n)
{
	long long deadline = ms_now() + WRITE_MS;

	if (e->tls)
		return tls_write_all(e->tls, p, n, WRITE_MS);
	while (n) {
		ssize_t w = send(e->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		struct pollfd pf = { .fd = e->fd, .events = POLLOUT };
		long long left = deadline - ms_now();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static const char *why_of(struct relay_end *e, int r)
{
	const char *t = e->tls ? tls_error(e->tls) : NULL;

	return t && *t ? t : strerror(-r);
}

static void end_close(struct relay_end *e)
{
	if (e->tls)
		tls_close_linger(e->tls);
	else if (e->fd >= 0)
		close(e->fd);
	e->tls = NULL;
	e->fd = -1;
}

/* Moves what from has now to to. 1 moved (or nothing yet), 0 from closed, -errno failed. */
static int pump(struct relay_end *from, struct relay_end *to, char *buf, char *err, size_t errlen)
{
	ssize_t n = end_read(from, buf, CHUNK);
	int r;

	if (n == -EAGAIN)
		return 1;
	if (n == 0) {
		fail_msg(err, errlen, 0, "%s closed the stream", from->name);
		return 0;
	}
	if (n < 0)
		return fail_msg(err, errlen, (int)n, "reading from %s: %s", from->name,
				why_of(from, (int)n));
	from->bytes_in += (uint64_t)n;
	if (to->gone)
		return 1;
	/*
	 * A socket end that went away (a tern-vmm that ended: EPIPE) may still have sent
	 * bytes that are not through yet, its last ones: the tunnel goes on until it reads
	 * that end's close, and what comes for it meanwhile is dropped (a post-copy
	 * destination's last page requests, after the source sent every page).
	 */
	if ((r = end_write(to, buf, (size_t)n)) && !to->tls && (r == -EPIPE || r == -ECONNRESET)) {
		to->gone = true;
		return 1;
	}
	if (r)
		return fail_msg(err, errlen, r, "writing to %s: %s", to->name, why_of(to, r));
	return 1;
}

int relay_run(struct relay_end *a, struct relay_end *b, int idle_ms, int stop_fd, char *err,
	      size_t errlen)
{
	char *buf = malloc(CHUNK);
	int r = 1;

	if (!buf) {
		r = fail_msg(err, errlen, -ENOMEM, "out of memory for the tunnel");
		goto out;
	}
	while (r > 0) {
		struct pollfd p[3] = { { .fd = end_fd(a), .events = POLLIN },
				       { .fd = end_fd(b), .events = POLLIN },
				       { .fd = stop_fd, .events = POLLIN } };
		bool ready_a = end_buffered(a), ready_b = end_buffered(b);
		int n = poll(p, stop_fd >= 0 ? 3 : 2, ready_a || ready_b ? 0 : idle_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail_msg(err, errlen, -errno, "poll: %s", strerror(errno));
			break;
		}
		if (n == 0 && !ready_a && !ready_b) {
			r = fail_msg(err, errlen, -ETIMEDOUT,
				     "nothing moved between %s and %s for %d s", a->name, b->name,
				     idle_ms / 1000);
			break;
		}
		if (stop_fd >= 0 && p[2].revents) {
			r = fail_msg(err, errlen, -ECANCELED, "stopped");
			break;
		}
		if (ready_a || p[0].revents)
			r = pump(a, b, buf, err, errlen);
		if (r > 0 && (ready_b || p[1].revents))
			r = pump(b, a, buf, err, errlen);
	}
out:
	free(buf);
	end_close(a);
	end_close(b);
	return r;
}
