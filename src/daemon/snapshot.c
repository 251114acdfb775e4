/*
 * A VM's snapshots (docs/ternd.md): tern-vmm's state and memory files, taken while the VM
 * is paused, under vms/UUID/snapshots/NAME/, and its writable disks as they were. A
 * snapshot of a shut-off VM holds its disks only. Reverting brings back the definition,
 * the disks and, for a snapshot of a running or paused VM, the VM in that state.
 *
 * The disks are kept as libvirt's external snapshots keep them: the images are frozen and
 * the VM goes on on qcow2 overlays in front of them (snap_layers.h), moved there live when
 * it runs. A jailed VM's jail holds only the files it started with: ternd opens the
 * overlays and the files below them and hands them in (PUT /files), as libvirt hands QEMU
 * its images by descriptor.
 * The snapshots of disks a qcow2 cannot stand on (tern overlays, a full chain) copy each
 * writable disk into the snapshot's directory as disk-I instead (a reflink where the file
 * system has them).
 */
#include "daemon/snap_layers.h"
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "backend/disk_chain.h"
#include "backend/disk_copy.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A drive's move: tern-vmm waits up to 10 s for the guest's requests, then flushes. */
#define SWAP_TIMEOUT_MS 30000

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

/* Whether disk i of d is where the VM's disk i is now. */
static bool still_current(const struct vm_entry *e, const struct vmdef *d, unsigned int i)
{
	return i < e->def.ndisks && !strcmp(e->def.disks[i].path, d->disks[i].path);
}

/*
 * Puts each disk-I of dir back at d's disk paths: copied beside it, then renamed over it,
 * so a failure part-way leaves that disk as it was. A path the VM has left since (a later
 * snapshot froze it: others stand on it) is not written: the copy goes to a new file
 * beside it, which d's disk moves to.
 */
