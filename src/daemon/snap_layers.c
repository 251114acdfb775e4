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

/*
 * DIR/layers: {"files": [PATH, ...], "over": {PATH: {"path": BELOW, "format": F}, ...}}.
 * "over" records what ternd put each overlay in front of when it made it: the overlay's
 * own header names its backing file too, but that header is the VM's to write while it
 * runs (a hostile tern-vmm can name any file there), so what ternd does with the files
 * below a disk as root (merge into them, keep them) goes by the record.
 */
static struct json_object *manifest_load(const char *path)
{
	struct json_object *o = json_object_from_file(path), *m = json_object_new_object(), *over;

	json_object_object_add(m, "files", jin_array_or_empty(o, "files"));
	if (o && json_object_object_get_ex(o, "over", &over) &&
	    json_object_is_type(over, json_type_object))
		json_object_object_add(m, "over", json_object_get(over));
	else
		json_object_object_add(m, "over", json_object_new_object());
	json_object_put(o);
	return m;
}

static struct json_object *member(struct json_object *m, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(m, key, &v);
	return v;
}

/* The files listed in DIR/layers, or an empty array when there is none. */
static struct json_object *manifest_read(const char *path)
{
	struct json_object *m = manifest_load(path), *files = json_object_get(member(m, "files"));

	json_object_put(m);
	return files;
}

/*
 * files, with the records of "over" (of m, may be NULL) that name one of them. Written
 * beside and renamed over: a crash leaves the old list or the new one.
 */
static int manifest_write(const char *path, struct json_object *files, struct json_object *m)
{
	char tmp[4300];
	int r = 0;

	if (!json_object_array_length(files))
		return unlink(path) && errno != ENOENT ? -errno : 0;
	struct json_object *o = json_object_new_object(), *over = json_object_new_object(), *rec;
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(files, i));
		if (m && json_object_object_get_ex(member(m, "over"), f, &rec))
			json_object_object_add(over, f, json_object_get(rec));
	}
	json_object_object_add(o, "files", json_object_get(files));
	json_object_object_add(o, "over", over);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if (json_object_to_file_ext(tmp, o, JSON_C_TO_STRING_PRETTY) || rename(tmp, path)) {
		r = -EIO;
		unlink(tmp);
	}
	json_object_put(o);
	return r;
}

/* Lists file in e's layers, made in front of below (format "raw" or "qcow2") if given. */
static int manifest_add(struct ternd *t, struct vm_entry *e, const char *file, const char *below,
			const char *format)
{
	char path[4200];
	struct json_object *m = manifest_load(ternd_vm_dir(t, e, "layers", path, sizeof(path)));
	int r;

	json_object_array_add(member(m, "files"), json_object_new_string(file));
	if (below) {
		struct json_object *rec = json_object_new_object();
		json_object_object_add(rec, "path", json_object_new_string(below));
		json_object_object_add(rec, "format", json_object_new_string(format));
		json_object_object_add(member(m, "over"), file, rec);
	}
	r = manifest_write(path, member(m, "files"), m);
	json_object_put(m);
	return r;
}

