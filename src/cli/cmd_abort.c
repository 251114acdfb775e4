/*
 * `tern abort NAME` (virsh domjobabort): stops the job running on a VM. Only a migration
 * can be stopped: it then fails as cancelled and the VM runs on here (docs/ternd.md).
 */
#include "cli/cli.h"

#include <json-c/json.h>
#include <stdio.h>

int cmd_abort(struct cli *c, int argc, char **argv)
{
	const char *name;
	struct json_object *o;
	char path[160];
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	e = cli_call(c, "DELETE", cli_vm_path(name, "/job", path, sizeof(path)), NULL, 30000, &o);
	if (e)
		return e;
	if (c->json)
		cli_print_json(o);
	else
		printf("Cancelling %s's %s: it ends as cancelled and the VM runs on here\n",
		       cli_str(o, "name", name), cli_str(o, "operation", "job"));
	json_object_put(o);
	return CLI_OK;
}
