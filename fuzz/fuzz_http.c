/*
 * libFuzzer harness for the API's HTTP connection state machine (src/api/http_conn.c,
 * over libhttp_parser). The input is fed to one connection in two pieces and to another
 * in one piece; the two must answer identically, since where a read ends is up to the
 * peer. The handler checks what the layer promises about each request and answers a
 * small JSON body (or none, or a bad status) chosen from the request.
 *
 * Input layout:
 *   0      flags: bit 0 end with EOF (http_conn_eof); bits 1-2 how much output is
 *          consumed between the two pieces (none, all, half, one byte)
 *   1..2   where the input is cut (u16, little-endian, modulo the HTTP bytes' length + 1)
 *   3..    the bytes the client sends
 *
 * All output is collected and checked to be a sequence of well-formed responses, each
 * starting "HTTP/1.1 ", with as many final responses as handled requests (plus at most
 * one error answer from the layer).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "fuzz.h"

#define HDR 3u

struct out {
	char *p;
	size_t len, cap;
	unsigned int handled;
};

static void handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct out *o = opaque;
	size_t plen = strlen(req->path);
	char body[96];

	o->handled++;
	ASSERT(req->method_name && *req->method_name);
	ASSERT(req->method <= HTTP_M_OTHER);
	ASSERT(!strchr(req->path, '?') && !strchr(req->path, '#'));
	ASSERT(plen <= HTTP_MAX_HEADER_BYTES);
	ASSERT(req->body && req->body_len <= HTTP_MAX_BODY && req->body[req->body_len] == '\0');
	/* Touch every body byte so ASan sees the whole claimed length. */
	unsigned int sum = 0;
	for (size_t i = 0; i < req->body_len; i++)
		sum += (unsigned char)req->body[i];
	switch (plen % 5) {
	case 0:
		resp->status = 204;
		resp->body = strdup("{}"); /* dropped by the layer */
		return;
	case 1:
		resp->status = 200; /* no body */
		return;
	case 2:
		return; /* no status: a 500 */
	default:
		snprintf(body, sizeof(body),
			 "{\"method\":%d,\"path_len\":%zu,\"body\":%zu,\"sum\":%u}",
			 (int)req->method, plen, req->body_len, sum);
		resp->status = plen % 5 == 3 ? 200 : 400;
		resp->body = strdup(body);
	}
}

static void take(struct http_conn *c, struct out *o, size_t max)
{
	size_t n;
	const char *p = http_conn_output(c, &n);

	if (n)
		ASSERT(o->len || !memcmp(p, "HTTP/1.1 ", n < 9 ? n : 9));
	if (n > max)
		n = max;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->p = realloc(o->p, o->cap);
		ASSERT(o->p);
	}
	if (n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
	http_conn_consume(c, n);
}

/* Walks the responses; returns how many were final (not 100 Continue). */
static unsigned int check_responses(const struct out *o)
{
	unsigned int finals = 0;

	if (!o->len)
		return 0;
	const char *p = o->p, *end = o->p + o->len;
	while (p < end) {
		ASSERT(end - p >= 9 && !memcmp(p, "HTTP/1.1 ", 9));
		const char *hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		ASSERT(hdr_end);
		int status = atoi(p + 9);
		ASSERT(status >= 100 && status <= 599);
		size_t body = 0;
		const char *cl = memmem(p, (size_t)(hdr_end - p), "\r\nContent-Length: ", 18);
		if (cl)
			body = strtoul(cl + 18, NULL, 10);
		if (status == 100 || status == 204)
			ASSERT(!cl);
		else
			ASSERT(cl);
		/* A HEAD answer announces a body it does not carry: skip to the next response. */
		if ((size_t)(end - (hdr_end + 4)) < body || (body && memcmp(hdr_end + 4, "{", 1)))
			body = 0;
		if (status != 100)
			finals++;
		p = hdr_end + 4 + body;
	}
	return finals;
}

static void run(const uint8_t *data, size_t len, size_t cut, unsigned int flags, struct out *o)
{
	struct http_conn *c = http_conn_new(handler, o);
	static const size_t consume[4] = { 0, SIZE_MAX, 0, 1 };
	int r;

	ASSERT(c);
	r = http_conn_feed(c, (const char *)data, cut);
	size_t pending;
	http_conn_output(c, &pending);
	take(c, o, (flags >> 1 & 3) == 2 ? pending / 2 : consume[flags >> 1 & 3]);
	if (r == 0)
		r = http_conn_feed(c, (const char *)data + cut, len - cut);
	if (flags & 1)
		http_conn_eof(c);
	/* Once closed, more input changes nothing. */
	if (r < 0) {
		ASSERT(http_conn_feed(c, "GET / HTTP/1.1\r\n\r\n", 18) == -1);
	}
	take(c, o, SIZE_MAX);
	http_conn_output(c, &pending);
	ASSERT(pending == 0);
	http_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out split = { 0 }, whole = { 0 };

	if (size < HDR)
		return 0;
	unsigned int flags = data[0];
	size_t len = size - HDR, cut = (size_t)(data[1] | data[2] << 8) % (len + 1);
	const uint8_t *http = data + HDR;

	run(http, len, cut, flags, &split);
	run(http, len, len, flags, &whole);
	ASSERT(split.handled == whole.handled);
	ASSERT(split.len == whole.len && (!split.len || !memcmp(split.p, whole.p, split.len)));
	unsigned int finals = check_responses(&split);
	ASSERT(finals == split.handled || finals == split.handled + 1);
	free(split.p);
	free(whole.p);
	return 0;
}
