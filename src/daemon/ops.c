/* Lifecycle operations on one VM, each under that VM's op lock (ternd.h). */
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "core/util.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHUTDOWN_DEFAULT_S 60
#define SHUTDOWN_MAX_S 86400

/* The VM must be in state a (or b): else -EBUSY naming the state it is in. */
int ops_need_state(struct ternd *t, struct vm_entry *e, const char *a, const char *b,
		   const char *op, char *err, size_t n)
{
	char now[16];

	pthread_mutex_lock(&t->lock);
	snprintf(now, sizeof(now), "%s", e->state);
	pthread_mutex_unlock(&t->lock);
	if (!strcmp(now, a) || (b && !strcmp(now, b)))
		return 0;
	return fail_msg(err, n, -EBUSY, "cannot %s %s: it is %s", op, e->def.name, now);
}

/* One request to the VM's tern-vmm that must answer 204. */
int ops_vmm_call(struct ternd *t, struct vm_entry *e, const char *method, const char *path,
		 const char *body, int timeout_ms, char *err, size_t n)
{
	return ops_vmm_call_fds(t, e, method, path, body, NULL, 0, timeout_ms, err, n);
}

int ops_vmm_call_fds(struct ternd *t, struct vm_entry *e, const char *method, const char *path,
		     const char *body, const int *fds, unsigned int nfds, int timeout_ms, char *err,
		     size_t n)
{
	char sock[4200], why[512], *resp = NULL;
	int r = vmm_request_fds(ternd_vmm_path(t, e, "api.sock", sock, sizeof(sock)), method, path,
				body, fds, nfds, timeout_ms, &resp, why, sizeof(why));

	if (r == 204 || r == 200)
		r = 0;
	else if (r > 0)
		r = fail_msg(err, n, -EIO, "%s: tern-vmm answered %s %s with %d: %s", e->def.name,
			     method, path, r, resp ? resp : "");
	else
		r = fail_msg(err, n, r, "%s: %s", e->def.name, why);
	free(resp);
	return r;
}

static int op_shutdown(struct ternd *t, struct vm_entry *e, const char *body, char *err, size_t n)
{
	uint64_t timeout = SHUTDOWN_DEFAULT_S;
	int r;

	if (body && *body) {
		struct json_object *o = jin_parse_object(body, strlen(body), err, n);
		static const char *const keys[] = { "timeout", NULL };
		if (!o)
			return -EINVAL;
		r = jin_only(o, keys, "a shutdown request", err, n);
		if (!r && jin_u64(o, "timeout", 0, SHUTDOWN_MAX_S, &timeout, err, n) < 0)
			r = -EINVAL;
		json_object_put(o);
		if (r)
			return r;
	}
	if ((r = ops_need_state(t, e, "running", NULL, "shut down", err, n)))
		return r;
	/* The ACPI power button: a guest that listens powers off; then tern-vmm exits. */
	if ((r = ops_vmm_call(t, e, "PUT", "/actions", "{\"action_type\": \"SendPowerButton\"}",
			      API_TIMEOUT_MS, err, n)))
		return r;
	if (run_wait_off(t, e, (int)timeout * 1000))
		return 0;
	if ((r = run_kill(t, e, "destroyed", err, n)))
		return r;
	return fail_msg(err, n, -ETIMEDOUT,
			"%s did not power off within %llu s after the power button: destroyed",
			e->def.name, (unsigned long long)timeout);
}

static int op_save(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	char dir[4200], st[4300], mem[4300], vst[4300], vmem[4300], body[9000];
	int r;

	if ((r = ops_need_state(t, e, "running", "paused", "save", err, n)))
		return r;
	ternd_vm_dir(t, e, "save", dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST)
		return fail_msg(err, n, -errno, "%s: %s", dir, strerror(errno));
	snprintf(st, sizeof(st), "%s/vm.state", dir);
	snprintf(mem, sizeof(mem), "%s/vm.mem", dir);
	/* Written where tern-vmm may write (its jail), then moved into ternd's save/. */
	ternd_vmm_path(t, e, "vm.state", vst, sizeof(vst));
	ternd_vmm_path(t, e, "vm.mem", vmem, sizeof(vmem));
	snprintf(body, sizeof(body), "{\"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}", vst,
		 vmem);
	if (!strcmp(e->state, "running") &&
	    (r = ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Paused\"}", API_TIMEOUT_MS, err,
			      n)))
		return r;
	ternd_set_state(t, e, "paused", "user", NULL);
	job_begin(t, e, "save", 0, true);
	r = ops_vmm_call(t, e, "PUT", "/snapshot/create", body, SAVE_TIMEOUT_MS, err, n);
	if (!r && !(r = vmjail_take_file(t, e, "vm.mem", mem, err, n)))
		r = vmjail_take_file(t, e, "vm.state", st, err, n);
	job_end(t, e);
	if (r) {
		unlink(vst);
		unlink(vmem);
		unlink(st);
		unlink(mem);
		return r;
	}
	/* Saved and flushed: what is left of the process has nothing to lose. */
	return run_kill(t, e, "saved", err, n);
}

int ops_do(struct ternd *t, struct vm_entry *e, const char *op, const char *body, char *err,
	   size_t n)
{
	int r;

	if (!strcmp(op, "start"))
		return run_start(t, e, err, n);
	if (!strcmp(op, "restore")) {
		/* start, but only from a managed save (virsh restore's place for tern's saves) */
		char st[4200];
		struct stat sb;
		if (ternd_is_active(e))
			return fail_msg(err, n, -EBUSY, "%s is %s already", e->def.name, e->state);
		if (stat(ternd_vm_dir(t, e, "save/vm.state", st, sizeof(st)), &sb))
			return fail_msg(err, n, -EBUSY,
					"%s has no managed save (tern save makes one; tern start "
					"boots it)",
					e->def.name);
		return run_start(t, e, err, n);
	}
	if (!strcmp(op, "destroy"))
		return run_kill(t, e, "destroyed", err, n);
	if (!strcmp(op, "shutdown"))
		return op_shutdown(t, e, body, err, n);
	if (!strcmp(op, "save"))
		return op_save(t, e, err, n);
	if (!strcmp(op, "blockresize"))
		return op_blockresize(t, e, body, err, n);
	if (!strcmp(op, "reboot")) {
		if ((r = ops_need_state(t, e, "running", NULL, "reboot", err, n)))
			return r;
		return ops_vmm_call(t, e, "PUT", "/actions",
				    "{\"action_type\": \"SendCtrlAltDel\"}", API_TIMEOUT_MS, err,
				    n);
	}
	if (!strcmp(op, "suspend")) {
		if ((r = ops_need_state(t, e, "running", NULL, "suspend", err, n)) ||
		    (r = ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Paused\"}",
				      API_TIMEOUT_MS, err, n)))
			return r;
		ternd_set_state(t, e, "paused", "user", NULL);
		return 0;
	}
	if (!strcmp(op, "resume")) {
		if ((r = ops_need_state(t, e, "paused", NULL, "resume", err, n)) ||
		    (r = ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Resumed\"}",
				      API_TIMEOUT_MS, err, n)))
			return r;
		ternd_set_state(t, e, "running", "unpaused", NULL);
		return 0;
	}
	return fail_msg(err, n, -ENOENT, "unknown operation '%.32s'", op);
}
