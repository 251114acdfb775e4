/*
 * The HTTP/1.1 layer of the control API (Firecracker's REST API over a Unix socket).
 *
 * http_conn_* is one connection's protocol state machine: bytes in, responses out, no
 * sockets and no event loop, so the unit tests and the fuzz harness drive it directly.
 * Parsing is libhttp_parser's; this layer adds the limits, keep-alive, Expect handling
 * and the response format. http_server_* owns the listening socket and runs the
 * connections on the event loop.
 *
 * Errors found by the layer itself are answered with Firecracker's error shape,
 * {"fault_message": "..."}, and close the connection: malformed HTTP 400, a body over
 * HTTP_MAX_BODY 413 (the excess is never buffered), a header section over
 * HTTP_MAX_HEADER_BYTES or more than HTTP_MAX_HEADERS headers 431, a version other
 * than HTTP/1.0 or HTTP/1.1 505.
 */
#ifndef TERN_API_HTTP_H
#define TERN_API_HTTP_H

#include <stddef.h>

#define HTTP_MAX_BODY 51200	   /* Firecracker's default API payload limit */
#define HTTP_MAX_HEADER_BYTES 8192 /* request line + all headers */
#define HTTP_MAX_HEADERS 32
#define HTTP_MAX_CONNS 16
#define HTTP_MAX_FDS 32 /* descriptors a connection holds for its next request */
/* A connection with a partial request (or idle keep-alive) is closed after this. */
#define HTTP_IDLE_TIMEOUT_MS 10000

enum http_method { HTTP_M_GET, HTTP_M_PUT, HTTP_M_PATCH, HTTP_M_OTHER };

struct http_request {
	enum http_method method;
	const char *method_name; /* as sent, e.g. "DELETE" */
	/* NUL-terminated URL path, query string removed, percent-decoding NOT applied */
	const char *path;
	const char *query; /* what follows '?' up to any '#', NUL-terminated; "" when none */
	const char *body;  /* NUL-terminated copy of the body ("" when none) */
	size_t body_len;
	/*
	 * Descriptors that came with the request (SCM_RIGHTS on a Unix socket). A handler
	 * that keeps one sets its slot to -1; the rest are closed after it returns.
	 */
	int *fds;
	unsigned int nfds;
};

struct http_response {
	/* 200, 204, 400, ...; left unset (0) or outside 200..599 it becomes a 500 */
	int status;
	char *body; /* malloc'd JSON text or NULL (no body); freed by the http layer */
};

/*
 * Fills resp for req; runs on the loop thread, from inside http_conn_feed. It must not
 * call http_conn_* on its own connection nor http_server_destroy.
 */
typedef void (*http_handler_fn)(void *opaque, const struct http_request *req,
				struct http_response *resp);

/* Pure per-connection state (used by http_server.c, the unit tests and the fuzz harness). */
struct http_conn;
struct http_conn *http_conn_new(http_handler_fn fn, void *opaque);
void http_conn_free(struct http_conn *c);
/*
 * Feeds received bytes; complete requests are handled and their responses appended to
 * the output buffer, in order. Returns 0, or -1 when the connection must be closed
 * after the output is flushed (protocol error, limit exceeded — an error response such
 * as 400/413/431 is already queued — or "Connection: close"). Once it has returned -1,
 * later input is ignored.
 */
int http_conn_feed(struct http_conn *c, const char *data, size_t len);
/*
 * Descriptors received with the bytes fed next (taken: closed when no request gets them,
 * those beyond HTTP_MAX_FDS at once). They go with the next request completed.
 */
void http_conn_add_fds(struct http_conn *c, const int *fds, unsigned int n);
/* Output waiting to be written, and how much of it was written. */
const char *http_conn_output(const struct http_conn *c, size_t *len);
void http_conn_consume(struct http_conn *c, size_t n);
/*
 * The peer closed its side (EOF); returns -1 if a request was cut short (then nothing
 * more to do). Either way no more input is processed; what is queued may still be sent.
 */
int http_conn_eof(struct http_conn *c);

struct loop;
struct http_server;
/*
 * Binds and listens on path (an existing socket file there is replaced; any other
 * existing file is refused with -EEXIST), watches it on loop (as a service fd: the API
 * keeps being served while the VM is paused). 0 or -errno; on error err says why.
 *
 * The idle timeout is HTTP_IDLE_TIMEOUT_MS, or the environment variable
 * TERN_API_IDLE_MS (milliseconds, read here once) when set to a positive number: tests
 * use it to see the timeout without waiting 10 s.
 */
int http_server_create(struct http_server **out, struct loop *loop, const char *path,
		       http_handler_fn fn, void *opaque, char *err, size_t errlen);
/* Closes every connection and the listening socket, unlinks path. Not from a handler. */
void http_server_destroy(struct http_server *s);

#endif
