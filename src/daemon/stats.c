/*
 * tern stats: a running VM's counters, from tern-vmm's GET /metrics (running totals),
 * regrouped by disk and NIC: "block_ID" and "net_ID" become entries of "disks" and
 * "nics"; the sums ("block", "net") and "vcpu", "vsock", "entropy" stay as they are.
 */
#include "daemon/ternd.h"

#include "core/util.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void add_entry(struct json_object *arr, const char *id, struct json_object *counters)
{
	struct json_object *x = json_object_new_object();

	json_object_object_add(x, "id", json_object_new_string(id));
	json_object_object_foreach(counters, k, v) json_object_object_add(x, k, json_object_get(v));
	json_object_array_add(arr, x);
}

struct json_object *stats_get(struct ternd *t, struct vm_entry *e, int *status, char *err, size_t n)
{
	char sock[4200], why[512], *resp = NULL;
	struct json_object *m, *o, *disks, *nics;
	int r;

	if ((r = ops_need_state(t, e, "running", "paused", "read the counters of", err, n))) {
		*status = 409;
		return NULL;
	}
	r = vmm_request(ternd_vmm_path(t, e, "api.sock", sock, sizeof(sock)), "GET", "/metrics",
			NULL, API_TIMEOUT_MS, &resp, why, sizeof(why));
	if (r != 200 || !resp || !(m = json_tokener_parse(resp))) {
		*status = r == -ETIMEDOUT ? 504 : 500;
		fail_msg(err, n, -EIO, "%s: tern-vmm's GET /metrics: %s", e->def.name,
			 r == 200 ? "not JSON" :
			 r > 0	  ? (resp ? resp : "?") :
				    why);
		free(resp);
		return NULL;
	}
	free(resp);
	o = json_object_new_object();
	disks = json_object_new_array();
	nics = json_object_new_array();
	json_object_object_add(o, "name", json_object_new_string(e->def.name));
	json_object_object_foreach(m, key, val)
	{
		if (!strncmp(key, "block_", 6))
			add_entry(disks, key + 6, val);
		else if (!strncmp(key, "net_", 4))
			add_entry(nics, key + 4, val);
		else
			json_object_object_add(o, key, json_object_get(val));
	}
	json_object_object_add(o, "disks", disks);
	json_object_object_add(o, "nics", nics);
	json_object_put(m);
	*status = 200;
	return o;
}
