/*
 * One HTTP/1.1 connection as a state machine over libhttp_parser's callbacks. Nothing
 * is buffered raw: the parser streams, and only the URL (bounded by the header limit),
 * the body (bounded by HTTP_MAX_BODY) and the start of the Expect header are kept, so
 * a connection holds at most about HTTP_MAX_HEADER_BYTES + HTTP_MAX_BODY of input.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* http_parser.h has an enum http_method of its own: rename that tag here so both fit. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#include "api/http.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define MSG_BODY_TOO_LARGE                                  \
	"Request payload is larger than the limit of " STR( \
		HTTP_MAX_BODY) " bytes allowed by the server."
#define MSG_HEADERS_TOO_LARGE \
	"Request header section is larger than " STR(HTTP_MAX_HEADER_BYTES) " bytes."
#define MSG_TOO_MANY_HEADERS "Request has more than " STR(HTTP_MAX_HEADERS) " header fields."
#define MSG_BAD_HEADER_NAME "Malformed HTTP request: invalid character in a header name."
#define MSG_NO_MEMORY "Out of memory."

/* Handlers' output is unbounded (they are trusted); give back a big buffer once sent. */
#define OUT_KEEP_CAP 65536

enum resp_flags {
	RESP_CLOSE = 1 << 0,	  /* Connection: close, and stop reading */
	RESP_KEEP_ALIVE = 1 << 1, /* Connection: keep-alive (an HTTP/1.0 client asked for it) */
	RESP_HEAD = 1 << 2,	  /* a HEAD request: headers as for GET, no body bytes */
};

struct http_conn {
	http_parser p;
	http_handler_fn fn;
	void *opaque;

	bool in_message;   /* a request has begun and is not complete yet */
	bool headers_done; /* ... and its header section is complete */
	bool closing;	   /* the last response is queued: input is ignored from now on */
	/* Header-section bytes of the current request so far (CRLFs before it included). */
	size_t head_bytes;
	unsigned int nheaders;
	bool in_field;	 /* the last header callback was for a field name */
	bool cur_expect; /* the header whose value is being read is Expect */
	bool has_expect;
	char name[8]; /* start of the current header name: long enough for "expect" */
	size_t name_len;
	char expect[32]; /* start of the Expect value; expect_len counts all of it */
	size_t expect_len;
	int reject_status; /* why a callback refused the request */
	const char *reject_msg;
	/* A refusal found in a header, raised where the header section ends (see defer). */
	int defer_status;
	const char *defer_msg;

	char url[HTTP_MAX_HEADER_BYTES + 1];
	size_t url_len;
	char *body; /* body_len bytes and room for a NUL; at most HTTP_MAX_BODY + 1 */
	size_t body_len, body_cap;

	char *out; /* out[out_off..out_len) is waiting to be written */
	size_t out_off, out_len, out_cap;
	int fds[HTTP_MAX_FDS]; /* received for the next request (http_conn_add_fds) */
	unsigned int nfds;
};

/* Appends a then b to the output; false (nothing appended) when memory runs out. */
static bool out_append(struct http_conn *c, const char *a, size_t alen, const char *b, size_t blen)
{
	size_t need = c->out_len - c->out_off + alen + blen;

	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		while (cap < need)
			cap *= 2;
		char *o = realloc(c->out, cap);
		if (!o)
			return false;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, a, alen);
	if (blen)
		memcpy(c->out + c->out_len + alen, b, blen);
	c->out_len += alen + blen;
	return true;
}

static const char *reason(int status)
{
	const char *r = http_status_str((enum http_status)status);

	return strcmp(r, "<unknown>") ? r : "Unknown";
}

