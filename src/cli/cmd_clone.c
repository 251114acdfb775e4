/* `tern clone NAME NEW [--copy]`: a new VM from a shut-off one (docs/ternd.md). */
#include "cli/cli.h"
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>

int cmd_clone(struct cli *c, int argc, char **argv)
{
	bool copy = false;
	const struct cli_opt opts[] = { { .name = "copy", .kind = CLI_OPT_FLAG, .out = &copy } };
	const char *pos[2];
	char path[160], body[200], doing[200];
	struct json_object *o;
	struct progress *p;
	int e;

	if (cli_args(c, argc, argv, opts, 1, pos, 2))
		return CLI_OK;
	cli_vm_path(pos[1], NULL, path, sizeof(path)); /* checks NEW's syntax */
	cli_vm_path(pos[0], "/clone", path, sizeof(path));
	snprintf(body, sizeof(body), "{\"name\": \"%s\", \"copy\": %s}", pos[1],
		 copy ? "true" : "false");
	snprintf(doing, sizeof(doing), "cloning %s%s", pos[0], copy ? " (copying its disks)" : "");
	p = progress_start_job(c, doing, pos[0]);
	e = cli_call(c, "POST", path, body, CLI_OP_TIMEOUT_MS, &o);
	progress_stop(p);
	if (e)
		return e;
	if (c->json)
		cli_print_json(o);
	else
		printf("Cloned %s as %s (shut off: tern start %s)\n", pos[0],
		       cli_str(o, "name", pos[1]), pos[1]);
	json_object_put(o);
	return CLI_OK;
}
