/* tls://HOST:PORT and one HTTP exchange per TLS connection (tls_http.h), out of cli/remote.c. */
#include "core/tls_http.h"

#include "core/http_client.h"
#include "core/tls.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Connecting and the handshake each get at most this much of a request's time: an
 * unreachable host should not cost a whole operation timeout. */
#define CONNECT_MS 10000
/* After a failed send, how long to wait for the alert that says why. */
#define ALERT_MS 1000

int tls_url_parse(const char *url, struct hostport *hp, char *canon, size_t canon_len, char *err,
		  size_t errlen)
{
	char text[300];
	size_t len;

	if (strncmp(url, TLS_URL_SCHEME, strlen(TLS_URL_SCHEME)))
		return fail_msg(err, errlen, -EINVAL,
				"'%.200s' is not " TLS_URL_SCHEME "HOST:PORT (the one scheme tern "
				"speaks to a remote ternd)",
				url);
	snprintf(text, sizeof(text), "%s", url + strlen(TLS_URL_SCHEME));
	len = strlen(text);
	if (len && text[len - 1] == '/')
		text[len - 1] = 0;
	if (hostport_parse(text, false, hp, err, errlen))
		return -EINVAL;
	if (canon)
		snprintf(canon, canon_len, TLS_URL_SCHEME "%s",
			 hostport_text(hp, text, sizeof(text)));
	return 0;
}

static ssize_t io_send(void *ctx, const void *buf, size_t n, int timeout_ms)
{
	char probe[1];
	int r = tls_write_all(ctx, buf, n, timeout_ms);

	/* A server that refused our certificate after the handshake (TLS 1.3 checks it
	 * then) may have closed already: its alert, if it came, says why. */
	if (r && r != -ETIMEDOUT && tls_read(ctx, probe, sizeof(probe), ALERT_MS) == -EACCES)
		return -EACCES;
	return r ? r : (ssize_t)n;
}

static ssize_t io_recv(void *ctx, void *buf, size_t n, int timeout_ms)
{
	return tls_read(ctx, buf, n, timeout_ms);
}

static const char *io_error(void *ctx)
{
	return tls_error(ctx);
}

int tls_http_request(struct tls_creds *creds, const struct hostport *hp, const char *peer,
		     const char *method, const char *path, const char *body, int timeout_ms,
		     char **resp, struct tls_conn **tunnel, char *err, size_t errlen)
{
	char why[512];
	struct tls_conn *t;
	int fd, r, first = timeout_ms < CONNECT_MS ? timeout_ms : CONNECT_MS;

	if (resp)
		*resp = NULL;
	if (tunnel)
		*tunnel = NULL;
	if ((fd = tcp_connect(hp, first, why, sizeof(why))) < 0)
		return fail_msg(err, errlen, fd, "ternd at " TLS_URL_SCHEME "%s", why);
	if ((r = tls_handshake(&t, creds, fd, hp->host, peer, first, err, errlen)))
		return r;
	struct http_io io = { .ctx = t, .send = io_send, .recv = io_recv, .error = io_error };
	/* The answer to a tunnel's request is read whole and no further: the server sends
	 * nothing after it until the caller has sent into the tunnel (tls_http.h). */
	r = http_client_exchange(&io, peer, method, path, body, timeout_ms, resp, err, errlen);
	if (tunnel && r == 200) {
		*tunnel = t;
		return r;
	}
	tls_close(t);
	return r;
}