static int copy_disks_back(struct ternd *t, struct vm_entry *e, struct vmdef *d, const char *dir,
			   const char *snap, struct job_ctx *j, char *err, size_t n)
{
	char from[4400], tmp[4200];
	int r;

	for (unsigned int i = 0; i < d->ndisks; i++) {
		if (d->disks[i].readonly)
			continue;
		snprintf(from, sizeof(from), "%s/disk-%u", dir, i);
		if (!still_current(e, d, i)) {
			enum disk_format f = DISK_FORMAT_RAW;
			char *p;
			disk_format_resolve(from, DISK_FORMAT_AUTO, &f);
			if ((r = layers_new_name(t, e, d->disks[i].path, d->name, i, snap,
						 f == DISK_FORMAT_QCOW2	  ? "qcow2" :
						 f == DISK_FORMAT_OVERLAY ? "ovl" :
									    "img",
						 tmp, sizeof(tmp))))
				return fail_msg(err, n, r, "disk %u: no free name beside %s", i,
						d->disks[i].path);
			if ((r = disk_copy_cb(from, tmp, job_progress, j, err, n)))
				return r;
			if (!(p = strdup(tmp)))
				return -ENOMEM;
			free(d->disks[i].path);
			d->disks[i].path = p;
			continue;
		}
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

/* Opens p with fl for hand_files when ternd made it for e; a file it did not is left out. */
static int hand_one(struct ternd *t, struct vm_entry *e, const char *p, int fl, int *fds, int *nfds,
		    struct json_object *paths, char *err, size_t n)
{
	if (!layers_made(t, e, p))
		return 0;
	int fd = open(p, fl | O_CLOEXEC);
	if (fd < 0)
		return fail_msg(err, n, -errno, "%s: %s", p, strerror(errno));
	fds[(*nfds)++] = fd;
	json_object_array_add(paths, json_object_new_string(p));
	return 0;
}

/*
 * A jail holds the files its tern-vmm started with: for a jailed VM, disk i's image and
 * the files below it are opened here and handed in (PUT /files), where the disk layer
 * opens them by these paths (backend/image_fds.h). The image as the drive opens it
 * (read-write; O_DSYNC with cache=none, which tern-vmm cannot add to a file it did not
 * open), the files below read-only, and the image below once more read-write: what the
 * drive goes back to if the move fails. Only files ternd made for this VM (its layers)
 * are handed: the headers that name the files below were the VM's to write, and root
 * opens what it hands. The others (the images it started on) are in the jail from its
 * start, or the open fails there.
 */
static int hand_files(struct ternd *t, struct vm_entry *e, const struct vmdef_disk *k, char *err,
		      size_t n)
{
	char(*below)[DISK_CHAIN_PATH_MAX];
	int nb = disk_chain_list(k->path, k->format, &below), fds[2 + QCOW2_CHAIN_MAX], nfds = 0;
	int rw = O_RDWR | (k->cache_none ? O_DSYNC : 0), r;

	if (nb < 0)
		return fail_msg(err, n, nb, "out of memory");
	struct json_object *o = json_object_new_object(), *paths = json_object_new_array();

	json_object_object_add(o, "paths", paths);
	r = hand_one(t, e, k->path, rw, fds, &nfds, paths, err, n);
	for (int b = 0; !r && b < nb; b++)
		r = hand_one(t, e, below[b], O_RDONLY, fds, &nfds, paths, err, n);
	if (!r && nb)
		r = hand_one(t, e, below[0], rw, fds, &nfds, paths, err, n);
	if (!r && nfds)
		r = ops_vmm_call_fds(t, e, "PUT", "/files", json_object_to_json_string(o), fds,
				     (unsigned int)nfds, API_TIMEOUT_MS, err, n);
	while (nfds)
		close(fds[--nfds]);
	json_object_put(o);
	free(below);
	return r;
}

/* PATCH /drives/ID: tern-vmm's drive i moves onto d's disk i, live. */
static int move_drive(struct ternd *t, struct vm_entry *e, const struct vmdef *d, unsigned int i,
		      char *err, size_t n)
{
	/* PATCH /drives' tern_format names, by enum disk_format */
	static const char *const formats[] = { "Raw", "Overlay", "Qcow2", "Auto" };
	const struct vmdef_disk *k = &d->disks[i];
	char id[32], path[64];
	int r;

	if (!vmdef_drive_id(d, i, id, sizeof(id)))
		return fail_msg(err, n, -EINVAL,
				"disk %u's id '%s' has a character the API's path cannot carry", i,
				id);
	snprintf(path, sizeof(path), "/drives/%s", id);
	if (e->jailed && (r = hand_files(t, e, k, err, n)))
		return r;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "drive_id", json_object_new_string(id));
	json_object_object_add(o, "path_on_host", json_object_new_string(k->path));
	json_object_object_add(o, "tern_format", json_object_new_string(formats[k->format]));
	r = ops_vmm_call(t, e, "PATCH", path, json_object_to_json_string(o), SWAP_TIMEOUT_MS, err,
			 n);
	json_object_put(o);
	return r;
}

/*
 * Moves the paused VM's drives from the images of from onto those of to (where they
 * differ). A drive that will not move: those moved go back (nothing was written to the
 * overlays, the VM is paused) and err says why.
 */
static int move_drives(struct ternd *t, struct vm_entry *e, const struct vmdef *from,
		       const struct vmdef *to, char *err, size_t n)
{
	unsigned int i;
	int r = 0;

	for (i = 0; !r && i < to->ndisks; i++)
		if (strcmp(from->disks[i].path, to->disks[i].path))
			r = move_drive(t, e, to, i, err, n);
	for (unsigned int b = 0; r && b + 1 < i; b++) {
		char why[512];
		if (strcmp(from->disks[b].path, to->disks[b].path) &&
		    move_drive(t, e, from, b, why, sizeof(why)))
			log_error("%s: disk %u cannot go back onto %s: %s", e->def.name, b,
				  from->disks[b].path, why);
	}
	return r;
}

int snap_create(struct ternd *t, struct vm_entry *e, const char *body, char *name, char *err,
		size_t n)
{
	char dir[4300], part[4300], st[4400], mem[4400], req[9000], state[16], why[512];
	struct store_snap old;
	struct vmdef nd, od; /* with layers: the definition after it, and before */
	bool have_nd = false, have_od = false;
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
	/* A VM never started has no directory yet, nor has a new state directory vms/. */
	ternd_make_vm_dir(t, e, why, sizeof(why));
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
	bool layered = layers_fit(&e->def, why, sizeof(why));
	if (!layered)
		log_info("%s: snapshot %s copies the disks: %s", e->def.name, name, why);
	if (layered && ((r = vmdef_parse(def, strlen(def), &nd, false, err, n)) ||
			(r = vmdef_parse(def, strlen(def), &od, false, err, n)))) {
		if (!r)
			vmdef_free(&nd);
		goto out;
	}
	have_nd = have_od = layered;
	struct job_ctx j = { t, e };
	uint64_t total = 0;
	for (unsigned int i = 0; !active && !layered && i < e->def.ndisks; i++)
		total += e->def.disks[i].readonly ? 0 : disk_copy_bytes(e->def.disks[i].path);
	/* With memory the total is not known up front (zero pages are not written). */
	job_begin(t, e, "snapshot", total, active);
	if (active) {
		/* tern-vmm writes where it may (its jail); ternd moves the files into part. */
		snprintf(req, sizeof(req), "{\"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}",
			 ternd_vmm_path(t, e, "vm.state", st, sizeof(st)),
			 ternd_vmm_path(t, e, "vm.mem", mem, sizeof(mem)));
		/* Paused while the memory and the disks are taken: they match. */
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
		if (!r && !layered)
			r = copy_disks_out(&e->def, part, &j, err, n);
		/*
		 * The state file names the images, which stay as they are: the snapshot's. The
		 * definition moves first: a ternd that dies before the drives do leaves the VM
		 * writing its images, which are no snapshot's yet, and to start on overlays
		 * in front of them, which shows all it wrote. A jailed VM's overlays are handed
		 * to it open (move_drive).
		 */
		if (!r && layered && !(r = layers_put_on_overlays(t, e, &nd, name, err, n)) &&
		    !(r = ternd_store_definition(t, e, &nd, err, n)) &&
		    (r = move_drives(t, e, &od, &e->def, err, n))) {
			if (ternd_store_definition(t, e, &od, why, sizeof(why)))
				log_error("%s: its definition still names the overlays its drives "
					  "did not move to: %s",
					  e->def.name, why);
		}
		if (!strcmp(state, "running") &&
		    ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Resumed\"}", API_TIMEOUT_MS,
				 why, sizeof(why)))
			log_error("%s: cannot resume after the snapshot: %s", e->def.name, why);
	} else if (layered) {
		if (!(r = layers_put_on_overlays(t, e, &nd, name, err, n)))
			r = ternd_store_definition(t, e, &nd, err, n);
	} else {
		r = copy_disks_out(&e->def, part, &j, err, n);
	}
	/*
	 * With layers the definition moved before the row is added: a ternd that dies
	 * between leaves the images as bases of the overlays the VM is on, and no snapshot.
	 */
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
	if (have_nd)
		vmdef_free(&nd); /* a no-op once moved into the table */
	if (have_od)
		vmdef_free(&od);
	if (r) {
		ternd_remove_tree(part);
		layers_gc(t, e); /* overlays made for it that no disk is on */
	}
	free(def);
	return r;
}

