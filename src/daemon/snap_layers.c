/* The qcow2 overlays ternd makes for snapshots (see snap_layers.h). */
#include "daemon/snap_layers.h"
#include "daemon/ternd.h"
#include "daemon/chain_record.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "backend/disk_chain.h"
#include "backend/disk_commit.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* DIR/layers: {"files": [PATH, ...]}, or an empty array when there is none. */
static struct json_object *manifest_read(const char *path)
{
	struct json_object *o = json_object_from_file(path), *a = jin_array_or_empty(o, "files");

	json_object_put(o);
	return a;
}

/*
 * Written beside, synced and renamed over, as the chain records: a crash leaves the old
 * list or the new one, never an empty file (a lost list would leave ternd's overlays to no
 * one: never merged, never removed).
 */
static int manifest_write(const char *path, struct json_object *files)
{
	if (!json_object_array_length(files))
		return unlink(path) && errno != ENOENT ? -errno : 0;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "files", json_object_get(files));
	int r = ternd_write_json(path, o);
	json_object_put(o);
	return r;
}

static int manifest_add(struct ternd *t, struct vm_entry *e, const char *file)
{
	char path[4200];
	struct json_object *files = manifest_read(ternd_vm_dir(t, e, "layers", path, sizeof(path)));
	int r;

	json_object_array_add(files, json_object_new_string(file));
	r = manifest_write(path, files);
	json_object_put(files);
	return r;
}

int layers_new_name(struct ternd *t, struct vm_entry *e, const char *image, const char *vm,
		    unsigned int disk, const char *snap, const char *ext, char *out, size_t n)
{
	char copy[4200], *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", image);
	dir = dirname(copy);
	for (unsigned int k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(out, n, "%s/%s-disk%u.%s.%s", dir, vm, disk, snap, ext);
		else
			snprintf(out, n, "%s/%s-disk%u.%s-%u.%s", dir, vm, disk, snap, k, ext);
		if (lstat(out, &st) && errno == ENOENT)
			/* Listed before it exists: a crash after the create leaves no stray file. */
			return manifest_add(t, e, out) ? -EIO : 0;
	}
	return -EEXIST;
}

bool layers_fit(const struct vmdef *d, char *why, size_t n)
{
	for (unsigned int i = 0; i < d->ndisks; i++) {
		const struct vmdef_disk *k = &d->disks[i];
		enum disk_format f;
		if (k->readonly)
			continue;
		if (disk_format_resolve(k->path, k->format, &f) ||
		    (f != DISK_FORMAT_RAW && f != DISK_FORMAT_QCOW2)) {
			snprintf(why, n, "disk %u (%s) is not a raw or qcow2 image", i, k->path);
			return false;
		}
		char(*below)[DISK_CHAIN_PATH_MAX];
		int nb = disk_chain_list(k->path, f, &below);
		free(below);
		if (nb < 0 || nb + 1 > QCOW2_CHAIN_MAX) {
			snprintf(why, n,
				 "disk %u (%s) has %d files below it already, the most a "
				 "chain holds",
				 i, k->path, nb);
			return false;
		}
	}
	return true;
}

