/*
 * `tern snapshot create|list|revert|delete NAME [SNAP]` (virsh's snapshot-create-as,
 * snapshot-list, snapshot-revert, snapshot-delete; those names work too).
 */
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/table.h"

#include "core/log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "/vms/NAME/snapshots[/SNAP[/verb]]" after checking both names. */
static const char *snap_path(const char *name, const char *snap, const char *verb, char *buf,
			     size_t n)
{
	char suffix[128];

	if (snap && (!*snap || strlen(snap) > 63 || strchr(snap, '/') || snap[0] == '.'))
		die_usage("SNAP '%.64s' must be 1 to 63 characters of A-Z a-z 0-9 . _ -, starting "
			  "with a letter or digit",
			  snap);
	snprintf(suffix, sizeof(suffix), "/snapshots%s%s%s%s", snap ? "/" : "", snap ? snap : "",
		 verb ? "/" : "", verb ? verb : "");
	return cli_vm_path(name, suffix, buf, n);
}

/* One request, the elapsed time on a terminal meanwhile, then "done" or the JSON answer. */
static int run(struct cli *c, const char *vm, const char *method, const char *path,
	       const char *body, const char *doing, const char *done)
{
	struct progress *p = doing ? progress_start_job(c, doing, vm) : NULL;
	struct json_object *o = NULL;
	int e = cli_call(c, method, path, body, CLI_OP_TIMEOUT_MS, &o);

	progress_stop(p);
	if (e)
		return e;
	if (c->json)
		cli_print_json(o ? o : json_object_new_object());
	else
		printf("%s\n", done);
	json_object_put(o);
	return CLI_OK;
}

int cmd_snapshot_create(struct cli *c, int argc, char **argv)
{
	const char *pos[2];
	char path[256], body[160], doing[200], done[200];

	if (cli_args(c, argc, argv, NULL, 0, pos, 2))
		return CLI_OK;
	snap_path(pos[0], NULL, NULL, path, sizeof(path));
	snap_path(pos[0], pos[1], NULL, doing, sizeof(doing)); /* checks SNAP */
	snprintf(body, sizeof(body), "{\"name\": \"%s\"}", pos[1]);
	snprintf(doing, sizeof(doing), "snapshot %s of %s", pos[1], pos[0]);
	snprintf(done, sizeof(done), "Snapshot %s of %s created", pos[1], pos[0]);
	return run(c, pos[0], "POST", path, body, doing, done);
}

int cmd_snapshot_revert(struct cli *c, int argc, char **argv)
{
	const char *pos[2];
	char path[256], doing[200], done[200];

	if (cli_args(c, argc, argv, NULL, 0, pos, 2))
		return CLI_OK;
	snap_path(pos[0], pos[1], "revert", path, sizeof(path));
	snprintf(doing, sizeof(doing), "reverting %s to %s", pos[0], pos[1]);
	snprintf(done, sizeof(done), "%s reverted to snapshot %s", pos[0], pos[1]);
	return run(c, pos[0], "POST", path, NULL, doing, done);
}

int cmd_snapshot_delete(struct cli *c, int argc, char **argv)
{
	const char *pos[2];
	char path[256], done[200];

	if (cli_args(c, argc, argv, NULL, 0, pos, 2))
		return CLI_OK;
	snap_path(pos[0], pos[1], NULL, path, sizeof(path));
	snprintf(done, sizeof(done), "Snapshot %s of %s deleted", pos[1], pos[0]);
	return run(c, pos[0], "DELETE", path, NULL, NULL, done);
}

int cmd_snapshot_list(struct cli *c, int argc, char **argv)
{
	static const char *const headers[] = { "NAME", "CREATED", "STATE", "MEMORY" };
	const char *name;
	char path[256], when[64];
	struct json_object *o, *a;
	struct table *t;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	snap_path(name, NULL, NULL, path, sizeof(path));
	if ((e = cli_call(c, "GET", path, NULL, CLI_GET_TIMEOUT_MS, &o)))
		return e;
	if (!json_object_object_get_ex(o, "snapshots", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		json_object_put(o);
		cli_error("ternd's answer has no \"snapshots\" array");
		return CLI_FAILED;
	}
	if (c->json) {
		cli_print_json(a);
		json_object_put(o);
		return CLI_OK;
	}
	t = table_new(4, headers);
	for (size_t i = 0; t && i < json_object_array_length(a); i++) {
		struct json_object *s = json_object_array_get_idx(a, i), *x;
		time_t at = json_object_object_get_ex(s, "created_at", &x) ?
				    (time_t)json_object_get_double(x) :
				    0;
		bool mem = json_object_object_get_ex(s, "memory", &x) && json_object_get_boolean(x);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&at));
		const char *row[] = { cli_str(s, "name", NULL), when, cli_str(s, "vm_state", NULL),
				      mem ? "yes" : "no (disks only)" };
		if (table_add(t, row)) {
			table_free(t);
			t = NULL;
		}
	}
	json_object_put(o);
	return table_print(t);
}

int cmd_snapshot(struct cli *c, int argc, char **argv)
{
	char name[32];
	const struct cli_command *k;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return help_print("snapshot");
	if (argc < 2)
		die_usage("snapshot: which? create, list, revert or delete (tern help snapshot)");
	snprintf(name, sizeof(name), "snapshot-%.16s", argv[1]);
	if (!(k = cli_command_find(name)) || strchr(argv[1], '-'))
		die_usage("snapshot: unknown subcommand '%s': create, list, revert or delete",
			  argv[1]);
	argv[1] = (char *)k->name;
	return k->fn(c, argc - 1, argv + 1);
}
