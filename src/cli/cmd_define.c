/* `tern define FILE` and `tern undefine NAME`: a VM's definition in and out of ternd. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFINITION_MAX (1u << 20) /* far beyond any definition; ternd's answers stop there */

/* The whole of FILE ("-": stdin) as a string; NULL with the error printed. */
static char *read_input(const char *file)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "re") : stdin;
	char *buf;
	size_t len = 0;

	if (!f) {
		cli_error("%s: %s", file, strerror(errno));
		return NULL;
	}
	if (!(buf = malloc(DEFINITION_MAX + 1))) {
		cli_error("out of memory");
		return NULL;
	}
	len = fread(buf, 1, DEFINITION_MAX + 1, f);
	if (ferror(f) || len > DEFINITION_MAX) {
		cli_error("%s: %s", file,
			  ferror(f) ? strerror(errno) : "more than 1 MiB: not a VM definition");
		free(buf);
		buf = NULL;
	} else {
		buf[len] = 0;
	}
	if (f != stdin)
		fclose(f);
	return buf;
}

int cmd_define(struct cli *c, int argc, char **argv)
{
	const char *file;
	struct json_object *def;
	char *text;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &file, 1))
		return CLI_OK;
	if (!(text = read_input(file)))
		return CLI_USAGE;
	e = cli_call(c, "POST", "/vms", text, CLI_OP_TIMEOUT_MS, &def);
	free(text);
	if (e)
		return e;
	if (c->json)
		cli_print_json(def);
	else
		printf("Defined %s (uuid %s)\n", cli_str(def, "name", "?"),
		       cli_str(def, "uuid", "?"));
	json_object_put(def);
	return CLI_OK;
}

int cmd_undefine(struct cli *c, int argc, char **argv)
{
	bool storage = false;
	const struct cli_opt opts[] = {
		{ .name = "remove-storage", .kind = CLI_OPT_FLAG, .out = &storage },
	};
	const char *name;
	char path[160];
	int e;

	if (cli_args(c, argc, argv, opts, 1, &name, 1))
		return CLI_OK;
	cli_vm_path(name, storage ? "?remove_storage=1" : NULL, path, sizeof(path));
	/* It waits for an operation on the VM in progress: as long as one may take. */
	if ((e = cli_call(c, "DELETE", path, NULL, CLI_OP_TIMEOUT_MS, NULL)))
		return e;
	/* 204: the API has no document to print for --json. */
	if (!c->json)
		printf("Undefined %s%s\n", name, storage ? " and removed its disks" : "");
	return CLI_OK;
}
