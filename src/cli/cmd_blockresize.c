/*
 * `tern blockresize NAME DISK SIZE` (virsh blockresize): grows a running or paused VM's
 * disk, by index or id, to SIZE bytes (suffixes K M G T), and the guest sees it at once.
 */
#include "cli/cli.h"
#include "cli/img.h"
#include "core/log.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_blockresize(struct cli *c, int argc, char **argv)
{
	const char *pos[3];
	struct json_object *body, *vm = NULL;
	uint64_t size, index;
	char path[160], *end;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, pos, 3))
		return CLI_OK;
	if (!img_parse_size(pos[2], &size) || size < 512 || size % 512)
		die_usage(
			"blockresize: SIZE '%s' is not a size in whole 512-byte sectors (bytes, or "
			"with K, M, G or T: 10G)",
			pos[2]);
	body = json_object_new_object();
	/* A number is the disk's index, anything else its id. */
	index = strtoull(pos[1], &end, 10);
	if (*pos[1] >= '0' && *pos[1] <= '9' && !*end)
		json_object_object_add(body, "disk", json_object_new_int64((int64_t)index));
	else
		json_object_object_add(body, "disk", json_object_new_string(pos[1]));
	json_object_object_add(body, "size", json_object_new_int64((int64_t)size));
	cli_vm_path(pos[0], "/blockresize", path, sizeof(path));
	e = cli_call(c, "POST", path, json_object_to_json_string(body), CLI_OP_TIMEOUT_MS, &vm);
	json_object_put(body);
	if (e)
		return e;
	if (c->json)
		cli_print_json(vm);
	else
		printf("Disk %s of %s is now %llu bytes\n", pos[1], cli_str(vm, "name", pos[0]),
		       (unsigned long long)size);
	json_object_put(vm);
	return CLI_OK;
}
