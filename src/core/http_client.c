/* One HTTP/1.1 exchange over a byte stream (http_client.h), moved out of vmm_client.c. */
#include "core/http_client.h"

#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RESPONSE (1u << 20)

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
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

static int io_failed(const struct http_io *io, const char *peer, int r, char *err, size_t errlen)
{
	const char *why = io->error ? io->error(io->ctx) : NULL;

	if (why && *why)
		return fail_msg(err, errlen, r, "%s", why);
	return fail_msg(err, errlen, r, "%s: %s", peer, strerror(-r));
}

int http_client_exchange(const struct http_io *io, const char *peer, const char *method,
			 const char *path, const char *body, int timeout_ms, char **resp, char *err,
			 size_t errlen)
{
	long long deadline = ms_now() + timeout_ms;
	char head[512], *buf = NULL;
	size_t len = 0, blen = body ? strlen(body) : 0;
	long clen;
	int r, status;

	if (resp)
		*resp = NULL;
	snprintf(head, sizeof(head),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
		 "close\r\n\r\n",
		 method, path, blen);
	for (int part = 0; part < 2; part++) {
		const char *p = part ? body : head;
		size_t n = part ? blen : strlen(head), off = 0;
		while (off < n) {
			long long left = deadline - ms_now();
			ssize_t w = left > 0 ? io->send(io->ctx, p + off, n - off, (int)left) :
					       -ETIMEDOUT;
			if (w > 0) {
				off += (size_t)w;
				continue;
			}
			if (w == -ETIMEDOUT)
				return fail_msg(err, errlen, -ETIMEDOUT,
						"%s: no room to send within %d ms", peer,
						timeout_ms);
			return io_failed(io, peer, w ? (int)w : -EPIPE, err, errlen);
		}
	}
	if (!(buf = malloc(MAX_RESPONSE + 1)))
		return -ENOMEM;
	for (;;) {
		const char *bodyp;
		buf[len] = 0;
		if ((bodyp = headers_end(buf, &clen)) && clen >= 0 &&
		    len - (size_t)(bodyp - buf) >= (size_t)clen)
			break;
		if (len == MAX_RESPONSE) {
			r = fail_msg(err, errlen, -EPROTO, "%s: answer over %u bytes", peer,
				     MAX_RESPONSE);
			goto out;
		}
		long long left = deadline - ms_now();
		ssize_t n = left > 0 ? io->recv(io->ctx, buf + len, MAX_RESPONSE - len, (int)left) :
				       -ETIMEDOUT;
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (n == -ETIMEDOUT)
			r = fail_msg(err, errlen, -ETIMEDOUT, "%s: no answer to %s %s within %d ms",
				     peer, method, path, timeout_ms);
		else
			r = io_failed(io, peer, (int)n, err, errlen);
		goto out;
	}
	buf[len] = 0;
	const char *bodyp = headers_end(buf, &clen);
	if (!bodyp || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		r = fail_msg(err, errlen, -EPROTO, "%s: the answer is not HTTP", peer);
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
	return r;
}
