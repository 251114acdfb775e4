/*
 * tern --connect tls://HOST:PORT: requests to a ternd on another host, one TLS
 * connection each (core/tls.h), our client certificate shown and the server's checked
 * against the CA and HOST.
 */
#include "cli/cli.h"

#include "core/http_client.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEME "tls://"
/* Connecting and the handshake each get at most this much of a request's time: an
 * unreachable host should not cost a whole operation timeout. */
#define CONNECT_MS 10000
/* After a failed send, how long to wait for the alert that says why. */
#define ALERT_MS 1000

void cli_set_remote(struct cli *c, const char *url, const char *what, const char *tls_dir)
{
	char hp[300], err[1024];
	size_t len;

	if (strncmp(url, SCHEME, strlen(SCHEME)))
		die_usage("%s: '%.200s' is not " SCHEME "HOST:PORT (the one scheme tern speaks to "
			  "a remote ternd)",
			  what, url);
	snprintf(hp, sizeof(hp), "%s", url + strlen(SCHEME));
	len = strlen(hp);
	if (len && hp[len - 1] == '/')
		hp[len - 1] = 0;
	if (hostport_parse(hp, false, &c->addr, err, sizeof(err)))
		die_usage("%s: %s", what, err);
	c->remote = true;
	snprintf(c->url, sizeof(c->url), SCHEME "%s", hostport_text(&c->addr, hp, sizeof(hp)));
	if (tls_creds_load(&c->tls, TLS_CLIENT, tls_dir ? tls_dir : TLS_DEFAULT_DIR, err,
			   sizeof(err)))
		die_usage("--tls-dir: %s (docs/ternd.md, \"Remote management over TLS\", shows how "
			  "to make the certificates)",
			  err);
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

int cli_remote_request(const struct cli *c, const char *method, const char *path, const char *body,
		       int timeout_ms, char **text, char *err, size_t errlen)
{
	char peer[400], why[512];
	struct tls_conn *t;
	int fd, r, first = timeout_ms < CONNECT_MS ? timeout_ms : CONNECT_MS;

	snprintf(peer, sizeof(peer), "ternd at %s", c->url);
	if ((fd = tcp_connect(&c->addr, first, why, sizeof(why))) < 0)
		return fail_msg(err, errlen, fd, "ternd at " SCHEME "%s", why);
	if ((r = tls_handshake(&t, c->tls, fd, c->addr.host, peer, first, err, errlen)))
		return r;
	struct http_io io = { .ctx = t, .send = io_send, .recv = io_recv, .error = io_error };
	r = http_client_exchange(&io, peer, method, path, body, timeout_ms, text, err, errlen);
	tls_close(t);
	return r;
}
