/*
 * Maps each request to its resource handler and turns the outcome into Firecracker's
 * answers: 204 (or 200 and a body) on success, 400 {"fault_message"} otherwise.
 */
#include "api/api.h"
#include "api/http.h"
#include "api/json_in.h"
#include "api/router.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MAX 512

/* Firecracker's endpoints that tern does not serve (yet): every method gets a 400. */
static const char *const not_implemented[] = {
	"/balloon",
	"/balloon/statistics",
	"/balloon/hinting/start",
	"/balloon/hinting/status",
	"/balloon/hinting/stop",
	"/cpu-config",
	"/mmds",
	"/mmds/config",
	"/serial",
	"/hotplug/memory",
	NULL,
};

static char *fault(const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "fault_message", json_object_new_string(msg));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

static void reply_json(struct http_response *resp, struct json_object *o)
{
	resp->status = 200;
	resp->body = strdup(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* "/drives/ID" → "ID" when path starts with prefix and one non-empty segment follows. */
static const char *path_id(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) || !path[n] || strchr(path + n, '/'))
		return NULL;
	return path + n;
}

static bool is_not_implemented(const char *path)
{
	for (const char *const *p = not_implemented; *p; p++)
		if (!strcmp(path, *p))
			return true;
	return path_id(path, "/pmem/") != NULL;
}

enum outcome { DONE, BAD_ROUTE };

/* Runs a handler that takes a JSON object body. */
static int with_body(const struct http_request *req, struct json_object **o, char *err)
{
	*o = jin_parse_object(req->body, req->body_len, err, ERR_MAX);
	return *o ? 0 : -1;
}

