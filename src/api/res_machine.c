/* /machine-config: vCPUs, memory and the CPU knobs Firecracker exposes. */
#include "api/api.h"
#include "api/json_in.h"

#include <string.h>

static const char *const keys[] = { "vcpu_count",   "mem_size_mib", "smt", "track_dirty_pages",
				    "cpu_template", "huge_pages",   NULL };

/* Firecracker's names for enum huge_pages, in its order. */
static const char *const huge[] = { "None", "Transparent", "2M", NULL };

int res_machine_config(struct api *a, struct json_object *o, bool patch, char *err, size_t n)
{
	static const char *const templates[] = { "None", NULL };
	uint64_t cpus = a->cfg.cpus, mem = a->cfg.mem_mib;
	bool smt = a->smt, dirty = a->cfg.track_dirty;
	enum huge_pages huge_pages = a->cfg.huge_pages;
	unsigned int idx;
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/machine-config", err, n)))
		return r;
	if ((r = jin_u64(o, "vcpu_count", 1, VMM_MAX_CPUS, &cpus, err, n)) < 0)
		return r;
	if (!r && !patch)
		return api_fail(err, n, "'vcpu_count' is required (1 to %d)", VMM_MAX_CPUS);
	if ((r = jin_u64(o, "mem_size_mib", VMM_MIN_MEM_MIB, VMM_MAX_MEM_MIB, &mem, err, n)) < 0)
		return r;
	if (!r && !patch)
		return api_fail(err, n, "'mem_size_mib' is required (%d to %llu)", VMM_MIN_MEM_MIB,
				VMM_MAX_MEM_MIB);
	if ((r = jin_bool(o, "smt", &smt, err, n)) < 0)
		return r;
	if (smt)
		return api_fail(err, n,
				"'smt': true is not implemented in tern (one thread per "
				"core; false is accepted)");
	if ((r = jin_bool(o, "track_dirty_pages", &dirty, err, n)) < 0)
		return r;
	/* Firecracker's named templates (C3, T2...) describe AWS instance types. */
	if ((r = jin_enum(o, "cpu_template", templates, &idx, err, n)) < 0) {
		if (jin_has(o, "cpu_template") &&
		    json_object_is_type(json_object_object_get(o, "cpu_template"),
					json_type_string))
			return api_fail(err, n,
					"'cpu_template' other than \"None\" is not implemented in "
					"tern (tern's own templates: --cpu-template host|compat)");
		return r;
	}
	/*
	 * Left out of a PUT: Firecracker's default, "None", unless tern-vmm's command line
	 * said --huge-pages (its own default, transparent, is for VMs the API does not make).
	 */
	if ((r = jin_enum(o, "huge_pages", huge, &idx, err, n)) < 0)
		return r;
	if (r)
		huge_pages = (enum huge_pages)idx;
	else if (!patch)
		huge_pages = a->cfg.huge_pages_given ? a->cfg.huge_pages : HUGE_PAGES_NONE;
	if (huge_pages == HUGE_PAGES_2M && mem % 2)
		return api_fail(err, n,
				"'mem_size_mib' %llu is not a whole number of 2 MiB pages, which "
				"'huge_pages' \"2M\" needs",
				(unsigned long long)mem);
	a->cfg.cpus = (unsigned int)cpus;
	a->cfg.mem_mib = mem;
	a->smt = smt;
	a->cfg.track_dirty = dirty;
	a->cfg.huge_pages = huge_pages;
	return 0;
}

struct json_object *res_machine_config_get(struct api *a)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "vcpu_count", json_object_new_int64(a->cfg.cpus));
	json_object_object_add(o, "mem_size_mib", json_object_new_int64((int64_t)a->cfg.mem_mib));
	json_object_object_add(o, "smt", json_object_new_boolean(a->smt));
	json_object_object_add(o, "track_dirty_pages", json_object_new_boolean(a->cfg.track_dirty));
	json_object_object_add(o, "cpu_template", json_object_new_string("None"));
	json_object_object_add(o, "huge_pages", json_object_new_string(huge[a->cfg.huge_pages]));
	return o;
}