int layers_put_on_overlays(struct ternd *t, struct vm_entry *e, struct vmdef *d, const char *snap,
			   char *err, size_t n)
{
	char made[VMDEF_MAX_DISKS][4200] = { { 0 } };
	int r = 0;

	for (unsigned int i = 0; !r && i < d->ndisks; i++) {
		const struct vmdef_disk *k = &d->disks[i];
		enum disk_format f;
		struct stat st;
		if (k->readonly)
			continue;
		if ((r = disk_format_resolve(k->path, k->format, &f)) || stat(k->path, &st)) {
			r = fail_msg(err, n, r ? r : -errno, "disk %u: cannot read %s: %s", i,
				     k->path, strerror(r ? -r : errno));
			break;
		}
		if ((r = layers_new_name(t, e, k->path, d->name, i, snap, "qcow2", made[i],
					 sizeof(made[i])))) {
			r = fail_msg(err, n, r, "disk %u: no free name for an overlay beside %s", i,
				     k->path);
			made[i][0] = 0;
			break;
		}
		struct qcow2_create_args a = { .path = made[i],
					       .backing = k->path,
					       .backing_format =
						       f == DISK_FORMAT_QCOW2 ? "qcow2" : "raw" };
		if ((r = qcow2_create(&a, err, n))) {
			made[i][0] = 0;
			break;
		}
		if (chain_record_made(t, e, made[i]))
			log_warn("%s: cannot record what %s stands on", e->def.name, made[i]);
		/*
		 * The user's file, the user's overlay; not a VM's uid, which is lent per run: an
		 * image lent now goes back to the owner its record names.
		 */
		uid_t ou = st.st_uid;
		gid_t og = st.st_gid;
		mode_t om = st.st_mode;
		if ((!vmjail_in_range(t, ou) || vmjail_owner(t, e, k->path, &ou, &og, &om)) &&
		    (chown(made[i], ou, og) || chmod(made[i], om & 0777)))
			log_warn("%s: cannot give it %s's owner and mode: %s", made[i], k->path,
				 strerror(errno));
	}
	if (r) {
		for (unsigned int i = 0; i < d->ndisks; i++)
			if (made[i][0])
				unlink(made[i]);
		return r;
	}
	for (unsigned int i = 0; i < d->ndisks; i++) {
		char *p;
		if (!made[i][0] || !(p = strdup(made[i])))
			continue; /* out of memory: that disk stays where it was */
		free(d->disks[i].path);
		d->disks[i].path = p;
		d->disks[i].format = DISK_FORMAT_QCOW2;
	}
	return 0;
}

struct inodes {
	struct stat *v;
	size_t n, cap;
};

static void inodes_add(struct inodes *s, const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct stat *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = st;
}

static bool inodes_have(const struct inodes *s, const struct stat *st)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].st_dev == st->st_dev && s->v[i].st_ino == st->st_ino)
			return true;
	return false;
}

/*
 * The files below disk k, and k's own file with top: those its header chain names, and
 * those the recorded hops (may be NULL; chain_record.h) hold below it. Both, so that a
 * header the VM rewrote can make ternd keep more, never less.
 */
static void inodes_add_chain(struct inodes *s, const struct vmdef_disk *k, bool top,
			     struct json_object *hops)
{
	char(*below)[DISK_CHAIN_PATH_MAX];
	int nb = disk_chain_list(k->path, k->format, &below);
	const char *p = k->path;

	if (top)
		inodes_add(s, k->path);
	for (int b = 0; b < nb; b++)
		inodes_add(s, below[b]);
	free(below);
	for (int depth = 0; depth < QCOW2_CHAIN_MAX && (p = chain_record_below(hops, p, NULL));
	     depth++)
		inodes_add(s, p);
}

/* Every file of every disk's chain in the definition json. false: it did not parse. */
static bool add_chains(struct inodes *s, const char *json, struct json_object *hops)
{
	struct vmdef d;
	char why[256];

	if (!json || vmdef_parse(json, strlen(json), &d, false, why, sizeof(why)))
		return false;
	for (unsigned int i = 0; i < d.ndisks; i++)
		inodes_add_chain(s, &d.disks[i], true, hops);
	vmdef_free(&d);
	return true;
}

/*
 * What every VM's disks and snapshots hold (but not the disks of except, when given), as
 * the headers name it and as hops (every VM's recorded hops: chain_record_all) hold it.
 * false when something could not be read: then nothing is removed or merged (a file it
 * would have held might go).
 */
static bool live_files(struct ternd *t, struct inodes *s, const struct vm_entry *except,
		       struct json_object *hops)
{
	size_t cnt = 0, k = 0;
	bool ok = true;

