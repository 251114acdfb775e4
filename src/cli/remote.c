/*
 * tern --connect tls://HOST:PORT: requests to a ternd on another host, one TLS
 * connection each (core/tls.h), our client certificate shown and the server's checked
 * against the CA and HOST.
 */
#include "cli/cli.h"

#include "core/log.h"
#include "core/tls.h"
#include "core/tls_http.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_set_remote(struct cli *c, const char *url, const char *what, const char *tls_dir)
{
	char err[1024];

	if (tls_url_parse(url, &c->addr, c->url, sizeof(c->url), err, sizeof(err)))
		die_usage("%s: %s", what, err);
	c->remote = true;
	if (tls_creds_load(&c->tls, TLS_CLIENT, tls_dir ? tls_dir : TLS_DEFAULT_DIR, err,
			   sizeof(err)))
		die_usage("--tls-dir: %s (docs/ternd.md, \"Remote management over TLS\", shows how "
			  "to make the certificates)",
			  err);
}

int cli_remote_request(const struct cli *c, const char *method, const char *path, const char *body,
		       int timeout_ms, char **text, char *err, size_t errlen)
{
	char peer[400];

	snprintf(peer, sizeof(peer), "ternd at %s", c->url);
	return tls_http_request(c->tls, &c->addr, peer, method, path, body, timeout_ms, text, NULL,
				err, errlen);
}
