/* The backing chains ternd has seen its VMs' disks on (see chain_record.h). */
#include "daemon/chain_record.h"
#include "daemon/ternd.h"

#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* vms/UUID/chain: {"hops": {UPPER: {"path": LOWER, "format": "raw"|"qcow2"}, ...}} */
static struct json_object *hops_load(struct ternd *t, struct vm_entry *e, char *path, size_t n)
{
	struct json_object *o = json_object_from_file(ternd_vm_dir(t, e, "chain", path, n)), *h;
	struct json_object *hops = o && json_object_object_get_ex(o, "hops", &h) &&
						   json_object_is_type(h, json_type_object) ?
					   json_object_get(h) :
					   json_object_new_object();

	json_object_put(o);
	return hops;
}

/* Written beside, synced and renamed over, as the owners file: the old records or the new. */
static int hops_save(struct ternd *t, struct vm_entry *e, const char *path,
		     struct json_object *hops)
{
	char why[256];
	struct json_object *o = json_object_new_object();
	int r;

	ternd_make_vm_dir(t, e, why, sizeof(why));
	json_object_object_add(o, "hops", json_object_get(hops));
	r = ternd_write_json(path, o);
	if (r)
		log_warn("%s: cannot write %s: %s", e->def.name, path, strerror(-r));
	json_object_put(o);
	return r;
}

static void hop_put(struct json_object *hops, const struct qcow2_chain_entry *upper,
		    const struct qcow2_chain_entry *lower)
{
	struct json_object *rec = json_object_new_object();

	json_object_object_add(rec, "path", json_object_new_string(lower->path));
	json_object_object_add(rec, "format", json_object_new_string(lower->format));
	json_object_object_add(hops, upper->path, rec);
}

static const char *field(struct json_object *rec, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(rec, key, &v) ? json_object_get_string(v) : NULL;
}

/*
 * The chain of the qcow2 image path as its headers name it, top first, into c (room for
 * QCOW2_CHAIN_MAX + 1): how many files, 0 when it is no qcow2 or does not open (tern-vmm
 * reports that at its start).
 */
static int chain_of(const char *path, enum disk_format format, struct qcow2_chain_entry *c)
{
	enum disk_format f;
	char why[256];

	if (disk_format_resolve(path, format, &f) || f != DISK_FORMAT_QCOW2)
		return 0;
	int nc = qcow2_describe_unlocked(path, c, QCOW2_CHAIN_MAX + 1, why, sizeof(why));
	return nc < 0 ? 0 : nc;
}

/* Adds o's recorded hops to all, over any all has for the same file. */
static void hops_add(struct json_object *all, struct ternd *t, struct vm_entry *o)
{
	char path[4200];
	struct json_object *h = hops_load(t, o, path, sizeof(path));

	json_object_object_foreach(h, key, rec)
		json_object_object_add(all, key, json_object_get(rec));
	json_object_put(h);
}

/* Every other VM's recorded hops than skip's (may be NULL) in one map. */
static struct json_object *others_load(struct ternd *t, struct vm_entry *skip)
{
	struct json_object *all = json_object_new_object();

	pthread_mutex_lock(&t->lock);
	for (struct vm_entry *o = t->vms; o; o = o->next)
		if (o != skip)
			hops_add(all, t, o);
	pthread_mutex_unlock(&t->lock);
	return all;
}

/*
 * The record of the hop below upper: e's own (own), else another VM's, else NULL. The
 * other VMs' records are read into *others the first time one is needed: most starts
 * find every hop in their own.
 */
static struct json_object *known(struct ternd *t, struct vm_entry *e, struct json_object *own,
				 struct json_object **others, const char *upper)
{
	struct json_object *rec;

	if (json_object_object_get_ex(own, upper, &rec))
		return rec;
	if (!*others)
		*others = others_load(t, e);
	return json_object_object_get_ex(*others, upper, &rec) ? rec : NULL;
}