	pthread_mutex_lock(&t->lock);
	for (struct vm_entry *o = t->vms; o; o = o->next)
		cnt++;
	char **defs = calloc(cnt + 1, sizeof(*defs));
	char(*uuids)[VMDEF_UUID_LEN + 1] = calloc(cnt + 1, sizeof(*uuids));
	for (struct vm_entry *o = t->vms; defs && uuids && o; o = o->next, k++) {
		defs[k] = strdup(o->def_json);
		snprintf(uuids[k], sizeof(uuids[k]), "%s", o->def.uuid);
	}
	pthread_mutex_unlock(&t->lock);
	if (!defs || !uuids)
		ok = false;
	for (size_t i = 0; ok && i < cnt; i++) {
		struct store_snap *v;
		size_t nv;
		bool skip = except && !strcmp(uuids[i], except->def.uuid);
		if ((!skip && !add_chains(s, defs[i], hops)) ||
		    store_snap_list(t->store, uuids[i], &v, &nv)) {
			ok = false;
			break;
		}
		for (size_t j = 0; ok && j < nv; j++)
			ok = add_chains(s, v[j].definition, hops);
		store_snaps_free(v, nv);
	}
	for (size_t i = 0; defs && i < cnt; i++)
		free(defs[i]);
	free(defs);
	free(uuids);
	return ok;
}

void layers_inherit(struct ternd *t, struct vm_entry *from, struct vm_entry *to)
{
	char path[4200];
	struct json_object *files =
		manifest_read(ternd_vm_dir(t, from, "layers", path, sizeof(path)));
	struct inodes below = { 0 };

	for (unsigned int i = 0; i < to->def.ndisks; i++)
		inodes_add_chain(&below, &to->def.disks[i], false, NULL);
	char why[256];
	ternd_make_vm_dir(t, to, why, sizeof(why)); /* its list of layers goes there */
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(files, i));
		struct stat st;
		if (!stat(f, &st) && inodes_have(&below, &st) && manifest_add(t, to, f))
			log_warn("%s: cannot list %s among its layers", to->def.name, f);
	}
	free(below.v);
	json_object_put(files);
}

void layers_gc(struct ternd *t, struct vm_entry *e)
{
	char path[4200];
	struct json_object *files = manifest_read(ternd_vm_dir(t, e, "layers", path, sizeof(path)));
	struct json_object *keep = json_object_new_array(), *hops = chain_record_all(t, e);
	struct inodes live = { 0 };

	if (!json_object_array_length(files) || !live_files(t, &live, NULL, hops))
		goto out;
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(files, i));
		struct stat st;
		if (lstat(f, &st))
			continue; /* never made, or removed by hand */
		if (!S_ISREG(st.st_mode) || inodes_have(&live, &st)) {
			json_object_array_add(keep, json_object_new_string(f));
			continue;
		}
		if (unlink(f)) {
			log_warn("%s: cannot remove %s, which nothing uses: %s", e->def.name, f,
				 strerror(errno));
			json_object_array_add(keep, json_object_new_string(f));
		} else {
			log_info("%s: removed %s, which no disk or snapshot uses any more",
				 e->def.name, f);
		}
	}
	if (manifest_write(path, keep))
		log_warn("%s: cannot write %s", e->def.name, path);
out:
	free(live.v);
	json_object_put(hops);
	json_object_put(keep);
	json_object_put(files);
}

/* Whether path is in e's layers (ternd made it). */
static bool listed(struct ternd *t, struct vm_entry *e, const struct stat *st)
{
	char path[4200];
	struct json_object *files = manifest_read(ternd_vm_dir(t, e, "layers", path, sizeof(path)));
	bool yes = false;

	for (size_t i = 0; !yes && i < json_object_array_length(files); i++) {
		struct stat fs;
		const char *f = json_object_get_string(json_object_array_get_idx(files, i));
		yes = !stat(f, &fs) && fs.st_dev == st->st_dev && fs.st_ino == st->st_ino;
	}
	json_object_put(files);
	return yes;
}

bool layers_made(struct ternd *t, struct vm_entry *e, const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && listed(t, e, &st);
}

