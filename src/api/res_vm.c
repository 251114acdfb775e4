/* /actions, /vm, GET / and GET /vm/config: the instance as a whole. */
#include "api/api.h"
#include "api/json_in.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int res_actions(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "action_type", NULL };
	/* SendPowerButton is tern's: Firecracker has no ACPI power button to press. */
	static const char *const actions[] = { "InstanceStart", "SendCtrlAltDel", "FlushMetrics",
					       "SendPowerButton", NULL };
	enum { START, CTRL_ALT_DEL, FLUSH_METRICS, POWER_BUTTON };
	unsigned int act;
	int r;

	if ((r = jin_only(o, keys, "/actions", err, n)))
		return r;
	if ((r = jin_enum(o, "action_type", actions, &act, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n,
				"'action_type' is required (InstanceStart, "
				"SendCtrlAltDel, FlushMetrics, SendPowerButton)");
	switch (act) {
	case START:
		if (a->started)
			return api_fail(err, n, "the microVM is already running");
		if (!a->cfg.kernel)
			return api_fail(err, n, "no kernel to boot: PUT /boot-source first");
		return a->start(a, err, n);
	case CTRL_ALT_DEL:
		if (!a->started)
			return api_fail(err, n, "SendCtrlAltDel needs a running microVM");
		i8042_send_ctrl_alt_del(&a->vm->i8042);
		return 0;
	case POWER_BUTTON:
		/* Paused is fine: the event waits in the GED and the IOAPIC until resume. */
		if (!a->started)
			return api_fail(err, n, "SendPowerButton needs a running microVM");
		ged_power_button(&a->vm->ged);
		return 0;
	default:
		if (!a->metrics_on)
			return api_fail(err, n, "no metrics to flush: PUT /metrics first");
		r = metrics_flush(&a->metrics, a->vm);
		/* -EAGAIN: a full pipe; the line's counts go into the next one. */
		return r && r != -EAGAIN ?
			       api_fail(err, n, "cannot write the metrics: %s", strerror(-r)) :
			       0;
	}
}

int res_vm_state(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "state", NULL };
	static const char *const states[] = { "Paused", "Resumed", NULL };
	unsigned int st;
	int r;

	if ((r = jin_only(o, keys, "/vm", err, n)))
		return r;
	if ((r = jin_enum(o, "state", states, &st, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'state' is required (Paused or Resumed)");
	if (!a->started)
		return api_fail(err, n, "the microVM is not running yet (InstanceStart first)");
	if (st == 1) {
		vm_resume(a->vm);
		return 0;
	}
	r = vm_pause(a->vm);
	return r ? api_fail(err, n, "the vCPUs did not stop: %s", strerror(-r)) : 0;
}

struct json_object *res_instance_info(struct api *a)
{
	struct json_object *o = json_object_new_object();
	const char *state = !a->started		? "Not started" :
			    vm_is_paused(a->vm) ? "Paused" :
						  "Running";

	json_object_object_add(o, "id", json_object_new_string(a->cfg.id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "vmm_version", json_object_new_string(TERN_VERSION));
	json_object_object_add(o, "app_name", json_object_new_string("tern"));
	return o;
}

static void add_string(struct json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static struct json_object *drives(const struct api *a)
{
	struct json_object *arr = json_object_new_array();

	for (unsigned int i = 0; i < a->cfg.ndisks; i++) {
		const struct disk_config *d = &a->cfg.disks[i];
		struct json_object *o = json_object_new_object();
		add_string(o, "drive_id", d->id);
		add_string(o, "path_on_host", d->path);
		json_object_object_add(o, "is_root_device", json_object_new_boolean(d->root));
		if (d->partuuid[0])
			add_string(o, "partuuid", d->partuuid);
		json_object_object_add(o, "is_read_only", json_object_new_boolean(d->readonly));
		if (d->engine != DISK_ENGINE_AUTO)
			add_string(o, "io_engine",
				   d->engine == DISK_ENGINE_THREADS ? "Sync" : "Async");
		if (d->format != DISK_FORMAT_AUTO)
			add_string(o, "tern_format",
				   d->format == DISK_FORMAT_OVERLAY ? "Overlay" :
				   d->format == DISK_FORMAT_QCOW2   ? "Qcow2" :
								      "Raw");
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *nics(const struct api *a)
{
	struct json_object *arr = json_object_new_array();
	char mac[18];

	for (unsigned int i = 0; i < a->cfg.nnets; i++) {
		const struct net_config *c = &a->cfg.nets[i];
		struct json_object *o = json_object_new_object();
		const uint8_t *m = c->mac;
		add_string(o, "iface_id", c->id);
		if (c->kind == NET_TAP)
			add_string(o, "host_dev_name", c->tap_name);
		else if (c->kind == NET_USER)
			add_string(o, "tern_backend", "user");
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
			 m[4], m[5]);
		add_string(o, "guest_mac", mac);
		if (c->mtu)
			json_object_object_add(o, "mtu", json_object_new_int(c->mtu));
		json_object_array_add(arr, o);
	}
	return arr;
}

struct json_object *res_vm_config_get(struct api *a)
{
	struct json_object *o = json_object_new_object();

	if (a->cfg.kernel) {
		struct json_object *b = json_object_new_object();
		add_string(b, "kernel_image_path", a->cfg.kernel);
		add_string(b, "initrd_path", a->cfg.initrd);
		add_string(b, "boot_args", a->boot_args);
		json_object_object_add(o, "boot-source", b);
	}
	json_object_object_add(o, "machine-config", res_machine_config_get(a));
	json_object_object_add(o, "drives", drives(a));
	json_object_object_add(o, "network-interfaces", nics(a));
	if (a->cfg.vsock.enabled) {
		struct json_object *v = json_object_new_object();
		json_object_object_add(v, "guest_cid",
				       json_object_new_int64((int64_t)a->cfg.vsock.cid));
		add_string(v, "uds_path", a->cfg.vsock.path);
		json_object_object_add(o, "vsock", v);
	}
	if (a->cfg.rng)
		json_object_object_add(o, "entropy", json_object_new_object());
	if (a->logger.set) {
		struct json_object *l = json_object_new_object();
		add_string(l, "level", a->logger.level);
		add_string(l, "log_path", a->logger.path);
		json_object_object_add(l, "show_level",
				       json_object_new_boolean(a->logger.show_level));
		json_object_object_add(l, "show_log_origin",
				       json_object_new_boolean(a->logger.show_origin));
		json_object_object_add(o, "logger", l);
	}
	if (a->metrics_on) {
		struct json_object *m = json_object_new_object();
		add_string(m, "metrics_path", a->metrics_path);
		json_object_object_add(o, "metrics", m);
	}
	return o;
}
