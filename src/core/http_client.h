/*
 * One HTTP/1.1 request and its whole answer over any byte stream, with one deadline:
 * tern-vmm's API socket (vmm_client.c), ternd's socket and ternd over TLS (tern).
 */
#ifndef TERN_CORE_HTTP_CLIENT_H
#define TERN_CORE_HTTP_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

/* The stream: each call waits at most timeout_ms (> 0). */
struct http_io {
	void *ctx;
	/* Bytes sent (> 0) or -errno (-ETIMEDOUT). */
	ssize_t (*send)(void *ctx, const void *buf, size_t n, int timeout_ms);
	/* Bytes received (> 0), 0 at the end of the stream, or -errno (-ETIMEDOUT). */
	ssize_t (*recv)(void *ctx, void *buf, size_t n, int timeout_ms);
	/* What the last failed call ran into, or NULL: strerror of its -errno says it. */
	const char *(*error)(void *ctx);
};

/*
 * Sends METHOD PATH with body (JSON text or NULL; "Connection: close") and reads the
 * answer until timeout_ms from now. Returns the HTTP status with the body in *resp
 * (malloc'd, NUL-terminated, "" when none; resp may be NULL), or -errno with err naming
 * peer and saying why (-ETIMEDOUT, -EPROTO for an answer that is not HTTP).
 */
int http_client_exchange(const struct http_io *io, const char *peer, const char *method,
			 const char *path, const char *body, int timeout_ms, char **resp, char *err,
			 size_t errlen);

#endif
