/* /snapshot/create and /snapshot/load. */
#include "api/api.h"
#include "api/json_in.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#include <errno.h>
#include <string.h>

#define PATH_LEN_MAX 4095

int res_snapshot_create(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "snapshot_path", "mem_file_path", "snapshot_type",
					    "version", NULL };
	static const char *const types[] = { "Full", "Diff", NULL };
	const char *state, *mem, *ignored;
	unsigned int type = 0;
	int r;

	if ((r = jin_only(o, keys, "/snapshot/create", err, n)))
		return r;
	if ((r = jin_string(o, "snapshot_path", PATH_LEN_MAX, &state, err, n)) < 0)
		return r;
	if (!r || !*state)
		return api_fail(err, n, "'snapshot_path' is required (where the state goes)");
	if ((r = jin_string(o, "mem_file_path", PATH_LEN_MAX, &mem, err, n)) < 0)
		return r;
	if (!r || !*mem)
		return api_fail(err, n, "'mem_file_path' is required (where the memory goes)");
	if (!strcmp(state, mem))
		return api_fail(err, n, "'snapshot_path' and 'mem_file_path' must differ");
	if ((r = jin_enum(o, "snapshot_type", types, &type, err, n)) < 0)
		return r;
	/* Firecracker's deprecated target version: tern writes its one format version. */
	if ((r = jin_string(o, "version", 64, &ignored, err, n)) < 0)
		return r;
	if (!a->started)
		return api_fail(err, n,
				"there is no microVM to snapshot yet (InstanceStart first)");
	return vm_snapshot_create(a->vm, state, mem, type == 1, err, n) ? -EINVAL : 0;
}

int res_restore_overrides(struct json_object *o, struct restore_overrides *ov, char *err, size_t n)
{
	struct json_object *arr = NULL, *vs = NULL;
	int r;

	if (json_object_object_get_ex(o, "network_overrides", &arr) && arr) {
		if (!json_object_is_type(arr, json_type_array))
			return api_fail(err, n, "'network_overrides' must be an array");
		if (json_object_array_length(arr) > VMM_MAX_NETS)
			return api_fail(err, n, "'network_overrides': at most %d", VMM_MAX_NETS);
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			static const char *const keys[] = { "iface_id", "host_dev_name", NULL };
			struct json_object *e = json_object_array_get_idx(arr, i);
			const char *id, *dev;
			if (!json_object_is_type(e, json_type_object))
				return api_fail(err, n,
						"'network_overrides'[%zu] must be an object", i);
			if ((r = jin_only(e, keys, "network_overrides", err, n)))
				return r;
			if ((r = jin_string(e, "iface_id", NET_ID_MAX, &id, err, n)) <= 0 ||
			    (r = jin_string(e, "host_dev_name", IFNAMSIZ - 1, &dev, err, n)) <= 0)
				return r < 0 ? r :
					       api_fail(err, n,
							"'network_overrides'[%zu] needs 'iface_id' "
							"and 'host_dev_name'",
							i);
			strcpy(ov->nets[ov->nnets].iface_id, id);
			strcpy(ov->nets[ov->nnets].host_dev_name, dev);
			ov->nnets++;
		}
	}
	if (json_object_object_get_ex(o, "vsock_override", &vs) && vs) {
		static const char *const keys[] = { "uds_path", NULL };
		if (!json_object_is_type(vs, json_type_object))
			return api_fail(err, n, "'vsock_override' must be an object");
		if ((r = jin_only(vs, keys, "vsock_override", err, n)))
			return r;
		if ((r = jin_string(vs, "uds_path", 4095, &ov->vsock_uds, err, n)) <= 0)
			return r < 0 ? r : api_fail(err, n, "'vsock_override' needs 'uds_path'");
	}
	return 0;
}

int res_snapshot_load(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = {
		"snapshot_path",     "mem_file_path", "mem_backend",	   "enable_diff_snapshots",
		"track_dirty_pages", "resume_vm",     "network_overrides", "vsock_override",
		"clock_realtime",    "tern_clone",    "huge_pages",	   NULL
	};
	struct restore_overrides ov = { 0 };
	const char *state, *mem = NULL;
	bool resume = false, diff_old = false, flag = false;
	struct json_object *mb = NULL;
	int r;

	if ((r = jin_only(o, keys, "/snapshot/load", err, n)))
		return r;
	if (a->started)
		return api_fail(err, n,
				"a snapshot loads only into a tern-vmm that runs no microVM");
	if (a->configured)
		return api_fail(err, n,
				"Loading a microVM snapshot not allowed after configuring "
				"boot-specific resources.");
	if ((r = jin_string(o, "snapshot_path", PATH_LEN_MAX, &state, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'snapshot_path' is required");
	if ((r = jin_string(o, "mem_file_path", PATH_LEN_MAX, &mem, err, n)) < 0)
		return r;
	if (json_object_object_get_ex(o, "mem_backend", &mb) && mb) {
		static const char *const bkeys[] = { "backend_type", "backend_path", NULL };
		static const char *const btypes[] = { "File", "Uffd", NULL };
		unsigned int bt;
		if (mem)
			return api_fail(err, n, "give 'mem_backend' or 'mem_file_path', not both");
		if (!json_object_is_type(mb, json_type_object))
			return api_fail(err, n, "'mem_backend' must be an object");
		if ((r = jin_only(mb, bkeys, "mem_backend", err, n)))
			return r;
		if ((r = jin_enum(mb, "backend_type", btypes, &bt, err, n)) <= 0)
			return r < 0 ? r : api_fail(err, n, "'backend_type' is required (File)");
		if (bt == 1)
			return api_fail(err, n, "'backend_type' Uffd is not implemented in tern");
		if ((r = jin_string(mb, "backend_path", PATH_LEN_MAX, &mem, err, n)) <= 0)
			return r < 0 ? r : api_fail(err, n, "'backend_path' is required");
	}
	if (!mem)
		return api_fail(err, n, "'mem_backend' (or the older 'mem_file_path') is required");
	if ((r = jin_bool(o, "resume_vm", &resume, err, n)) < 0 ||
	    (r = jin_bool(o, "enable_diff_snapshots", &diff_old, err, n)) < 0 ||
	    (r = jin_bool(o, "track_dirty_pages", &ov.track_dirty, err, n)) < 0 ||
	    (r = jin_bool(o, "tern_clone", &ov.clone, err, n)) < 0 ||
	    (r = jin_bool(o, "clock_realtime", &flag, err, n)) < 0)
		return r;
	if (flag)
		return api_fail(err, n, "'clock_realtime' is not implemented in tern");
	/*
	 * "Snapshot" (the default): as tern-vmm's --huge-pages says, the memory file mapped
	 * unless that asked for huge pages. The others replace it: "None" maps the file,
	 * "Transparent" and "2M" read it into RAM of that kind (Firecracker takes 2M from a
	 * UFFD backend only; tern, which has the File backend, fills the pages itself).
	 */
	static const char *const huge[] = { "Snapshot", "None", "Transparent", "2M", NULL };
	unsigned int hp = 0;
	if ((r = jin_enum(o, "huge_pages", huge, &hp, err, n)) < 0)
		return r;
	/* After "Snapshot", the names of enum huge_pages in its order. */
	ov.huge_pages_set = hp > 0;
	ov.huge_pages = hp ? (enum huge_pages)(hp - 1) : HUGE_PAGES_NONE;
	ov.track_dirty |= diff_old;
	if ((r = res_restore_overrides(o, &ov, err, n)))
		return r;
	return a->restore(a, state, mem, &ov, resume, err, n);
}
