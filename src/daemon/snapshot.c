/*
 * A VM's snapshots (docs/ternd.md): tern-vmm's state and memory files plus a copy of each
 * writable disk, taken while the VM is paused, under vms/UUID/snapshots/NAME/. A snapshot
 * of a shut-off VM holds its disks only. Reverting brings back the definition, the disks
 * and, for a snapshot of a running or paused VM, the VM in that state.
 */
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "backend/disk_copy.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *snap_dir(struct ternd *t, struct vm_entry *e, const char *snap,
			    const char *suffix, char *buf, size_t n)
{
	char dir[4200];

	ternd_vm_dir(t, e, "snapshots", dir, sizeof(dir));
	snprintf(buf, n, "%s/%s%s", dir, snap, suffix);
	return buf;
}

/* The row of snapshot name, or -ENOENT. */
static int find(struct ternd *t, struct vm_entry *e, const char *name, struct store_snap *out,
		char *err, size_t n)
{
	struct store_snap *v;
	size_t cnt;
	int r = -ENOENT;

	if (store_snap_list(t->store, e->def.uuid, &v, &cnt))
		return fail_msg(err, n, -EIO, "cannot read the database");
	for (size_t i = 0; i < cnt; i++)
		if (!strcmp(v[i].name, name)) {
			*out = v[i];
			v[i].definition = NULL;
			r = 0;
		}
	store_snaps_free(v, cnt);
	if (r)
		fail_msg(err, n, r, "%s has no snapshot named %.64s", e->def.name, name);
	return r;
}

static void event(struct ternd *t, struct vm_entry *e, const char *what, const char *snap)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "snapshot", json_object_new_string(snap));
	ternd_event(t, e, "snapshot", what, d);
}

/* Copies each writable disk of d into dir as disk-I (reflink, else sparse). */
static int copy_disks_out(const struct vmdef *d, const char *dir, struct job_ctx *j, char *err,
			  size_t n)
{
	char to[4400];
	int r;

	for (unsigned int i = 0; i < d->ndisks; i++) {
		if (d->disks[i].readonly)
			continue;
		snprintf(to, sizeof(to), "%s/disk-%u", dir, i);
		if ((r = disk_copy_cb(d->disks[i].path, to, job_progress, j, err, n)))
			return r;
	}
	return 0;
}

/*
 * Puts each disk-I of dir back at d's disk paths: copied beside it, then renamed over it,
 * so a failure part-way leaves that disk as it was.
 */
static int copy_disks_back(const struct vmdef *d, const char *dir, struct job_ctx *j, char *err,
			   size_t n)
{
	char from[4400], tmp[4200];
	int r;

	for (unsigned int i = 0; i < d->ndisks; i++) {
		if (d->disks[i].readonly)
			continue;
		snprintf(from, sizeof(from), "%s/disk-%u", dir, i);
		snprintf(tmp, sizeof(tmp), "%s.tern-revert", d->disks[i].path);
		unlink(tmp);
		if ((r = disk_copy_cb(from, tmp, job_progress, j, err, n)))
			return r;
		/* The disk comes back as it was, its owner and mode with it. */
		struct stat st;
		if (!stat(d->disks[i].path, &st) &&
		    (chown(tmp, st.st_uid, st.st_gid) || chmod(tmp, st.st_mode & 07777)))
			log_warn("%s: cannot keep its owner and mode: %s", d->disks[i].path,
				 strerror(errno));
		if (rename(tmp, d->disks[i].path)) {
			r = fail_msg(err, n, -errno, "cannot replace %s: %s", d->disks[i].path,
				     strerror(errno));
			unlink(tmp);
			return r;
		}
	}
	return 0;
}

