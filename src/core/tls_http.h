/*
 * One host reaching another's ternd: tls://HOST:PORT as users write it, and one HTTP
 * exchange (http_client.h) per TLS connection (tls.h). tern --connect and ternd's
 * migrations share it; a migration's stream is a request whose connection stays open.
 */
#ifndef TERN_CORE_TLS_HTTP_H
#define TERN_CORE_TLS_HTTP_H

#include "core/tcp.h"

#include <stddef.h>

#define TLS_URL_SCHEME "tls://"

struct tls_creds;
struct tls_conn;

/*
 * Parses "tls://HOST:PORT" (a trailing "/" is allowed) into hp, and its canonical text
 * into canon (canon_len bytes; may be NULL). 0, or -EINVAL with err saying what is
 * accepted (callers put the option's or the field's name before it).
 */
int tls_url_parse(const char *url, struct hostport *hp, char *canon, size_t canon_len, char *err,
		  size_t errlen);

/*
 * Connects to hp, runs the handshake with creds (the server's certificate must name
 * hp->host) and sends METHOD PATH with body; peer labels the other side in messages
 * ("ternd at tls://..."). Connecting and the handshake get at most 10 s each of timeout_ms.
 * Returns the HTTP status with the body in *resp (malloc'd, may be NULL if not wanted), or
 * -errno with err saying why (-EACCES: a certificate was refused, either way).
 *
 * tunnel NULL: the connection is closed. Else, when the answer is 200, the connection is
 * handed over in *tunnel (the caller's from then on; tls_close_linger): the server turned
 * it into a byte stream after its answer. It must not send before that answer is read.
 */
int tls_http_request(struct tls_creds *creds, const struct hostport *hp, const char *peer,
		     const char *method, const char *path, const char *body, int timeout_ms,
		     char **resp, struct tls_conn **tunnel, char *err, size_t errlen);

#endif
