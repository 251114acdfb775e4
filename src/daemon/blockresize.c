/*
 * POST /vms/NAME/blockresize {"disk": I or "ID", "size": BYTES} (virsh blockresize): a
 * running or paused VM's disk grown through its tern-vmm (PATCH /drives tern_size), which
 * grows the raw file or qcow2 image and tells the guest. A shut-off VM's image grows with
 * `tern img resize`.
 */
#include "daemon/ternd.h"
#include "daemon/vmm_client.h"

#include "api/json_in.h"
#include "core/util.h"
#include "vmm/disk_resize.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The disk the body names: its index (0, 1 ... in the definition) or its id. */
static int which_disk(const struct vmdef *d, struct json_object *o, char *err, size_t n)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, "disk", &v))
		return fail_msg(err, n, -EINVAL, "'disk' is required (an index or an id)");
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		if (i < 0 || i >= (int64_t)d->ndisks)
			return fail_msg(err, n, -EINVAL, "'disk': %lld is not 0 to %d (%s has %u)",
					(long long)i, (int)d->ndisks - 1, d->name, d->ndisks);
		return (int)i;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail_msg(err, n, -EINVAL, "'disk' must be an index or a disk's id");
	for (unsigned int i = 0; i < d->ndisks; i++)
		if (d->disks[i].id && !strcmp(d->disks[i].id, json_object_get_string(v)))
			return (int)i;
	return fail_msg(err, n, -EINVAL, "'disk': %s has no disk with id '%.32s'", d->name,
			json_object_get_string(v));
}

int op_blockresize(struct ternd *t, struct vm_entry *e, const char *body, char *err, size_t n)
{
	static const char *const keys[] = { "disk", "size", NULL };
	struct json_object *o = jin_parse_object(body ? body : "", body ? strlen(body) : 0, err, n);
	uint64_t size = 0;
	int r, i;

	if (!o)
		return -EINVAL;
	if ((r = jin_only(o, keys, "a blockresize request", err, n)) < 0 ||
	    (r = jin_u64(o, "size", 512, VM_DISK_SIZE_MAX, &size, err, n)) < 0) {
		json_object_put(o);
		return -EINVAL;
	}
	i = r ? which_disk(&e->def, o, err, n) : fail_msg(err, n, -EINVAL, "'size' is required");
	json_object_put(o);
	if (i < 0)
		return i;
	if ((r = ops_need_state(t, e, "running", "paused", "resize a disk of", err, n)))
		return fail_msg(err, n, r,
				"%s is not running: a shut-off VM's image grows with tern img "
				"resize %s %llu",
				e->def.name, e->def.disks[i].path, (unsigned long long)size);
	/* tern-vmm knows a disk without an id by its place (docs/api.md, "Drives"). */
	char id[32], path[64], sock[4200], *resp = NULL;
	if (!vmdef_drive_id(&e->def, (unsigned int)i, id, sizeof(id)))
		return fail_msg(err, n, -EINVAL,
				"disk %d's id '%s' has a character the API's path cannot carry "
				"(letters, digits, '.', '_', '-')",
				i, id);
	snprintf(path, sizeof(path), "/drives/%s", id);
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "drive_id", json_object_new_string(id));
	json_object_object_add(b, "tern_size", json_object_new_int64((int64_t)size));
	char *req = strdup(json_object_to_json_string(b));
	json_object_put(b);
	if (!req)
		return -ENOMEM;
	r = vmm_request(ternd_vmm_path(t, e, "api.sock", sock, sizeof(sock)), "PATCH", path, req,
			API_TIMEOUT_MS, &resp, err, n);
	free(req);
	if (r == 204 || r == 200) {
		r = 0;
	} else if (r == 400) {
		/* tern-vmm's reason (a smaller size, a read-only disk ...) is the user's. */
		struct json_object *f = json_tokener_parse(resp), *m;
		r = fail_msg(err, n, -EINVAL, "disk %d of %s: %s", i, e->def.name,
			     f && json_object_object_get_ex(f, "fault_message", &m) ?
				     json_object_get_string(m) :
				     resp);
		json_object_put(f);
	} else if (r > 0) {
		r = fail_msg(err, n, -EIO, "%s: tern-vmm answered PATCH %s with %d: %s",
			     e->def.name, path, r, resp ? resp : "");
	}
	free(resp);
	if (r)
		return r;
	struct json_object *d = json_object_new_object();
	json_object_object_add(d, "disk", json_object_new_int(i));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	ternd_event(t, e, "disk", "resized", d);
	return 0;
}
