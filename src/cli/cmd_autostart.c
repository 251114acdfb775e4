/* `tern autostart NAME [--disable]`: the definition's "autostart", changed through PATCH. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_autostart(struct cli *c, int argc, char **argv)
{
	bool disable = false;
	const struct cli_opt opts[] = {
		{ .name = "disable", .kind = CLI_OPT_FLAG, .out = &disable },
	};
	const char *name;
	struct json_object *vm, *def, *a, *stored = NULL;
	char path[160];
	int e;

	if (cli_args(c, argc, argv, opts, 1, &name, 1))
		return CLI_OK;
	if ((e = cli_get_definition(c, name, &vm, &def)))
		return e;
	/* Already so: nothing to change, which works in any state. */
	if (json_object_object_get_ex(def, "autostart", &a) &&
	    json_object_get_boolean(a) == !disable) {
		if (c->json)
			cli_print_json(def);
		else
			printf("Autostart of %s is %s already\n", name, disable ? "off" : "on");
		json_object_put(vm);
		return CLI_OK;
	}
	json_object_put(vm);
	cli_vm_path(name, NULL, path, sizeof(path));
	/* PATCH: autostart may change in any state, unlike the rest of the definition. */
	e = cli_call(c, "PATCH", path, disable ? "{\"autostart\": false}" : "{\"autostart\": true}",
		     CLI_OP_TIMEOUT_MS, &stored);
	if (e)
		return e;
	if (c->json)
		cli_print_json(stored);
	else
		printf("Autostart of %s %s\n", name, disable ? "disabled" : "enabled");
	json_object_put(stored);
	return CLI_OK;
}
