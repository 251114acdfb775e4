/*
 * `tern set NAME [--cpu-max PCT] [--cpu-weight N] [--memory-max MIB] [--pids-max N]
 * [--disk I [--read-iops N] [--write-iops N] [--read-mib N] [--write-mib N]]`: the
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

static const char *const io_fields[] = { "read_iops", "write_iops", "read_mib_s", "write_mib_s" };

/*
 * limits.disks with disk's entry changed where io[k] was given: the definition's list
 * (PATCH replaces it whole), grown with empty entries to reach disk. NULL + status on
 * failure (the "tern:" line printed).
 */
static struct json_object *disk_limits(struct cli *c, const char *name, uint64_t disk,
				       const uint64_t io[4], int *status)
{
	struct json_object *vm, *def, *lim, *cur = NULL;

	if ((*status = cli_get_definition(c, name, &vm, &def)))
		return NULL;
	struct json_object *a = json_object_new_array();
	if (json_object_object_get_ex(def, "limits", &lim) &&
	    json_object_object_get_ex(lim, "disks", &cur) &&
	    json_object_is_type(cur, json_type_array))
		for (size_t i = 0; i < json_object_array_length(cur); i++)
			json_object_array_add(a,
					      json_object_get(json_object_array_get_idx(cur, i)));
	json_object_put(vm);
	while (json_object_array_length(a) <= disk)
		json_object_array_add(a, json_object_new_object());
	struct json_object *entry = json_object_array_get_idx(a, disk);
	for (size_t k = 0; k < 4; k++)
		if (io[k] != UINT64_MAX)
			json_object_object_add(entry, io_fields[k],
					       json_object_new_int64((int64_t)io[k]));
	return a;
}

int cmd_set(struct cli *c, int argc, char **argv)
{
	uint64_t v[4] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX };
	uint64_t io[4] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX }, disk = UINT64_MAX;
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
		{ .name = "disk",
		  .kind = CLI_OPT_U64,
		  .out = &disk,
		  .max = 15,
		  .unit = "(a disk's index)" },
		{ .name = "read-iops",
		  .kind = CLI_OPT_U64,
		  .out = &io[0],
		  .max = 1000000,
		  .unit = "reads/s (0: no cap)" },
		{ .name = "write-iops",
		  .kind = CLI_OPT_U64,
		  .out = &io[1],
		  .max = 1000000,
		  .unit = "writes/s (0: no cap)" },
		{ .name = "read-mib",
		  .kind = CLI_OPT_U64,
		  .out = &io[2],
		  .max = 100000,
		  .unit = "MiB/s read (0: no cap)" },
		{ .name = "write-mib",
		  .kind = CLI_OPT_U64,
		  .out = &io[3],
		  .max = 100000,
		  .unit = "MiB/s written (0: no cap)" },
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
	bool io_given = false;
	for (size_t k = 0; k < 4; k++)
		io_given |= io[k] != UINT64_MAX;
	if (io_given != (disk != UINT64_MAX)) {
		json_object_put(lim);
		die_usage("set: --disk I goes with at least one of --read-iops, --write-iops, "
			  "--read-mib, --write-mib, and they with it (tern help set)");
	}
	if (io_given) {
		int st;
		struct json_object *a = disk_limits(c, name, disk, io, &st);
		if (!a) {
			json_object_put(lim);
			return st;
		}
		json_object_object_add(lim, "disks", a);
	}
	if (!json_object_object_length(lim)) {
		json_object_put(lim);
		die_usage("set: give at least one of --cpu-max, --cpu-weight, --memory-max, "
			  "--pids-max, --disk I with --read-iops ... (tern help set)");
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