/*
 * The image disk i of d may merge into: the file below its top, when ternd made the top
 * and nothing but that top stands on the image (held: what every other VM's disk and
 * every snapshot holds). Into below, with its format as the top's header names it (a raw
 * image is never probed: a guest could have written a header into it), and true.
 */
static bool mergeable(struct ternd *t, struct vm_entry *e, const struct vmdef *d, unsigned int i,
		      const struct inodes *held, struct json_object *hops,
		      struct qcow2_chain_entry *below)
{
	const struct vmdef_disk *k = &d->disks[i];
	struct qcow2_chain_entry *chain = calloc(2, sizeof(*chain));
	struct inodes mine = { 0 };
	struct stat top, st, rs;
	enum disk_format f;
	const char *rp, *rf = NULL;
	char why[256];
	bool ok = false;

	if (!chain || k->readonly || stat(k->path, &top) || inodes_have(held, &top) ||
	    disk_format_resolve(k->path, k->format, &f) || f != DISK_FORMAT_QCOW2 ||
	    !listed(t, e, &top) || qcow2_describe(k->path, chain, 2, why, sizeof(why)) < 2 ||
	    stat(chain[1].path, &st) || inodes_have(held, &st))
		goto out;
	/*
	 * The merge writes, as root, into the file the top's header names below it: only if
	 * that is the file, in the format, ternd recorded below the top when it made it. The
	 * header was the VM's to write while it ran; one naming another file (or no record:
	 * an overlay made before ternd kept them) leaves the disk on its chain.
	 */
	rp = chain_record_below(hops, k->path, &rf);
	if (!rp || stat(rp, &rs) || rs.st_dev != st.st_dev || rs.st_ino != st.st_ino || !rf ||
	    strcmp(rf, chain[1].format)) {
		if (rp)
			log_warn("%s: disk %u: %s names %s (%s) below it, but ternd made it in "
				 "front of %s (%s): not merged",
				 e->def.name, i, k->path, chain[1].path, chain[1].format, rp,
				 rf ? rf : "?");
		goto out;
	}
	/* Nor may this VM's other disks stand on it. */
	for (unsigned int j = 0; j < d->ndisks; j++)
		if (j != i)
			inodes_add_chain(&mine, &d->disks[j], true, hops);
	ok = !inodes_have(&mine, &st);
	*below = chain[1];
out:
	free(chain);
	free(mine.v);
	return ok;
}

static void merging(void *opaque, uint64_t done, uint64_t total)
{
	struct job_ctx *j = opaque;

	job_set(j->t, j->e, done, total, "merging an overlay into the image below it", NULL);
}

int layers_merge(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *err, size_t n)
{
	struct qcow2_chain_entry *below = calloc(1, sizeof(*below));
	struct inodes held = { 0 };
	struct job_ctx j = { t, e };
	struct json_object *hops = chain_record_all(t, e);
	int merged = 0, r = 0;

	if (!below || !live_files(t, &held, e, hops)) {
		free(below);
		free(held.v);
		json_object_put(hops);
		return 0;
	}
	/* Down the chain as far as nothing else stands on it. */
	for (unsigned int i = 0; !r && i < d->ndisks; i++) {
		char *p;
		while (!r && mergeable(t, e, d, i, &held, hops, below) &&
		       (p = strdup(below->path))) {
			struct disk_commit c = { .top = d->disks[i].path,
						 .progress = merging,
						 .opaque = &j };
			if ((r = disk_commit(&c, err, n))) {
				free(p);
				break;
			}
			log_info(
				"%s: disk %u: %s merged into %s (%llu bytes), which it is on again",
				e->def.name, i, d->disks[i].path, p, (unsigned long long)c.bytes);
			free(d->disks[i].path);
			d->disks[i].path = p;
			d->disks[i].format = strcmp(below->format, "qcow2") ? DISK_FORMAT_RAW :
									      DISK_FORMAT_QCOW2;
			merged++;
		}
	}
	free(held.v);
	free(below);
	json_object_put(hops);
	return r ? r : merged;
}
