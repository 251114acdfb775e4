/*
 * tern-vmm's control API: Firecracker's REST resources over HTTP on a Unix socket
 * (docs/api.md). The same resource handlers read --config-file sections, so a config file
 * and the API calls that build the same VM are one code path.
 */
#ifndef TERN_API_API_H
#define TERN_API_API_H

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/loop.h"
#include "core/util.h"
#include "vmm/config.h"
#include "vmm/metrics.h"

struct vm;
struct http_server;
struct api;

#include "vmm/snapshot.h"

/* Boots the VM from a->cfg (main's job); 0, or -EINVAL with err for a 400. */
typedef int (*api_start_fn)(struct api *a, char *err, size_t errlen);
/* Loads a snapshot into this (unconfigured) tern-vmm (main's job); 0 or -EINVAL + err. */
typedef int (*api_restore_fn)(struct api *a, const char *state_path, const char *mem_path,
			      const struct restore_overrides *o, bool resume, char *err,
			      size_t errlen);

/* What GET /vm/config reports about the logger, as it was last set. */
struct api_logger {
	bool set;
	char *path;
	char level[16];
	bool show_level, show_origin;
};

struct api {
	struct loop *loop;
	struct http_server *srv;
	/* The VM's configuration: built by PUT/PATCH before boot, fixed after. */
	struct vmm_config cfg;
	bool smt;
	char *boot_args; /* as given (cfg.cmdline adds the root device at start) */
	struct vm *vm;	 /* once started */
	bool started;
	bool started_by_api; /* InstanceStart, not the command line or a config file */
	api_start_fn start;
	api_restore_fn restore;
	bool configured; /* a boot resource was set: a snapshot can no longer be loaded */
	struct api_logger logger;
	char *metrics_path;
	bool metrics_on;
	struct metrics metrics;
	int metrics_timer;
	struct api_counters counters;
	/* PUT /migrate/incoming: where the VM arrives from, and its overrides */
	char *incoming;
	struct restore_overrides incoming_ov;
	bool arriving; /* a migration is arriving: only GET and PUT /migrate/cancel are served */
};

/* Sets up a from cfg (the command line's VM options, if any) without serving. */
void api_init(struct api *a, struct loop *loop, const struct vmm_config *cfg, api_start_fn start);
/* Serves the API on a Unix socket at path. 0 or -errno + err. */
int api_serve(struct api *a, const char *path, char *err, size_t errlen);
/* The VM is running (booted by the command line or InstanceStart). */
void api_started(struct api *a, struct vm *vm);
/* Reads a Firecracker --config-file into a; bad input exits with status 2. */
void api_config_file(struct api *a, const char *path);

/* ---- resource handlers (src/api/res_*.c); 0 or -EINVAL + err (a 400) ---- */

int res_machine_config(struct api *a, struct json_object *o, bool patch, char *err, size_t n);
int res_boot_source(struct api *a, struct json_object *o, char *err, size_t n);
/*
 * PUT /files (tern's): image files ternd opened for a jailed tern-vmm, their descriptors
 * sent with the request; the disk layer opens those paths from them (image_fds.h).
 */
int res_files(struct api *a, struct json_object *o, int *fds, unsigned int nfds, char *err,
	      size_t n);
int res_drive(struct api *a, const char *id, struct json_object *o, bool patch, char *err,
	      size_t n);
int res_net_iface(struct api *a, const char *id, struct json_object *o, bool patch, char *err,
		  size_t n);
int res_vsock(struct api *a, struct json_object *o, char *err, size_t n);
int res_entropy(struct api *a, struct json_object *o, char *err, size_t n);
int res_logger(struct api *a, struct json_object *o, char *err, size_t n);
int res_metrics(struct api *a, struct json_object *o, char *err, size_t n);
int res_actions(struct api *a, struct json_object *o, char *err, size_t n);
int res_vm_state(struct api *a, struct json_object *o, char *err, size_t n);
int res_snapshot_create(struct api *a, struct json_object *o, char *err, size_t n);
int res_snapshot_load(struct api *a, struct json_object *o, char *err, size_t n);
/* network_overrides and vsock_override, as /snapshot/load and /migrate/incoming take them */
int res_restore_overrides(struct json_object *o, struct restore_overrides *ov, char *err, size_t n);
int res_migrate(struct api *a, struct json_object *o, char *err, size_t n);
int res_migrate_cancel(struct api *a, struct json_object *o, char *err, size_t n);
int res_migrate_incoming(struct api *a, struct json_object *o, char *err, size_t n);
struct json_object *res_migrate_get(struct api *a);
/* GET bodies (new json objects) */
struct json_object *res_instance_info(struct api *a);
struct json_object *res_machine_config_get(struct api *a);
struct json_object *res_vm_config_get(struct api *a);
/* tern's GET /metrics: every counter as a running total since the VM started. */
struct json_object *res_metrics_get(struct api *a);

/* Firecracker's words for a pre-boot resource after InstanceStart. */
#define API_AFTER_START "The requested operation is not supported after starting the microVM."
/* A refusal: writes the message and returns -EINVAL (a 400). */
#define api_fail(err, n, ...) fail_msg(err, n, -EINVAL, __VA_ARGS__)
/* A pre-boot-only resource: -EINVAL with Firecracker's message once started. */
int api_preboot(const struct api *a, char *err, size_t n);
/* Refuses a field tern does not implement when it is present and not null. */
int api_not_implemented(struct json_object *o, const char *field, const char *where, char *err,
			size_t n);

#define TERN_VERSION "0.1.0"

#endif