void chain_record_define(struct ternd *t, struct vm_entry *e)
{
	char path[4200];
	struct json_object *hops = hops_load(t, e, path, sizeof(path)), *others = NULL;
	struct qcow2_chain_entry *c = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*c));
	bool added = false;

	for (unsigned int i = 0; c && i < e->def.ndisks; i++) {
		int nc = chain_of(e->def.disks[i].path, e->def.disks[i].format, c);
		for (int h = 0; h + 1 < nc; h++, added = true) {
			struct json_object *rec = known(t, e, hops, &others, c[h].path);
			if (rec)
				json_object_object_add(hops, c[h].path, json_object_get(rec));
			else
				hop_put(hops, &c[h], &c[h + 1]);
		}
	}
	if (added)
		hops_save(t, e, path, hops);
	free(c);
	json_object_put(others);
	json_object_put(hops);
}

int chain_record_made(struct ternd *t, struct vm_entry *e, const char *overlay)
{
	char path[4200];
	struct json_object *hops;
	struct qcow2_chain_entry *c = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*c));
	int r = -EIO;

	if (!c)
		return -ENOMEM;
	if (chain_of(overlay, DISK_FORMAT_QCOW2, c) >= 2) {
		hops = hops_load(t, e, path, sizeof(path));
		hop_put(hops, &c[0], &c[1]);
		r = hops_save(t, e, path, hops);
		json_object_put(hops);
	}
	free(c);
	return r;
}

int chain_record_check(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	char path[4200];
	struct json_object *hops = hops_load(t, e, path, sizeof(path)), *others = NULL;
	struct qcow2_chain_entry *c = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*c));
	bool added = false;
	int r = 0;

	if (!c) {
		json_object_put(hops);
		return fail_msg(err, n, -ENOMEM, "out of memory");
	}
	for (unsigned int i = 0; !r && i < e->def.ndisks; i++) {
		int nc = chain_of(e->def.disks[i].path, e->def.disks[i].format, c);
		for (int h = 0; !r && h + 1 < nc; h++) {
			struct json_object *rec = known(t, e, hops, &others, c[h].path);
			if (!rec) {
				hop_put(hops, &c[h], &c[h + 1]); /* first seen: held from now */
				added = true;
				continue;
			}
			const char *rp = field(rec, "path"), *rf = field(rec, "format");
			if (rp && rf && !strcmp(rp, c[h + 1].path) &&
			    !strcmp(rf, c[h + 1].format)) {
				if (!json_object_object_get_ex(hops, c[h].path, NULL)) {
					json_object_object_add(hops, c[h].path,
							       json_object_get(rec));
					added = true; /* another VM's: this one's too now */
				}
				continue;
			}
			/* Another VM's record cannot be dropped from here: only put back. */
			bool mine = json_object_object_get_ex(hops, c[h].path, NULL);
			r = fail_msg(err, n, -EACCES,
				     "disk %u: %s names %s (%s) below it, but ternd recorded %s "
				     "(%s) there%s: a VM may have rewritten the header. Put it "
				     "back (qemu-img rebase -u -b %s -F %s %s)%s%s%s",
				     i, c[h].path, c[h + 1].path, c[h + 1].format, rp ? rp : "?",
				     rf ? rf : "?", mine ? "" : " for another VM", rp ? rp : "?",
				     rf ? rf : "?", c[h].path,
				     mine ? ", or, if the change is yours, remove " : "",
				     mine ? path : "",
				     mine ? " (the chains are recorded again as they are at the "
					    "next start)" :
					    "");
		}
	}
	if (!r && added)
		hops_save(t, e, path, hops);
	free(c);
	json_object_put(others);
	json_object_put(hops);
	return r;
}

struct json_object *chain_record_all(struct ternd *t, struct vm_entry *e)
{
	struct json_object *all = others_load(t, e);

	if (e)
		hops_add(all, t, e); /* last: its own records stand over another VM's */
	return all;
}

const char *chain_record_below(struct json_object *hops, const char *path, const char **format)
{
	struct json_object *rec;

	if (!hops || !json_object_object_get_ex(hops, path, &rec))
		return NULL;
	if (format)
		*format = field(rec, "format");
	return field(rec, "path");
}