int layers_new_name(struct ternd *t, struct vm_entry *e, const char *image, const char *vm,
		    unsigned int disk, const char *snap, const char *ext, const char *over_format,
		    char *out, size_t n)
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
			return manifest_add(t, e, out, over_format ? image : NULL, over_format) ?
				       -EIO :
				       0;
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
		if ((r = layers_new_name(t, e, k->path, d->name, i, snap, "qcow2",
					 f == DISK_FORMAT_QCOW2 ? "qcow2" : "raw", made[i],
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

/* What records (an "over" map, may be NULL) says ternd put path in front of, or NULL. */
static const char *record_below(struct json_object *records, const char *path, const char **format)
{
	struct json_object *rec, *v;

	if (!records || !json_object_object_get_ex(records, path, &rec) ||
	    !json_object_object_get_ex(rec, "path", &v))
		return NULL;
	if (format)
		*format = json_object_get_string(member(rec, "format"));
	return json_object_get_string(v);
}

/*
 * The files below disk k, and k's own file with top: those its header chain names, and
 * those ternd's records (may be NULL) say it put each file in front of. Both, so that a
 * header the VM rewrote can make ternd keep more, never less.
 */
static void inodes_add_chain(struct inodes *s, const struct vmdef_disk *k, bool top,
			     struct json_object *records)
{
	char(*below)[DISK_CHAIN_PATH_MAX];
	int nb = disk_chain_list(k->path, k->format, &below);
	const char *p = k->path;

	if (top)
		inodes_add(s, k->path);
	for (int b = 0; b < nb; b++)
		inodes_add(s, below[b]);
	free(below);
	for (int depth = 0; depth < QCOW2_CHAIN_MAX && (p = record_below(records, p, NULL));
	     depth++)
		inodes_add(s, p);
}

/* Every file of every disk's chain in the definition json. false: it did not parse. */
static bool add_chains(struct inodes *s, const char *json, struct json_object *records)
{
	struct vmdef d;
	char why[256];

	if (!json || vmdef_parse(json, strlen(json), &d, false, why, sizeof(why)))
		return false;
	for (unsigned int i = 0; i < d.ndisks; i++)
		inodes_add_chain(s, &d.disks[i], true, records);
	vmdef_free(&d);
	return true;
}

/*
 * What every VM's disks and snapshots hold (but not the disks of except, when given), and
 * into *records (when given; the caller puts it) every VM's "over" records in one map.
 * false when something could not be read: then nothing is removed or merged (a file it
 * would have held might go).
 */
static bool live_files(struct ternd *t, struct inodes *s, const struct vm_entry *except,
		       struct json_object **records)
{
	size_t cnt = 0, k = 0;
	bool ok = true;
	struct json_object *all = json_object_new_object();

	pthread_mutex_lock(&t->lock);
	for (struct vm_entry *o = t->vms; o; o = o->next)
		cnt++;
	char **defs = calloc(cnt + 1, sizeof(*defs));
	char(*uuids)[VMDEF_UUID_LEN + 1] = calloc(cnt + 1, sizeof(*uuids));
	for (struct vm_entry *o = t->vms; defs && uuids && o; o = o->next, k++) {
		char path[4200];
		struct json_object *m =
			manifest_load(ternd_vm_dir(t, o, "layers", path, sizeof(path)));
		json_object_object_foreach(member(m, "over"), key, rec)
			json_object_object_add(all, key, json_object_get(rec));
		json_object_put(m);
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
		if ((!skip && !add_chains(s, defs[i], all)) ||
		    store_snap_list(t->store, uuids[i], &v, &nv)) {
			ok = false;
			break;
		}
		for (size_t j = 0; ok && j < nv; j++)
			ok = add_chains(s, v[j].definition, all);
		store_snaps_free(v, nv);
	}
	for (size_t i = 0; defs && i < cnt; i++)
		free(defs[i]);
	free(defs);
	free(uuids);
	if (records)
		*records = all;
	else
		json_object_put(all);
	return ok;
}

void layers_inherit(struct ternd *t, struct vm_entry *from, struct vm_entry *to)
{
	char path[4200];
	struct json_object *m = manifest_load(ternd_vm_dir(t, from, "layers", path, sizeof(path)));
	struct json_object *files = member(m, "files");
	struct inodes below = { 0 };

	for (unsigned int i = 0; i < to->def.ndisks; i++)
		inodes_add_chain(&below, &to->def.disks[i], false, member(m, "over"));
	char why[256];
	ternd_make_vm_dir(t, to, why, sizeof(why)); /* its list of layers goes there */
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(files, i)), *fmt;
		const char *over = record_below(member(m, "over"), f, &fmt);
		struct stat st;
		if (!stat(f, &st) && inodes_have(&below, &st) &&
		    manifest_add(t, to, f, over, over ? fmt : NULL))
			log_warn("%s: cannot list %s among its layers", to->def.name, f);
	}
	free(below.v);
	json_object_put(m);
}

void layers_gc(struct ternd *t, struct vm_entry *e)
{
	char path[4200];
	struct json_object *m = manifest_load(ternd_vm_dir(t, e, "layers", path, sizeof(path)));
	struct json_object *files = member(m, "files"), *keep = json_object_new_array();
	struct inodes live = { 0 };

	if (!json_object_array_length(files) || !live_files(t, &live, NULL, NULL))
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
	if (manifest_write(path, keep, m))
		log_warn("%s: cannot write %s", e->def.name, path);
out:
	free(live.v);
	json_object_put(keep);
	json_object_put(m);
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
		      const struct inodes *held, struct json_object *records,
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
	 * that is the file, in the format, ternd put the top in front of. The header was the
	 * VM's to write while it ran; one naming another file (or no record: an overlay made
	 * before ternd kept them) leaves the disk on its chain.
	 */
	rp = record_below(records, k->path, &rf);
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
			inodes_add_chain(&mine, &d->disks[j], true, records);
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
	struct json_object *records = NULL;
	int merged = 0, r = 0;

	if (!below || !live_files(t, &held, e, &records)) {
		free(below);
		free(held.v);
		json_object_put(records);
		return 0;
	}
	/* Down the chain as far as nothing else stands on it. */
	for (unsigned int i = 0; !r && i < d->ndisks; i++) {
		char *p;
		while (!r && mergeable(t, e, d, i, &held, records, below) &&
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
	json_object_put(records);
	return r ? r : merged;
}
