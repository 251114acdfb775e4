/* A minimal HTTP/1.1 client over a Unix socket, with one deadline per request. */
#include "daemon/vmm_client.h"

#include "core/http_client.h"
#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Waits up to timeout_ms for fd to be ready for events; 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, timeout_ms);

	if (r > 0)
		return 0;
	return r == 0 ? -ETIMEDOUT : errno == EINTR ? 0 : -errno;
}

/* A request's socket, and the descriptors that go with its first bytes. */
struct conn {
	int fd;
	const int *fds;
	unsigned int nfds;
};

/* send(), or for the first bytes of a request with descriptors sendmsg() with SCM_RIGHTS. */
static ssize_t send_some(struct conn *c, const void *buf, size_t n)
{
	if (!c->nfds)
		return send(c->fd, buf, n, MSG_NOSIGNAL);
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * VMM_REQUEST_MAX_FDS)];
	} ctl;
	struct iovec iov = { (void *)buf, n };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = &ctl,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * c->nfds) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int) * c->nfds);
	memcpy(CMSG_DATA(h), c->fds, sizeof(int) * c->nfds);
	ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	if (w > 0)
		c->nfds = 0; /* they went with the first byte */
	return w;
}

/* The socket is non-blocking: each call waits for it itself (http_io). */
static ssize_t fd_send(void *ctx, const void *buf, size_t n, int timeout_ms)
{
	struct conn *c = ctx;
	int fd = c->fd;

	for (;;) {
		ssize_t w = send_some(c, buf, n);
		int r;
		if (w >= 0)
			return w ? w : -EPIPE;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((r = wait_fd(fd, POLLOUT, timeout_ms)))
			return r;
	}
}

static ssize_t fd_recv(void *ctx, void *buf, size_t n, int timeout_ms)
{
	int fd = ((struct conn *)ctx)->fd;

	for (;;) {
		ssize_t got = recv(fd, buf, n, 0);
		int r;
		if (got >= 0)
			return got;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((r = wait_fd(fd, POLLIN, timeout_ms)))
			return r;
	}
}

int vmm_request(const char *sock, const char *method, const char *path, const char *body,
		int timeout_ms, char **resp, char *err, size_t errlen)
{
	return vmm_request_fds(sock, method, path, body, NULL, 0, timeout_ms, resp, err, errlen);
}

int vmm_request_fds(const char *sock, const char *method, const char *path, const char *body,
		    const int *fds, unsigned int nfds, int timeout_ms, char **resp, char *err,
		    size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct conn c = { -1, fds, nfds };
	int fd, r;
	struct http_io io = { .ctx = &c, .send = fd_send, .recv = fd_recv };

	if (resp)
		*resp = NULL;
	if (nfds > VMM_REQUEST_MAX_FDS)
		return fail_msg(err, errlen, -E2BIG, "at most %d descriptors go with a request",
				VMM_REQUEST_MAX_FDS);
	if (strlen(sock) >= sizeof(a.sun_path))
		return fail_msg(err, errlen, -ENAMETOOLONG, "%s: path too long", sock);
	strcpy(a.sun_path, sock);
	c.fd = fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail_msg(err, errlen, -errno, "socket: %s", strerror(errno));
	/* A Unix socket connects at once or not at all (EAGAIN: the backlog is full). */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		r = fail_msg(err, errlen, -errno, "%s: %s", sock, strerror(errno));
	else
		r = http_client_exchange(&io, sock, method, path, body, timeout_ms, resp, err,
					 errlen);
	close(fd);
	return r;
}
