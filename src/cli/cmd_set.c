/*
 * `tern set NAME [--cpu-max PCT] [--cpu-weight N] [--memory-max MIB] [--pids-max N]`: the
 * definition's cgroup limits, changed through PATCH; a running VM's cgroup gets them at
 * once (docs/ternd.md, "Limits").
 */
#include "cli/cli.h"
#include "core/log.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_set(struct cli *c, int argc, char **argv)
{
	uint64_t v[4] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX };
	static const char *const fields[] = { "cpu_max_percent", "cpu_weight", "memory_max_mib",
					      "pids_max" };
	const struct cli_opt opts[] = {
		{ .name = "cpu-max",
		  .kind = CLI_OPT_U64,
		  .out = &v[0],
		  .max = 25400,
		  .unit = "% of one CPU (0: no cap)" },
		{ .name = "cpu-weight",
		  .kind = CLI_OPT_U64,
		  .out = &v[1],
		  .max = 10000,
		  .unit = "(0: the default, 100)" },
		{ .name = "memory-max",
		  .kind = CLI_OPT_U64,
		  .out = &v[2],
		  .max = 1114112,
		  .unit = "MiB (0: no cap)" },
		{ .name = "pids-max",
		  .kind = CLI_OPT_U64,
		  .out = &v[3],
		  .max = 65536,
		  .unit = "(0: the default, 512)" },
	};
	const char *name;
	struct json_object *body, *lim, *stored = NULL, *got;
	char path[160];
	int e;

	if (cli_args(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &name, 1))
		return CLI_OK;
	lim = json_object_new_object();
	for (size_t i = 0; i < 4; i++)
		if (v[i] != UINT64_MAX)
			json_object_object_add(lim, fields[i],
					       json_object_new_int64((int64_t)v[i]));
	if (!json_object_object_length(lim)) {
		json_object_put(lim);
		die_usage("set: give at least one of --cpu-max, --cpu-weight, --memory-max, "
			  "--pids-max (tern help set)");
	}
	body = json_object_new_object();
	json_object_object_add(body, "limits", lim);
	cli_vm_path(name, NULL, path, sizeof(path));
	e = cli_call(c, "PATCH", path, json_object_to_json_string(body), CLI_OP_TIMEOUT_MS,
		     &stored);
	json_object_put(body);
	if (e)
		return e;
	if (c->json) {
		cli_print_json(stored);
	} else if (json_object_object_get_ex(stored, "limits", &got)) {
		printf("Limits of %s: %s\n", name,
		       json_object_to_json_string_ext(got, JSON_C_TO_STRING_SPACED));
	}
	json_object_put(stored);
	return CLI_OK;
}