/* Queues one response; body is NUL-terminated text or NULL. */
static void queue(struct http_conn *c, int status, const char *body, unsigned int flags)
{
	/* RFC 9110: 204 and 304 have no body and no Content-Length to announce one. */
	bool bodiless = status == 204 || status == 304;
	size_t blen = body && !bodiless ? strlen(body) : 0;
	const char *conn = "";
	char head[256], clen[48] = "";

	if (flags & RESP_CLOSE)
		conn = "Connection: close\r\n";
	else if (flags & RESP_KEEP_ALIVE)
		conn = "Connection: keep-alive\r\n";
	if (!bodiless)
		snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", blen);
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nServer: tern\r\n%s%s%s\r\n", status,
			 reason(status), clen, blen ? "Content-Type: application/json\r\n" : "",
			 conn);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    !out_append(c, head, (size_t)n, body, flags & RESP_HEAD ? 0 : blen))
		flags |= RESP_CLOSE; /* cannot answer: at least do not answer the next one */
	if (flags & RESP_CLOSE)
		c->closing = true;
}

/* {"fault_message": msg}, Firecracker's error body; NULL if memory runs out. */
static char *fault_body(const char *msg)
{
	struct json_object *o = json_object_new_object();
	char *s = NULL;

	if (!o)
		return NULL;
	struct json_object *m = json_object_new_string(msg);
	if (m && !json_object_object_add(o, "fault_message", m))
		s = strdup(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		json_object_put(m);
	json_object_put(o);
	return s;
}

static void queue_fault(struct http_conn *c, int status, const char *msg, unsigned int flags)
{
	char *body = fault_body(msg);

	queue(c, status, body, flags);
	free(body);
}

/* An error of the layer itself: answered, and the connection closes after it. */
static void fail(struct http_conn *c, int status, const char *msg)
{
	if (!c->closing)
		queue_fault(c, status, msg, RESP_CLOSE);
}

/* Records why a callback refuses the request; the parser then stops with an error. */
static int reject(struct http_conn *c, int status, const char *msg)
{
	c->reject_status = status;
	c->reject_msg = msg;
	return -1;
}

/*
 * Data callbacks run wherever a read happens to end, so refusing from one would let the
 * cut decide between our error and a parser error further on in the same header. The
 * first such finding waits for the end of the header section (or of the trailers): by
 * then the parser has reported any error of its own, whatever the cuts were.
 */
static void defer(struct http_conn *c, int status, const char *msg)
{
	if (!c->defer_status) {
		c->defer_status = status;
		c->defer_msg = msg;
	}
}

/* Makes room for need body bytes plus a NUL (need <= HTTP_MAX_BODY). */
static bool body_reserve(struct http_conn *c, size_t need)
{
	if (need < c->body_cap)
		return true;
	size_t cap = c->body_cap ? c->body_cap : 1024;
	while (cap <= need)
		cap *= 2;
	if (cap > HTTP_MAX_BODY + 1)
		cap = HTTP_MAX_BODY + 1;
	char *b = realloc(c->body, cap);
	if (!b)
		return false;
	c->body = b;
	c->body_cap = cap;
	return true;
}

static enum http_method method_of(unsigned int m)
{
	switch (m) {
	case HTTP_GET:
		return HTTP_M_GET;
	case HTTP_PUT:
		return HTTP_M_PUT;
	case HTTP_PATCH:
		return HTTP_M_PATCH;
	default:
		return HTTP_M_OTHER;
	}
}

static void drop_fds(struct http_conn *c)
{
	for (unsigned int i = 0; i < c->nfds; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	c->nfds = 0;
}

void http_conn_add_fds(struct http_conn *c, const int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (c->nfds < HTTP_MAX_FDS && !c->closing)
			c->fds[c->nfds++] = fds[i];
		else
			close(fds[i]);
	}
}

/* Runs the handler for the request just completed and queues its answer. */
static void respond(struct http_conn *c, unsigned int flags)
{
	struct http_response resp = { .status = 0, .body = NULL };
	struct http_parser_url u;

	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url, c->url_len, c->p.method == HTTP_CONNECT, &u) ||
	    !(u.field_set & (1 << UF_PATH))) {
		fail(c, 400, "Malformed HTTP request: the request target has no path.");
		return;
	}
	/* Cuts the path from the query string and fragment; the URL buffer has room for NULs. */
	c->url[c->url_len] = '\0';
	const char *query = "";
	if (u.field_set & (1 << UF_QUERY)) {
		query = c->url + u.field_data[UF_QUERY].off;
		c->url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
	}
	c->url[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0';
	if (c->body)
		c->body[c->body_len] = '\0';
	struct http_request req = {
		.method = method_of(c->p.method),
		.method_name = http_method_str((enum http_parser_method)c->p.method),
		.path = c->url + u.field_data[UF_PATH].off,
		.query = query,
		.body = c->body ? c->body : "",
		.body_len = c->body_len,
		.fds = c->fds,
		.nfds = c->nfds,
	};
	if (c->p.method == HTTP_HEAD)
		flags |= RESP_HEAD;
	c->fn(c->opaque, &req, &resp);
	drop_fds(c);
	if (resp.status < 200 || resp.status > 599)
		queue_fault(c, 500, "Internal error: the request handler set no valid status.",
			    flags);
	else
		queue(c, resp.status, resp.body, flags);
	free(resp.body);
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	c->in_message = true;
	c->headers_done = false;
	c->url_len = 0;
	c->body_len = 0;
	c->nheaders = 0;
	c->in_field = false;
	c->cur_expect = false;
	c->has_expect = false;
	c->defer_status = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	/* Cannot happen (feed bounds the header section), but the buffer must never overflow. */
	if (len > sizeof(c->url) - 1 - c->url_len)
		return reject(c, 431, MSG_HEADERS_TOO_LARGE);
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	return 0;
}