/* Whether the snapshot in dir copied its disks (disk-I) rather than froze them. */
static bool copied(const struct vmdef *d, const char *dir)
{
	char p[4400];
	struct stat st;

	for (unsigned int i = 0; i < d->ndisks; i++) {
		snprintf(p, sizeof(p), "%s/disk-%u", dir, i);
		if (!d->disks[i].readonly && !stat(p, &st))
			return true;
	}
	return false;
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
	bool copies = copied(&d, dir);
	for (unsigned int i = 0; copies && i < d.ndisks; i++) {
		snprintf(from, sizeof(from), "%s/disk-%u", dir, i);
		total += d.disks[i].readonly ? 0 : disk_copy_bytes(from);
	}
	job_begin(t, e, "revert", total, false);
	/* Frozen images are never written: the VM goes on on new overlays in front of them. */
	r = copies ? copy_disks_back(t, e, &d, dir, name, &j, err, n) :
		     layers_put_on_overlays(t, e, &d, name, err, n);
	job_end(t, e);
	if (r)
		goto out;
	/* The definition it was taken with, on its disks: the state file matches it. */
	if ((r = ternd_store_definition(t, e, &d, err, n)))
		goto out;
	/* A managed save is of another moment than the disks now hold. */
	unlink(ternd_vm_dir(t, e, "save/vm.state", path, sizeof(path)));
	unlink(ternd_vm_dir(t, e, "save/vm.mem", path, sizeof(path)));
	event(t, e, "reverted", name);
	if (strcmp(s.vm_state, "shut off"))
		r = run_start_snapshot(t, e, dir, !strcmp(s.vm_state, "paused"), err, n);
out:
	layers_gc(t, e); /* what the VM was on before, unless a snapshot holds it */
	vmdef_free(&d);
	free(s.definition);
	return r;
}

/* layers_merge on a copy of e's definition, which replaces it when a disk moved. */
static void merge_back(struct ternd *t, struct vm_entry *e)
{
	char why[1024];
	struct vmdef d;

	pthread_mutex_lock(&t->lock);
	char *json = strdup(e->def_json);
	pthread_mutex_unlock(&t->lock);
	if (!json || vmdef_parse(json, strlen(json), &d, false, why, sizeof(why))) {
		free(json);
		return;
	}
	free(json);
	job_begin(t, e, "snapshot", 0, false);
	int r = layers_merge(t, e, &d, why, sizeof(why));
	job_end(t, e);
	/* A failure part-way: the disks merged so far are on their images (all read the same). */
	if (r < 0)
		log_warn("%s: an overlay stays in front of its image: %s", e->def.name, why);
	for (unsigned int i = 0; i < d.ndisks; i++)
		if (strcmp(d.disks[i].path, e->def.disks[i].path)) {
			if (ternd_store_definition(t, e, &d, why, sizeof(why)))
				log_error("%s: %s", e->def.name, why);
			break;
		}
	vmdef_free(&d);
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
	/*
	 * A shut-off VM goes back onto the images nothing else stands on now, its overlays
	 * merged into them (a running one stays on its chain: tern-vmm has no live commit).
	 */
	if (!ternd_is_active(e))
		merge_back(t, e);
	layers_gc(t, e); /* its frozen images, unless a disk or another snapshot stands on them */
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
