/*
 * /migrate: live migration (src/vmm/migrate.h). tern's own resource; Firecracker has
 * none. PUT /migrate starts sending this VM, GET /migrate reports, PUT /migrate/cancel
 * stops; PUT /migrate/incoming makes an unconfigured tern-vmm the destination (as
 * --incoming does).
 */
#include "api/api.h"
#include "api/json_in.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define DOWNTIME_MAX_MS 3600000ULL
#define BANDWIDTH_MAX_MIB_S (1024ULL * 1024)
#define ROUNDS_MAX 10000ULL

int res_migrate(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "destination",     "downtime_limit_ms",
					    "bandwidth_mib_s", "auto_converge",
					    "max_rounds",      "post_copy",
					    "copy_storage",    NULL };
	struct migrate_params p = { .downtime_limit_ms = MIG_DEFAULT_DOWNTIME_MS,
				    .max_rounds = MIG_DEFAULT_MAX_ROUNDS };
	const char *dest;
	uint64_t rounds = MIG_DEFAULT_MAX_ROUNDS;
	int r;

	if ((r = jin_only(o, keys, "/migrate", err, n)))
		return r;
	if ((r = jin_string(o, "destination", MIG_URI_MAX - 1, &dest, err, n)) < 0)
		return r;
	if (!r || !*dest)
		return api_fail(err, n,
				"'destination' is required (tcp:HOST:PORT, unix:PATH or fd:N)");
	snprintf(p.uri, sizeof(p.uri), "%s", dest);
	if ((r = jin_u64(o, "downtime_limit_ms", 1, DOWNTIME_MAX_MS, &p.downtime_limit_ms, err,
			 n)) < 0 ||
	    (r = jin_u64(o, "bandwidth_mib_s", 0, BANDWIDTH_MAX_MIB_S, &p.bandwidth_mib_s, err,
			 n)) < 0 ||
	    (r = jin_u64(o, "max_rounds", 1, ROUNDS_MAX, &rounds, err, n)) < 0 ||
	    (r = jin_bool(o, "auto_converge", &p.auto_converge, err, n)) < 0)
		return r;
	p.max_rounds = (unsigned int)rounds;
	if ((r = jin_bool(o, "post_copy", &p.post_copy, err, n)) < 0)
		return r;
	if ((r = jin_bool(o, "copy_storage", &p.copy_storage, err, n)) < 0)
		return r;
	if (!a->started)
		return api_fail(err, n, "there is no microVM to migrate (InstanceStart first)");
	return migrate_start(a->vm, &p, err, n) ? -EINVAL : 0;
}

int res_migrate_cancel(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { NULL };
	int r;

	if ((r = jin_only(o, keys, "/migrate/cancel", err, n)))
		return r;
	if (a->arriving)
		return migrate_incoming_cancel(err, n) ? -EINVAL : 0;
	return migrate_cancel(err, n) ? -EINVAL : 0;
}

int res_migrate_incoming(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "source", "network_overrides", "vsock_override",
					    "disk_paths", NULL };
	struct json_object *arr = NULL;
	struct mig_uri u;
	const char *src;
	int r;

	if ((r = jin_only(o, keys, "/migrate/incoming", err, n)))
		return r;
	if (a->started || a->incoming)
		return api_fail(err, n,
				"a migration arrives only in a tern-vmm that runs no microVM");
	if (a->configured)
		return api_fail(err, n,
				"a migration cannot arrive after boot resources were configured");
	if ((r = jin_string(o, "source", MIG_URI_MAX - 1, &src, err, n)) < 0)
		return r;
	if (!r || !*src)
		return api_fail(err, n,
				"'source' is required (where to listen: tcp:HOST:PORT, unix:PATH "
				"or fd:N)");
	if (mig_uri_parse(src, &u, err, n))
		return -EINVAL;
	memset(&a->incoming_ov, 0, sizeof(a->incoming_ov));
	if ((r = res_restore_overrides(o, &a->incoming_ov, err, n)))
		return r;
	/* Both strings live in the request's JSON, which goes when this returns. */
	if (a->incoming_ov.vsock_uds &&
	    !(a->incoming_ov.vsock_uds = strdup(a->incoming_ov.vsock_uds)))
		return api_fail(err, n, "out of memory");
	if (json_object_object_get_ex(o, "disk_paths", &arr) && arr) {
		if (!json_object_is_type(arr, json_type_array) ||
		    json_object_array_length(arr) > VMM_MAX_DISKS)
			return api_fail(err, n, "'disk_paths' must be an array of at most %d",
					VMM_MAX_DISKS);
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			static const char *const dkeys[] = { "drive_id", "path_on_host", NULL };
			struct json_object *e = json_object_array_get_idx(arr, i);
			const char *id, *path;
			if (!json_object_is_type(e, json_type_object))
				return api_fail(err, n, "'disk_paths'[%zu] must be an object", i);
			if ((r = jin_only(e, dkeys, "disk_paths", err, n)))
				return r;
			if ((r = jin_string(e, "drive_id", DISK_ID_MAX + 7, &id, err, n)) <= 0 ||
			    (r = jin_string(e, "path_on_host", 4095, &path, err, n)) <= 0 || !*path)
				return r < 0 ? r :
					       api_fail(err, n,
							"'disk_paths'[%zu] needs 'drive_id' and "
							"'path_on_host'",
							i);
			struct restore_overrides *ov = &a->incoming_ov;
			snprintf(ov->disks[ov->ndisks].drive_id, sizeof(ov->disks[0].drive_id),
				 "%s", id);
			if (!(ov->disks[ov->ndisks].path = strdup(path)))
				return api_fail(err, n, "out of memory");
			ov->ndisks++;
		}
	}
	a->incoming = strdup(src);
	return a->incoming ? 0 : api_fail(err, n, "out of memory");
}

struct json_object *res_migrate_get(struct api *a)
{
	struct migrate_progress p;
	struct json_object *o = json_object_new_object();

	migrate_get_progress(&p);
#define ADD_U64(k, v) json_object_object_add(o, k, json_object_new_uint64(v))
	json_object_object_add(o, "status", json_object_new_string(migrate_state_name(p.state)));
	json_object_object_add(o, "role",
			       json_object_new_string(p.state == MIGRATE_NONE ? "none" :
						      p.incoming	      ? "destination" :
										"source"));
	ADD_U64("round", p.round);
	ADD_U64("ram_bytes", p.ram_bytes);
	ADD_U64("bytes_sent", p.bytes_sent);
	ADD_U64("bytes_left", p.bytes_left);
	ADD_U64("data_pages", p.data_pages);
	ADD_U64("zero_pages", p.zero_pages);
	ADD_U64("dirty_rate_bytes_s", p.dirty_rate_bps);
	ADD_U64("bandwidth_bytes_s", p.bandwidth_bps);
	ADD_U64("expected_downtime_ms", p.expected_downtime_ms);
	ADD_U64("throttle_percent", p.throttle_pct);
	if (p.state == MIGRATE_COMPLETED) {
		json_object_object_add(o, "downtime_ms",
				       json_object_new_double((double)p.downtime_us / 1000.0));
		ADD_U64("total_ms", p.total_ms);
	}
	if (p.error[0])
		json_object_object_add(o, "error", json_object_new_string(p.error));
#undef ADD_U64
	return o;
}