static enum outcome route(struct api *a, const struct http_request *req, struct http_response *resp,
			  char *err)
{
	const char *p = req->path, *id;
	enum http_method m = req->method;
	struct json_object *o = NULL;
	int r;

	if (m == HTTP_M_GET) {
		if (!strcmp(p, "/"))
			reply_json(resp, res_instance_info(a));
		else if (!strcmp(p, "/version")) {
			struct json_object *v = json_object_new_object();
			json_object_object_add(v, "firecracker_version",
					       json_object_new_string(TERN_VERSION));
			reply_json(resp, v);
		} else if (!strcmp(p, "/machine-config"))
			reply_json(resp, res_machine_config_get(a));
		else if (!strcmp(p, "/vm/config"))
			reply_json(resp, res_vm_config_get(a));
		else if (!strcmp(p, "/metrics"))
			reply_json(resp, res_metrics_get(a));
		else if (!strcmp(p, "/migrate"))
			reply_json(resp, res_migrate_get(a));
		else
			return BAD_ROUTE;
		return DONE;
	}
	if (m != HTTP_M_PUT && m != HTTP_M_PATCH)
		return BAD_ROUTE;
	bool patch = m == HTTP_M_PATCH;
	/* Resolve the route before reading the body, so a bad path is named as such. */
	enum {
		MACHINE,
		BOOT,
		DRIVE,
		NIC,
		VSOCK,
		ENTROPY,
		LOGGER,
		METRICS,
		ACTIONS,
		VM,
		SNAP_CREATE,
		SNAP_LOAD,
		MIGRATE,
		MIGRATE_CANCEL,
		MIGRATE_INCOMING,
		FILES
	} res;
	if (!strcmp(p, "/machine-config"))
		res = MACHINE;
	else if (!patch && !strcmp(p, "/boot-source"))
		res = BOOT;
	else if ((id = path_id(p, "/drives/")))
		res = DRIVE;
	else if ((id = path_id(p, "/network-interfaces/")))
		res = NIC;
	else if (!patch && !strcmp(p, "/vsock"))
		res = VSOCK;
	else if (!patch && !strcmp(p, "/entropy"))
		res = ENTROPY;
	else if (!patch && !strcmp(p, "/logger"))
		res = LOGGER;
	else if (!patch && !strcmp(p, "/metrics"))
		res = METRICS;
	else if (!patch && !strcmp(p, "/actions"))
		res = ACTIONS;
	else if (patch && !strcmp(p, "/vm"))
		res = VM;
	else if (!patch && !strcmp(p, "/snapshot/create"))
		res = SNAP_CREATE;
	else if (!patch && !strcmp(p, "/snapshot/load"))
		res = SNAP_LOAD;
	else if (!patch && !strcmp(p, "/migrate"))
		res = MIGRATE;
	else if (!patch && !strcmp(p, "/migrate/cancel"))
		res = MIGRATE_CANCEL;
	else if (!patch && !strcmp(p, "/migrate/incoming"))
		res = MIGRATE_INCOMING;
	else if (!patch && !strcmp(p, "/files"))
		res = FILES;
	else
		return BAD_ROUTE;
	if (with_body(req, &o, err)) {
		resp->status = 400;
		return DONE;
	}
	if (a->arriving && res != MIGRATE_CANCEL) {
		json_object_put(o);
		snprintf(err, ERR_MAX,
			 "a migration is arriving in this tern-vmm: its machine comes from the "
			 "source (GET /migrate shows how far it is; PUT /migrate/cancel ends it)");
		resp->status = 400;
		return DONE;
	}
	switch (res) {
	case MACHINE:
		r = res_machine_config(a, o, patch, err, ERR_MAX);
		break;
	case BOOT:
		r = res_boot_source(a, o, err, ERR_MAX);
		break;
	case DRIVE:
		r = res_drive(a, id, o, patch, err, ERR_MAX);
		break;
	case FILES:
		r = res_files(a, o, req->fds, req->nfds, err, ERR_MAX);
		break;
	case NIC:
		r = res_net_iface(a, id, o, patch, err, ERR_MAX);
		break;
	case VSOCK:
		r = res_vsock(a, o, err, ERR_MAX);
		break;
	case ENTROPY:
		r = res_entropy(a, o, err, ERR_MAX);
		break;
	case LOGGER:
		r = res_logger(a, o, err, ERR_MAX);
		break;
	case METRICS:
		r = res_metrics(a, o, err, ERR_MAX);
		break;
	case ACTIONS:
		r = res_actions(a, o, err, ERR_MAX);
		break;
	case VM:
		r = res_vm_state(a, o, err, ERR_MAX);
		break;
	case SNAP_CREATE:
		r = res_snapshot_create(a, o, err, ERR_MAX);
		break;
	case SNAP_LOAD:
		r = res_snapshot_load(a, o, err, ERR_MAX);
		break;
	case MIGRATE:
		r = res_migrate(a, o, err, ERR_MAX);
		break;
	case MIGRATE_CANCEL:
		r = res_migrate_cancel(a, o, err, ERR_MAX);
		break;
	default:
		r = res_migrate_incoming(a, o, err, ERR_MAX);
		break;
	}
	json_object_put(o);
	/* What a boot builds on was set: from now on this process boots, it does not restore. */
	if (!r && res <= ENTROPY)
		a->configured = true;
	resp->status = r ? 400 : 204;
	return DONE;
}

void api_handle(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct api *a = opaque;
	char err[ERR_MAX] = "";

	a->counters.requests++;
	resp->body = NULL;
	if (is_not_implemented(req->path)) {
		snprintf(err, sizeof(err), "%s %s is not implemented in tern", req->method_name,
			 req->path);
		resp->status = 400;
	} else if (route(a, req, resp, err) == BAD_ROUTE) {
		snprintf(err, sizeof(err), "Invalid request method and/or path: %s %s",
			 req->method_name, req->path);
		resp->status = 400;
	}
	if (resp->status >= 400) {
		a->counters.errors++;
		free(resp->body);
		resp->body = fault(err);
		log_debug("API %s %s: %d %s", req->method_name, req->path, resp->status, err);
	} else {
		log_debug("API %s %s: %d", req->method_name, req->path, resp->status);
	}
}