/* RFC 9110 5.6.2: a header name is a token (the parser, built lenient, allows spaces). */
static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)at[i]))
			defer(c, 400, MSG_BAD_HEADER_NAME);

	/* A name may come in several pieces; a new header starts after a value. */
	if (!c->in_field) {
		if (++c->nheaders > HTTP_MAX_HEADERS)
			defer(c, 431, MSG_TOO_MANY_HEADERS);
		c->in_field = true;
		c->name_len = 0;
	}
	for (size_t i = 0; i < len && c->name_len + i < sizeof(c->name); i++)
		c->name[c->name_len + i] = at[i];
	c->name_len += len;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	if (c->in_field) {
		c->in_field = false;
		/* Trailers after a chunked body come here too; Expect counts only before it. */
		c->cur_expect =
			!c->headers_done && c->name_len == 6 && !strncasecmp(c->name, "expect", 6);
		if (c->cur_expect) {
			c->has_expect = true;
			c->expect_len = 0;
		}
	}
	if (c->cur_expect) {
		for (size_t i = 0; i < len && c->expect_len + i < sizeof(c->expect); i++)
			c->expect[c->expect_len + i] = at[i];
		c->expect_len += len;
	}
	return 0;
}

static bool expects_continue(const struct http_conn *c)
{
	static const char want[] = "100-continue";
	size_t n = c->expect_len;

	if (!c->has_expect || n > sizeof(c->expect))
		return false;
	while (n && (c->expect[n - 1] == ' ' || c->expect[n - 1] == '\t'))
		n--;
	return n == sizeof(want) - 1 && !strncasecmp(c->expect, want, n);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	bool has_len = p->flags & F_CONTENTLENGTH;
	bool has_body = (p->flags & F_CHUNKED) || (has_len && p->content_length > 0);

	c->headers_done = true;
	if (c->defer_status)
		return reject(c, c->defer_status, c->defer_msg);
	/* The parser takes "GET /" with nothing after it for HTTP/0.9. */
	if (p->http_major == 0)
		return reject(c, 400,
			      "Malformed HTTP request: the request line has no HTTP version.");
	if (p->http_major != 1 || p->http_minor > 1)
		return reject(c, 505,
			      "HTTP version not supported: tern serves HTTP/1.0 and HTTP/1.1.");
	/* Refused before any of the body is read, and before a 100 Continue invites it. */
	if (has_len && p->content_length > HTTP_MAX_BODY)
		return reject(c, 413, MSG_BODY_TOO_LARGE);
	if (has_len && !body_reserve(c, (size_t)p->content_length))
		return reject(c, 500, MSG_NO_MEMORY);
	/* RFC 9110 10.1.1: ignored from HTTP/1.0 clients, pointless without a body. */
	if (has_body && p->http_minor == 1 && expects_continue(c)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (!out_append(c, cont, sizeof(cont) - 1, NULL, 0))
			return reject(c, 500, MSG_NO_MEMORY);
	}
	return 0;
}

