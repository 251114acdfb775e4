/* A minimal HTTP/1.1 client over a Unix socket, with one deadline per request. */
#include "daemon/vmm_client.h"

#include "core/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (1u << 20)

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events until the deadline; 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - ms_now();
		struct pollfd p = { .fd = fd, .events = events };
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Where the header section ends, and the body length it announces (-1: until close). */
static const char *headers_end(const char *buf, long *content_length)
{
	const char *end = strstr(buf, "\r\n\r\n"), *p;

	*content_length = -1;
	if (!end)
		return NULL;
	for (p = strstr(buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
		if (!strncasecmp(p + 2, "Content-Length:", 15))
			*content_length = strtol(p + 17, NULL, 10);
	return end + 4;
}

int vmm_request(const char *sock, const char *method, const char *path, const char *body,
		int timeout_ms, char **resp, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	long long deadline = ms_now() + timeout_ms;
	char head[512], *buf = NULL;
	size_t len = 0, blen = body ? strlen(body) : 0;
	long clen;
	int fd, r, status;

	if (resp)
		*resp = NULL;
	if (strlen(sock) >= sizeof(a.sun_path))
		return fail_msg(err, errlen, -ENAMETOOLONG, "%s: path too long", sock);
	strcpy(a.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail_msg(err, errlen, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		r = fail_msg(err, errlen, -errno, "%s: %s", sock, strerror(errno));
		goto out;
	}
	snprintf(head, sizeof(head),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
		 "close\r\n\r\n",
		 method, path, blen);
	for (int part = 0; part < 2; part++) {
		const char *p = part ? body : head;
		size_t n = part ? blen : strlen(head), off = 0;
		while (off < n) {
			ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
			if (w > 0) {
				off += (size_t)w;
				continue;
			}
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				r = fail_msg(err, errlen, -errno, "%s: %s", sock, strerror(errno));
				goto out;
			}
			if ((r = wait_fd(fd, POLLOUT, deadline))) {
				fail_msg(err, errlen, r, "%s: no room to send within %d ms", sock,
					 timeout_ms);
				goto out;
			}
		}
	}
	if (!(buf = malloc(MAX_RESPONSE + 1))) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		const char *bodyp;
		buf[len] = 0;
		if ((bodyp = headers_end(buf, &clen)) && clen >= 0 &&
		    len - (size_t)(bodyp - buf) >= (size_t)clen)
			break;
		if (len == MAX_RESPONSE) {
			r = fail_msg(err, errlen, -EPROTO, "%s: answer over %u bytes", sock,
				     MAX_RESPONSE);
			goto out;
		}
		ssize_t n = recv(fd, buf + len, MAX_RESPONSE - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			r = fail_msg(err, errlen, -errno, "%s: %s", sock, strerror(errno));
			goto out;
		}
		if ((r = wait_fd(fd, POLLIN, deadline))) {
			fail_msg(err, errlen, r, "%s: no answer to %s %s within %d ms", sock,
				 method, path, timeout_ms);
			goto out;
		}
	}
	buf[len] = 0;
	const char *bodyp = headers_end(buf, &clen);
	if (!bodyp || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		r = fail_msg(err, errlen, -EPROTO, "%s: the answer is not HTTP", sock);
		goto out;
	}
	if (resp) {
		size_t n = clen >= 0 ? (size_t)clen : len - (size_t)(bodyp - buf);
		if (!(*resp = strndup(bodyp, n))) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = status;
out:
	free(buf);
	close(fd);
	return r;
}
