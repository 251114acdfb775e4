/* `tern stats NAME`: a running VM's counters, per disk and per NIC (virsh domstats). */
#include "cli/cli.h"
#include "cli/table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *num(struct json_object *o, const char *key, char *buf, size_t n)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, key, &x))
		return NULL;
	snprintf(buf, n, "%" PRId64, json_object_get_int64(x));
	return buf;
}

/* One table: ID, then the counters named in keys (headers in caps). */
static int print_table(struct json_object *arr, const char *const *headers, const char *const *keys,
		       size_t nkeys)
{
	struct table *t = table_new(nkeys + 1, headers);
	char cells[8][32];

	for (size_t i = 0; t && i < json_object_array_length(arr); i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);
		const char *row[9] = { cli_str(d, "id", NULL) };
		for (size_t k = 0; k < nkeys; k++)
			row[k + 1] = num(d, keys[k], cells[k], sizeof(cells[k]));
		if (table_add(t, row)) {
			table_free(t);
			t = NULL;
		}
	}
	return table_print(t);
}

int cmd_stats(struct cli *c, int argc, char **argv)
{
	static const char *const dh[] = { "DISK",  "READ_BYTES", "WRITE_BYTES",
					  "READS", "WRITES",	 "FLUSHES" };
	static const char *const dk[] = { "read_bytes", "write_bytes", "read_count", "write_count",
					  "flush_count" };
	static const char *const nh[] = { "NIC",	"RX_BYTES", "TX_BYTES", "RX_PACKETS",
					  "TX_PACKETS", "RX_FAILS", "TX_FAILS" };
	static const char *const nk[] = { "rx_bytes_count",   "tx_bytes_count", "rx_packets_count",
					  "tx_packets_count", "rx_fails",	"tx_fails" };
	const char *name;
	char path[160];
	struct json_object *o, *disks, *nics;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	cli_vm_path(name, "/stats", path, sizeof(path));
	if ((e = cli_call(c, "GET", path, NULL, CLI_GET_TIMEOUT_MS, &o)))
		return e;
	if (c->json) {
		cli_print_json(o);
		json_object_put(o);
		return CLI_OK;
	}
	if (!json_object_object_get_ex(o, "disks", &disks) ||
	    !json_object_object_get_ex(o, "nics", &nics)) {
		json_object_put(o);
		cli_error("ternd's answer has no \"disks\" or \"nics\"");
		return CLI_FAILED;
	}
	printf("%s: counters since it started\n", name);
	if (json_object_array_length(disks))
		e = print_table(disks, dh, dk, 5);
	else
		printf("no disks\n");
	if (!e && json_object_array_length(nics))
		e = print_table(nics, nh, nk, 6);
	else if (!e)
		printf("no NICs\n");
	json_object_put(o);
	return e;
}