static int on_chunk_header(http_parser *p)
{
	struct http_conn *c = p->data;

	/* content_length is this chunk's size: refuse it before receiving it. */
	if (p->content_length > HTTP_MAX_BODY - c->body_len)
		return reject(c, 413, MSG_BODY_TOO_LARGE);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	if (len > HTTP_MAX_BODY - c->body_len)
		return reject(c, 413, MSG_BODY_TOO_LARGE);
	if (!body_reserve(c, c->body_len + len))
		return reject(c, 500, MSG_NO_MEMORY);
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	/* After an Upgrade or CONNECT request the parser expects another protocol: close. */
	bool keep = http_should_keep_alive(p) && !p->upgrade;
	unsigned int flags = !keep ? RESP_CLOSE : p->http_minor == 0 ? RESP_KEEP_ALIVE : 0;

	/* A refusal deferred from the trailers of a chunked body. */
	if (c->defer_status)
		return reject(c, c->defer_status, c->defer_msg);
	c->in_message = false;
	c->headers_done = false;
	respond(c, flags);
	/* Hand control back to feed, which starts counting the next request's header bytes. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
};

struct http_conn *http_conn_new(http_handler_fn fn, void *opaque)
{
	struct http_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	c->fn = fn;
	c->opaque = opaque;
	return c;
}

void http_conn_free(struct http_conn *c)
{
	if (!c)
		return;
	drop_fds(c);
	free(c->body);
	free(c->out);
	free(c);
}

int http_conn_feed(struct http_conn *c, const char *data, size_t len)
{
	while (len && !c->closing) {
		bool in_head = !c->headers_done;
		size_t chunk = len;

		/*
		 * The parser never sees more header bytes than the limit allows, so the 431 is
		 * exact and the rest of an oversized header section is never looked at.
		 */
		if (in_head) {
			if (c->head_bytes >= HTTP_MAX_HEADER_BYTES) {
				fail(c, 431, MSG_HEADERS_TOO_LARGE);
				break;
			}
			if (chunk > HTTP_MAX_HEADER_BYTES - c->head_bytes)
				chunk = HTTP_MAX_HEADER_BYTES - c->head_bytes;
		}
		size_t n = http_parser_execute(&c->p, &settings, data, chunk);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
		data += n;
		len -= n;
		if (e == HPE_PAUSED) {
			/* A request completed (on_message_complete): go on with the next one. */
			http_parser_pause(&c->p, 0);
			c->head_bytes = 0;
			continue;
		}
		if (e != HPE_OK) {
			char msg[160];
			if (c->reject_status) {
				fail(c, c->reject_status, c->reject_msg);
			} else if (e == HPE_HEADER_OVERFLOW) {
				fail(c, 431, MSG_HEADERS_TOO_LARGE);
			} else {
				snprintf(msg, sizeof(msg), "Malformed HTTP request: %s.",
					 http_errno_description(e));
				fail(c, 400, msg);
			}
			break;
		}
		/* Once the headers are done the count no longer matters until the next request. */
		if (in_head)
			c->head_bytes += n;
		/* The parser stops short only after a request it cannot follow (Upgrade). */
		if (n < chunk) {
			c->closing = true;
			break;
		}
	}
	return c->closing ? -1 : 0;
}

const char *http_conn_output(const struct http_conn *c, size_t *len)
{
	*len = c->out_len - c->out_off;
	return c->out ? c->out + c->out_off : "";
}

void http_conn_consume(struct http_conn *c, size_t n)
{
	if (n > c->out_len - c->out_off)
		n = c->out_len - c->out_off;
	c->out_off += n;
	if (c->out_off < c->out_len)
		return;
	c->out_off = c->out_len = 0;
	if (c->out_cap > OUT_KEEP_CAP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}

int http_conn_eof(struct http_conn *c)
{
	bool cut = c->in_message && !c->closing;

	c->closing = true;
	return cut ? -1 : 0;
}
