/* tern's requests to ternd: which socket, one request each, and what the answer means. */
#include "cli/cli.h"

#include "core/log.h"
#include "daemon/vmdef.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/tern"

void cli_error(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n = snprintf(line, sizeof(line), "tern: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* One write, so that the line never mixes with another process's output. */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return; /* nowhere left to say it */
}

static void set_path(char *out, size_t n, const char *dir, const char *file)
{
	if ((size_t)snprintf(out, n, "%s/%s", dir, file) >= n)
		die_usage("%s: the path is too long", dir);
}

void cli_set_socket(struct cli *c, const char *socket, const char *state_dir)
{
	const char *env = getenv("TERN_SOCKET");

	/* The command line wins over the environment, which wins over the default. */
	if (!socket && !state_dir && env && *env)
		socket = env;
	if (!socket) {
		const char *dir = state_dir ? state_dir : DEFAULT_STATE_DIR;
		set_path(c->socket, sizeof(c->socket), dir, "ternd.sock");
		set_path(c->ro_socket, sizeof(c->ro_socket), dir, "ternd-ro.sock");
		return;
	}
	if (strlen(socket) >= sizeof(c->socket))
		die_usage("--socket: '%.100s...' is too long", socket);
	strcpy(c->socket, socket);
	c->ro_socket[0] = 0;
	/* A socket named as ternd names its own has the read-only one beside it. */
	const char *slash = strrchr(socket, '/');
	const char *base = slash ? slash + 1 : socket;
	if (!strcmp(base, "ternd.sock")) {
		snprintf(c->ro_socket, sizeof(c->ro_socket), "%.*sternd-ro.sock",
			 (int)(base - socket), socket);
	}
}

int cli_exit_of_status(int status)
{
	if (status >= 200 && status < 300)
		return CLI_OK;
	if (status == 400)
		return CLI_USAGE;
	if (status <= 0)
		return CLI_UNREACHABLE;
	return CLI_FAILED; /* 403, 404, 409, 5xx */
}

static int send_one(const struct cli *c, const char *sock, const char *method, const char *path,
		    const char *body, int timeout_ms, struct cli_reply *r)
{
	char *text = NULL;
	int st = c->remote ? cli_remote_request(c, method, path, body, timeout_ms, &text, r->err,
						sizeof(r->err)) :
			     vmm_request(sock, method, path, body, timeout_ms, &text, r->err,
					 sizeof(r->err));

	if (st < 0) {
		r->status = 0;
		free(text);
		return st;
	}
	r->status = st;
	r->body = text && *text ? json_tokener_parse(text) : NULL;
	if (st < 200 || st >= 300) {
		const char *e = cli_str(r->body, "error", NULL);
		if (e)
			snprintf(r->err, sizeof(r->err), "%s", e);
		else
			snprintf(r->err, sizeof(r->err), "ternd answered %s %s with %d", method,
				 path, st);
	}
	free(text);
	return 0;
}

int cli_request(const struct cli *c, const char *method, const char *path, const char *body,
		int timeout_ms, struct cli_reply *r)
{
	memset(r, 0, sizeof(*r));
	int e = send_one(c, c->socket, method, path, body, timeout_ms, r);

	/* Reading needs no rights on ternd.sock: users outside group tern get ternd-ro.sock. */
	if (e == -EACCES && !c->remote && !strcmp(method, "GET") && c->ro_socket[0])
		e = send_one(c, c->ro_socket, method, path, body, timeout_ms, r);
	if (e == -EACCES && c->remote)
		snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err),
			 " (--tls-dir: the certificates must come from the CA ternd trusts)");
	else if (e && c->remote && e != -EPROTO)
		snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err),
			 " (is ternd running with --listen-tls on that address?)");
	else if (e == -EACCES)
		snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err),
			 " (changing VMs takes write access to ternd.sock: root or group tern)");
	else if (e == -ENOENT || e == -ECONNREFUSED)
		snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err),
			 " (is ternd running? --state-dir or --socket names another one)");
	return e ? CLI_UNREACHABLE : cli_exit_of_status(r->status);
}

void cli_reply_free(struct cli_reply *r)
{
	json_object_put(r->body);
	r->body = NULL;
}

int cli_call(const struct cli *c, const char *method, const char *path, const char *body,
	     int timeout_ms, struct json_object **out)
{
	struct cli_reply r;
	int e = cli_request(c, method, path, body, timeout_ms, &r);

	if (e)
		cli_error("%s", r.err);
	if (out && !e) {
		*out = r.body;
		r.body = NULL;
	} else if (out) {
		*out = NULL;
	}
	cli_reply_free(&r);
	return e;
}

void cli_print_json(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE);

	printf("%s\n", s);
}

const char *cli_str(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return dflt;
	return json_object_get_string(v);
}

const char *cli_vm_path(const char *name, const char *suffix, char *buf, size_t n)
{
	/* A uuid passes too: ternd takes either. Checked here so that a path never breaks. */
	if (!vmdef_name_ok(name))
		die_usage("'%.80s' is not a VM name: 1 to %d characters of A-Z a-z 0-9 . _ -, "
			  "starting with a letter or digit",
			  name, VMDEF_NAME_MAX);
	snprintf(buf, n, "/vms/%s%s", name, suffix ? suffix : "");
	return buf;
}

int cli_get_definition(const struct cli *c, const char *name, struct json_object **vm,
		       struct json_object **def)
{
	char path[160];
	int e;

	cli_vm_path(name, NULL, path, sizeof(path));
	if ((e = cli_call(c, "GET", path, NULL, CLI_GET_TIMEOUT_MS, vm)))
		return e;
	if (!json_object_object_get_ex(*vm, "definition", def)) {
		json_object_put(*vm);
		*vm = NULL;
		cli_error("ternd's answer has no \"definition\"");
		return CLI_FAILED;
	}
	return CLI_OK;
}
