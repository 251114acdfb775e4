/* `tern list [--all]`: the VMs as a table, or the API's array with --json. */
#include "cli/cli.h"
#include "cli/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As virsh: only what runs (or is arriving) unless --all. */
static bool shown(struct json_object *vm, bool all)
{
	const char *st = cli_str(vm, "state", "");

	return all || !strcmp(st, "running") || !strcmp(st, "paused") ||
	       !strcmp(st, "migrating in");
}

int cmd_list(struct cli *c, int argc, char **argv)
{
	static const char *const headers[] = { "NAME", "STATE", "REASON", "AUTOSTART" };
	bool all = false;
	const struct cli_opt opts[] = { { .name = "all", .kind = CLI_OPT_FLAG, .out = &all } };
	struct json_object *o, *vms, *out;
	struct table *t;
	int e;

	if (cli_args(c, argc, argv, opts, 1, NULL, 0))
		return CLI_OK;
	if ((e = cli_call(c, "GET", "/vms", NULL, CLI_GET_TIMEOUT_MS, &o)))
		return e;
	if (!json_object_object_get_ex(o, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array)) {
		json_object_put(o);
		cli_error("ternd's answer to GET /vms has no \"vms\" array");
		return CLI_FAILED;
	}
	out = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i);
		if (shown(vm, all))
			json_object_array_add(out, json_object_get(vm));
	}
	json_object_put(o);
	if (c->json) {
		cli_print_json(out);
		json_object_put(out);
		return CLI_OK;
	}
	t = table_new(4, headers);
	for (size_t i = 0; t && i < json_object_array_length(out); i++) {
		struct json_object *vm = json_object_array_get_idx(out, i), *a;
		bool autostart = json_object_object_get_ex(vm, "autostart", &a) &&
				 json_object_get_boolean(a);
		const char *row[] = { cli_str(vm, "name", NULL), cli_str(vm, "state", NULL),
				      cli_str(vm, "reason", NULL), autostart ? "yes" : "no" };
		if (table_add(t, row)) {
			table_free(t);
			t = NULL;
		}
	}
	json_object_put(out);
	return table_print(t);
}
