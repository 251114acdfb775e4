/*
 * libFuzzer harness for the API's JSON resource handlers (src/api/router.c, res_*.c,
 * json_in.c) on a VM that has not started: the first byte picks an endpoint and method,
 * the rest is the request body. Whatever the body, the answer must be 204 or 400 with a
 * JSON {"fault_message"} body, and the configuration must stay inside its limits.
 *
 * The VM side (pause, Ctrl-Alt-Del, the power button, metrics, log files) is stubbed
 * below: the harness must not create files at paths the fuzzer invents, so /logger and
 * /metrics are not routed here; their field parsing is the same json_in code.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http.h"
#include "api/router.h"
#include "core/log.h"
#include "devices/i8042.h"
#include "vmm/disk_resize.h"
#include "vmm/disk_swap.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"
#include "fuzz.h"

/* ---- stubs: nothing here starts a VM ---- */
int vm_pause(struct vm *vm)
{
	__builtin_trap(); /* unreachable before start */
}
void vm_resume(struct vm *vm)
{
	__builtin_trap();
}
bool vm_is_paused(const struct vm *vm)
{
	return false;
}
void i8042_send_ctrl_alt_del(struct i8042 *k)
{
	__builtin_trap();
}
void ged_power_button(struct ged *g)
{
	__builtin_trap();
}
int metrics_open(struct metrics *m, const char *path, char *err, size_t errlen)
{
	return -1;
}
int metrics_flush(struct metrics *m, const struct vm *vm)
{
	return -1;
}
void metrics_close(struct metrics *m)
{
}
void metrics_sample_read(const struct metrics *m, const struct vm *vm, struct metrics_sample *s)
{
	memset(s, 0, sizeof(*s));
}
struct json_object *metrics_format(const struct metrics_sample *now,
				   const struct metrics_sample *prev, uint64_t utc_ms)
{
	return json_object_new_object();
}

int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
		       char *err, size_t errlen)
{
	__builtin_trap(); /* unreachable: nothing is started */
}

int vm_disk_grow(struct vm *vm, unsigned int i, uint64_t size, char *err, size_t n)
{
	__builtin_trap(); /* unreachable: only a started VM's drive grows */
}

int vm_disk_swap(struct vm *vm, unsigned int i, const char *path, enum disk_format format,
		 char *err, size_t n)
{
	__builtin_trap(); /* unreachable: only a started VM's drive moves */
}

/*
 * /migrate is not routed here (its handlers reach the migration thread and sockets), but the
 * router links against them.
 */
int res_migrate(struct api *a, struct json_object *o, char *err, size_t n)
{
	__builtin_trap();
}
int res_migrate_cancel(struct api *a, struct json_object *o, char *err, size_t n)
{
	__builtin_trap();
}
int res_migrate_incoming(struct api *a, struct json_object *o, char *err, size_t n)
{
	__builtin_trap();
}
struct json_object *res_migrate_get(struct api *a)
{
	__builtin_trap();
}

static int no_start(struct api *a, char *err, size_t n)
{
	return api_fail(err, n, "not in the fuzzer");
}

/* Every field of a load was parsed and checked when this is called. */
static int no_restore(struct api *a, const char *state, const char *mem,
		      const struct restore_overrides *o, bool resume, char *err, size_t n)
{
	ASSERT(state && mem && o->nnets <= VMM_MAX_NETS);
	return api_fail(err, n, "not in the fuzzer");
}

static const struct {
	enum http_method m;
	const char *path;
} routes[] = {
	{ HTTP_M_PUT, "/machine-config" },
	{ HTTP_M_PATCH, "/machine-config" },
	{ HTTP_M_PUT, "/boot-source" },
	{ HTTP_M_PUT, "/drives/rootfs" },
	{ HTTP_M_PATCH, "/drives/rootfs" },
	{ HTTP_M_PUT, "/network-interfaces/eth0" },
	{ HTTP_M_PATCH, "/network-interfaces/eth0" },
	{ HTTP_M_PUT, "/vsock" },
	{ HTTP_M_PUT, "/entropy" },
	{ HTTP_M_PUT, "/actions" },
	{ HTTP_M_PATCH, "/vm" },
	{ HTTP_M_GET, "/vm/config" },
	{ HTTP_M_GET, "/" },
	{ HTTP_M_PUT, "/balloon" },
	{ HTTP_M_PUT, "/nowhere" },
	{ HTTP_M_PUT, "/snapshot/create" },
	{ HTTP_M_PUT, "/snapshot/load" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct api a;
	static bool ready;
	static struct vmm_config cfg;

	if (!ready) {
		log_set_level(LOG_ERROR);
		cfg.cpus = 1;
		cfg.mem_mib = 128;
		cfg.id = "fuzz";
		ready = true;
	}
	if (size < 1)
		return 0;
	/* A fresh configuration per input keeps runs independent. */
	for (unsigned int i = 0; i < a.cfg.ndisks; i++)
		free(a.cfg.disks[i].path);
	free((char *)a.cfg.kernel);
	free((char *)a.cfg.initrd);
	free(a.boot_args);
	api_init(&a, NULL, &cfg, no_start);
	a.restore = no_restore;

	char *body = malloc(size);
	memcpy(body, data + 1, size - 1);
	body[size - 1] = 0;
	unsigned int pick = data[0] % (sizeof(routes) / sizeof(routes[0]));
	struct http_request req = {
		.method = routes[pick].m,
		.method_name = routes[pick].m == HTTP_M_GET ? "GET" :
			       routes[pick].m == HTTP_M_PUT ? "PUT" :
							      "PATCH",
		.path = routes[pick].path,
		.body = body,
		.body_len = size - 1,
	};
	struct http_response resp = { 0 };
	api_handle(&a, &req, &resp);
	ASSERT(resp.status == 200 || resp.status == 204 || resp.status == 400);
	if (resp.status == 400) {
		ASSERT(resp.body && strstr(resp.body, "\"fault_message\""));
		ASSERT(a.counters.errors > 0);
	}
	ASSERT(a.cfg.cpus >= 1 && a.cfg.cpus <= VMM_MAX_CPUS);
	ASSERT(a.cfg.mem_mib >= VMM_MIN_MEM_MIB && a.cfg.mem_mib <= VMM_MAX_MEM_MIB);
	ASSERT(a.cfg.ndisks <= 1 && a.cfg.nnets <= 1);
	ASSERT(!a.started);
	free(resp.body);
	free(body);
	return 0;
}
