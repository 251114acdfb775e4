/*
 * `tern create NAME --kernel ...`: define from options and start, as virt-install does.
 * All or nothing: a VM whose start fails is undefined again.
 */
#include "cli/cli.h"
#include "cli/create_opts.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_TIMEOUT_MS 3630000 /* ternd bounds a start by --start-timeout (at most 3600 s) */

/* Takes back a definition whose start failed, and says what happened: one line. */
static void take_back(struct cli *c, const char *path, const char *name, const char *why)
{
	struct cli_reply r;

	if (cli_request(c, "DELETE", path, NULL, CLI_OP_TIMEOUT_MS, &r))
		cli_error("%s; %s stays defined (shut off): undefining it failed: %s", why, name,
			  r.err);
	else
		cli_error("%s; %s is undefined again", why, name);
	cli_reply_free(&r);
}

int cmd_create(struct cli *c, int argc, char **argv)
{
	struct create_opts o;
	struct json_object *def;
	struct cli_reply r;
	char err[1024], path[160], *body;
	const char *name;
	int e;

	if (create_opts_parse(argc, argv, &o, err, sizeof(err)))
		die_usage("%s", err);
	if (o.help)
		return help_print("create");
	c->json |= o.json;
	body = strdup(json_object_to_json_string_ext(
		o.def, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	name = cli_str(o.def, "name", "");
	cli_vm_path(name, NULL, path, sizeof(path));
	e = body ? cli_call(c, "POST", "/vms", body, CLI_OP_TIMEOUT_MS, &def) : CLI_FAILED;
	free(body);
	if (e) {
		json_object_put(o.def);
		return e;
	}
	if (o.start) {
		char op[200];
		snprintf(op, sizeof(op), "%s/start", path);
		if ((e = cli_request(c, "POST", op, NULL, START_TIMEOUT_MS, &r))) {
			take_back(c, path, name, r.err);
			cli_reply_free(&r);
			json_object_put(def);
			json_object_put(o.def);
			return e;
		}
		cli_reply_free(&r);
	}
	if (c->json)
		cli_print_json(def);
	else
		printf("%s %s (uuid %s)\n", o.start ? "Created and started" : "Defined", name,
		       cli_str(def, "uuid", "?"));
	json_object_put(def);
	json_object_put(o.def);
	return CLI_OK;
}