static int parse_name(const char *body, char *name, char *err, size_t n)
{
	static const char *const keys[] = { "name", NULL };
	struct json_object *o = jin_parse_object(body ? body : "", body ? strlen(body) : 0, err, n);
	int r;

	if (!o)
		return -EINVAL;
	r = jin_only(o, keys, "a snapshot request", err, n);
	if (!r)
		r = vmdef_name_field(o, name, err, n);
	json_object_put(o);
	return r < 0 ? r : 0;
}

int snap_create(struct ternd *t, struct vm_entry *e, const char *body, char *name, char *err,
		size_t n)
{
	char dir[4300], part[4300], st[4400], mem[4400], req[9000], state[16];
	struct store_snap old;
	int r;

	if ((r = parse_name(body, name, err, n)))
		return r;
	if (!find(t, e, name, &old, err, n)) {
		free(old.definition);
		return fail_msg(err, n, -EEXIST, "%s has a snapshot named %s already", e->def.name,
				name);
	}
	pthread_mutex_lock(&t->lock);
	snprintf(state, sizeof(state), "%s", e->state);
	char *def = strdup(e->def_json);
	pthread_mutex_unlock(&t->lock);
	if (!def)
		return -ENOMEM;
	mkdir(ternd_vm_dir(t, e, NULL, dir, sizeof(dir)), 0700);
	mkdir(ternd_vm_dir(t, e, "snapshots", dir, sizeof(dir)), 0700);
	/* Written under NAME.partial and renamed when complete: no half snapshot is listed. */
	snap_dir(t, e, name, "", dir, sizeof(dir));
	snap_dir(t, e, name, ".partial", part, sizeof(part));
	ternd_remove_tree(part);
	if (mkdir(part, 0700)) {
		r = fail_msg(err, n, -errno, "%s: %s", part, strerror(errno));
		goto out;
	}
	bool active = !strcmp(state, "running") || !strcmp(state, "paused");
	struct job_ctx j = { t, e };
	uint64_t total = 0;
	for (unsigned int i = 0; !active && i < e->def.ndisks; i++)
		total += e->def.disks[i].readonly ? 0 : disk_copy_bytes(e->def.disks[i].path);
	/* With memory the total is not known up front (zero pages are not written). */
	job_begin(t, e, "snapshot", total, active);
	if (active) {
		/* tern-vmm writes where it may (its jail); ternd moves the files into part. */
		snprintf(req, sizeof(req), "{\"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}",
			 ternd_vmm_path(t, e, "vm.state", st, sizeof(st)),
			 ternd_vmm_path(t, e, "vm.mem", mem, sizeof(mem)));
		/* Paused while the memory and the disks are copied: they match. */
		if (!strcmp(state, "running") &&
		    (r = ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Paused\"}",
				      API_TIMEOUT_MS, err, n)))
			goto out;
		r = ops_vmm_call(t, e, "PUT", "/snapshot/create", req, SAVE_TIMEOUT_MS, err, n);
		snprintf(st, sizeof(st), "%s/vm.state", part);
		snprintf(mem, sizeof(mem), "%s/vm.mem", part);
		if (!r && !(r = vmjail_take_file(t, e, "vm.state", st, err, n)))
			r = vmjail_take_file(t, e, "vm.mem", mem, err, n);
		if (r) {
			unlink(ternd_vmm_path(t, e, "vm.state", st, sizeof(st)));
			unlink(ternd_vmm_path(t, e, "vm.mem", mem, sizeof(mem)));
		}
		if (!r)
			r = copy_disks_out(&e->def, part, &j, err, n);
		if (!strcmp(state, "running")) {
			char why[512];
			if (ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Resumed\"}",
					 API_TIMEOUT_MS, why, sizeof(why)))
				log_error("%s: cannot resume after the snapshot: %s", e->def.name,
					  why);
		}
	} else {
		r = copy_disks_out(&e->def, part, &j, err, n);
	}
	if (r)
		goto out;
	/* A directory without a row is what a ternd that died here left: not a snapshot. */
	ternd_remove_tree(dir);
	if (rename(part, dir)) {
		r = fail_msg(err, n, -errno, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if ((r = store_snap_add(t->store, e->def.uuid, name, active ? state : "shut off", def))) {
		ternd_remove_tree(dir);
		r = fail_msg(err, n, r == -EEXIST ? -EEXIST : -EIO, "cannot write the database");
		goto out;
	}
	event(t, e, "created", name);
out:
	job_end(t, e);
	if (r)
		ternd_remove_tree(part);
	free(def);
	return r;
}

int snap_revert(struct ternd *t, struct vm_entry *e, const char *name, char *err, size_t n)
{
	struct store_snap s;
	struct vmdef d;
	char dir[4300], path[4300];
	int r;

	if ((r = find(t, e, name, &s, err, n)))
		return r;
	r = vmdef_parse(s.definition, strlen(s.definition), &d, false, err, n);
	if (r) {
		free(s.definition);
		return fail_msg(err, n, -EIO, "snapshot %s: its definition does not parse", name);
	}
	snap_dir(t, e, name, "", dir, sizeof(dir));
	if (ternd_is_active(e) && (r = run_kill(t, e, "from snapshot", err, n)))
		goto out;
	struct job_ctx j = { t, e };
	uint64_t total = 0;
	char from[4400];
	for (unsigned int i = 0; i < d.ndisks; i++) {
		snprintf(from, sizeof(from), "%s/disk-%u", dir, i);
		total += d.disks[i].readonly ? 0 : disk_copy_bytes(from);
	}
	job_begin(t, e, "revert", total, false);
	r = copy_disks_back(&d, dir, &j, err, n);
	job_end(t, e);
	if (r)
		goto out;
	/* The definition it was taken with: the disks and the state file match it. */
	if (ternd_set_definition(t, e, &d, s.definition)) {
		r = fail_msg(err, n, -EIO, "cannot write the database");
		goto out;
	}
	s.definition = NULL;
	/* A managed save is of another moment than the disks now hold. */
	unlink(ternd_vm_dir(t, e, "save/vm.state", path, sizeof(path)));
	unlink(ternd_vm_dir(t, e, "save/vm.mem", path, sizeof(path)));
	event(t, e, "reverted", name);
	if (strcmp(s.vm_state, "shut off"))
		r = run_start_snapshot(t, e, dir, !strcmp(s.vm_state, "paused"), err, n);
out:
	vmdef_free(&d);
	free(s.definition);
	return r;
}

int snap_delete(struct ternd *t, struct vm_entry *e, const char *name, char *err, size_t n)
{
	struct store_snap s;
	char dir[4300];
	int r;

	if ((r = find(t, e, name, &s, err, n)))
		return r;
	free(s.definition);
	if ((r = store_snap_delete(t->store, e->def.uuid, name)))
		return fail_msg(err, n, -EIO, "cannot write the database");
	/* A VM restored from it maps its memory file: that mapping outlives the name. */
	ternd_remove_tree(snap_dir(t, e, name, "", dir, sizeof(dir)));
	event(t, e, "deleted", name);
	return 0;
}

struct json_object *snap_list(struct ternd *t, struct vm_entry *e)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	struct store_snap *v;
	size_t cnt;

	if (store_snap_list(t->store, e->def.uuid, &v, &cnt)) {
		json_object_put(o);
		json_object_put(a);
		return NULL;
	}
	for (size_t i = 0; i < cnt; i++) {
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(v[i].name));
		json_object_object_add(x, "created_at", json_object_new_double(v[i].created_at));
		json_object_object_add(x, "vm_state", json_object_new_string(v[i].vm_state));
		json_object_object_add(x, "memory",
				       json_object_new_boolean(strcmp(v[i].vm_state, "shut off")));
		json_object_array_add(a, x);
	}
	store_snaps_free(v, cnt);
	json_object_object_add(o, "name", json_object_new_string(e->def.name));
	json_object_object_add(o, "snapshots", a);
	return o;
}
