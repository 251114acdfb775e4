/*
 * tern clone (docs/ternd.md): a new VM from a shut-off one, with a new uuid, MACs and
 * vsock CID, and its own writable disks beside the source's:
 *  - "copy": true: a full copy of each (a reflink where the file system has them);
 *  - else a reflink where possible; else a qcow2 overlay in front of the source's image,
 *    and the source moves onto a qcow2 overlay of its own in front of the same image,
 *    which neither writes again (an overlay needs its backing file unchanged). So
 *    `qemu-img info --backing-chain` reads both. A source disk that is a qcow2 image or a
 *    tern overlay already is copied (only what was written; the same backing file).
 * Read-only disks are shared. Nothing is left behind when a step fails.
 */
#include "daemon/chain_record.h"
#include "daemon/snap_layers.h"
#include "daemon/ternd.h"

#include "api/json_in.h"
#include "backend/disk_copy.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct made {
	char clone_path[VMDEF_MAX_DISKS][4200]; /* "" when shared */
	enum disk_format clone_format[VMDEF_MAX_DISKS];
	char src_overlay[VMDEF_MAX_DISKS][4200]; /* the source's new qcow2 overlay, or "" */
};

static void undo(struct made *m)
{
	for (unsigned int i = 0; i < VMDEF_MAX_DISKS; i++) {
		if (m->clone_path[i][0])
			unlink(m->clone_path[i]);
		if (m->src_overlay[i][0])
			unlink(m->src_overlay[i]);
	}
}

/* DIR-of-image/VM-diskI.EXT */
static void beside(const char *image, const char *vm, unsigned int i, const char *ext, char *out,
		   size_t n)
{
	char copy[VMDEF_PATH_MAX + 1];

	snprintf(copy, sizeof(copy), "%s", image);
	snprintf(out, n, "%s/%s-disk%u.%s", dirname(copy), vm, i, ext);
}

/* A new qcow2 image at path in front of the raw image base. */
static int make_overlay(const char *path, const char *base, char *err, size_t n)
{
	struct qcow2_create_args a = { .path = path, .backing = base, .backing_format = "raw" };

	return qcow2_create(&a, err, n);
}

/* fmt: each disk's format, AUTO resolved (clone_vm() did it once for the byte count too). */
static int make_disks(const struct vmdef *src, const enum disk_format *fmt, const char *name,
		      bool copy, struct made *m, struct job_ctx *j, char *err, size_t n)
{
	int r;

	for (unsigned int i = 0; i < src->ndisks; i++) {
		const struct vmdef_disk *k = &src->disks[i];
		char *to = m->clone_path[i];
		enum disk_format f = fmt[i];
		if (k->readonly)
			continue;
		beside(k->path, name, i,
		       f == DISK_FORMAT_OVERLAY ? "ovl" :
		       f == DISK_FORMAT_QCOW2	? "qcow2" :
						  "img",
		       to, 4200);
		m->clone_format[i] = k->format;
		if (!copy && f == DISK_FORMAT_RAW && disk_reflink(k->path, to))
			continue; /* blocks shared until either side writes: no base to keep */
		if (copy || f != DISK_FORMAT_RAW) {
			if ((r = disk_copy_cb(k->path, to, job_progress, j, err, n))) {
				to[0] = 0;
				return r;
			}
			continue;
		}
		beside(k->path, name, i, "qcow2", to, 4200);
		if ((r = make_overlay(to, k->path, err, n))) {
			to[0] = 0;
			return r;
		}
		m->clone_format[i] = DISK_FORMAT_QCOW2;
		beside(k->path, src->name, i, "qcow2", m->src_overlay[i], 4200);
		if ((r = make_overlay(m->src_overlay[i], k->path, err, n))) {
			m->src_overlay[i][0] = 0;
			return r;
		}
	}
	return 0;
}

/* The lowest vsock CID from 3 up that no defined VM has. */
static uint64_t free_cid(struct ternd *t)
{
	uint64_t cid = 3;
	bool taken;

	pthread_mutex_lock(&t->lock);
	do {
		taken = false;
		for (struct vm_entry *e = t->vms; e; e = e->next)
			if (e->def.has_vsock && e->def.vsock_cid == cid) {
				taken = true;
				cid++;
				break;
			}
	} while (taken);
	pthread_mutex_unlock(&t->lock);
	return cid;
}

/* The clone's definition: the source's, renamed, with new identities and its disks. */
static char *clone_json(struct ternd *t, const char *src_json, const char *name,
			const struct made *m)
{
	struct json_object *o = json_tokener_parse(src_json), *a, *x;
	char *out;

	if (!o)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_del(o, "uuid");
	json_object_object_add(o, "autostart", json_object_new_boolean(false));
	if (json_object_object_get_ex(o, "nics", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			x = json_object_array_get_idx(a, i);
			json_object_object_del(x, "mac");
			/* Host ports cannot be bound twice: the clone forwards none. */
			json_object_object_del(x, "hostfwd");
		}
	if (json_object_object_get_ex(o, "vsock", &x))
		json_object_object_add(x, "cid", json_object_new_int64((int64_t)free_cid(t)));
	if (json_object_object_get_ex(o, "disks", &a))
		for (size_t i = 0; i < json_object_array_length(a) && i < VMDEF_MAX_DISKS; i++) {
			if (!m->clone_path[i][0])
				continue;
			x = json_object_array_get_idx(a, i);
			json_object_object_add(x, "path", json_object_new_string(m->clone_path[i]));
			json_object_object_add(
				x, "format",
				json_object_new_string(disk_format_name(m->clone_format[i])));
		}
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

static int parse_body(const char *body, char *name, bool *copy, char *err, size_t n)
{
	static const char *const keys[] = { "name", "copy", NULL };
	struct json_object *o = jin_parse_object(body ? body : "", body ? strlen(body) : 0, err, n);
	int r;

	if (!o)
		return -EINVAL;
	*copy = false;
	if (!(r = jin_only(o, keys, "a clone request", err, n)) &&
	    (r = jin_bool(o, "copy", copy, err, n)) >= 0)
		r = vmdef_name_field(o, name, err, n);
	json_object_put(o);
	return r < 0 ? r : 0;
}

/* The source's definition with disk i on its new overlay, for each one made. */
static int move_source(struct ternd *t, struct vm_entry *src, const struct made *m, char *err,
		       size_t n)
{
	struct vmdef d;
	char *json;
	bool moved = false;
	int r;

	pthread_mutex_lock(&t->lock);
	json = strdup(src->def_json);
	pthread_mutex_unlock(&t->lock);
	if (!json)
		return -ENOMEM;
	r = vmdef_parse(json, strlen(json), &d, false, err, n);
	free(json);
	if (r)
		return r;
	for (unsigned int i = 0; i < d.ndisks; i++)
		if (m->src_overlay[i][0]) {
			if (chain_record_made(t, src, m->src_overlay[i]))
				log_warn("%s: cannot record what %s stands on", src->def.name,
					 m->src_overlay[i]);
			free(d.disks[i].path);
			d.disks[i].path = strdup(m->src_overlay[i]);
			d.disks[i].format = DISK_FORMAT_QCOW2;
			moved = true;
		}
	if (!moved) {
		vmdef_free(&d);
		return 0;
	}
	if ((r = ternd_store_definition(t, src, &d, err, n))) {
		vmdef_free(&d);
		return r;
	}
	log_info("clone: %s now runs on qcow2 overlays in front of its former images",
		 src->def.name);
	return 0;
}

int clone_vm(struct ternd *t, struct vm_entry *src, const char *body, char *name, char *err,
	     size_t n)
{
	struct made *m = calloc(1, sizeof(*m));
	struct vmdef d;
	struct vm_entry *o;
	char *json = NULL;
	bool copy;
	int r;

	if (!m)
		return -ENOMEM;
	if ((r = parse_body(body, name, &copy, err, n)))
		goto out;
	if ((o = ternd_get(t, name))) {
		ternd_put(t, o);
		r = fail_msg(err, n, -EEXIST, "a VM named %s exists already", name);
		goto out;
	}
	if ((r = ops_need_state(t, src, "shut off", NULL, "clone", err, n)))
		goto out;
	/*
	 * Without copies the source's images become bases that must never change. Its
	 * snapshots and managed save do not write them: a revert goes on on new overlays (or
	 * a new copy beside an image the VM has left), a restore on the definition's disks.
	 */
	struct job_ctx j = { t, src };
	uint64_t total = 0;
	enum disk_format fmt[VMDEF_MAX_DISKS] = { DISK_FORMAT_RAW };
	for (unsigned int i = 0; i < src->def.ndisks; i++) {
		const struct vmdef_disk *k = &src->def.disks[i];
		if (k->readonly)
			continue;
		if ((r = disk_format_resolve(k->path, k->format, &fmt[i]))) {
			r = fail_msg(err, n, r, "disk %u: cannot read %s: %s", i, k->path,
				     strerror(-r));
			goto out;
		}
		/* What is copied: every writable disk with copy, else the qcow2 or overlays. */
		if (copy || fmt[i] != DISK_FORMAT_RAW)
			total += disk_copy_bytes(k->path);
	}
	job_begin(t, src, "clone", total, false);
	r = make_disks(&src->def, fmt, name, copy, m, &j, err, n);
	job_end(t, src);
	if (r)
		goto out;
	pthread_mutex_lock(&t->lock);
	char *src_json = strdup(src->def_json);
	pthread_mutex_unlock(&t->lock);
	json = src_json ? clone_json(t, src_json, name, m) : NULL; /* takes ternd.lock itself */
	free(src_json);
	if (!json) {
		r = -ENOMEM;
		goto out;
	}
	char why[512];
	if ((r = vmdef_parse(json, strlen(json), &d, true, why, sizeof(why)))) {
		r = fail_msg(err, n, -EIO, "the clone's definition is refused: %s", why);
		goto out;
	}
	if ((r = ternd_define(t, &d, err, n))) {
		vmdef_free(&d);
		goto out;
	}
	struct vm_entry *c = ternd_get(t, name);
	if ((r = move_source(t, src, m, err, n)) && c) {
		/* The clone's overlays need the source off its images: take the clone back. */
		pthread_mutex_lock(&c->op);
		ternd_undefine(t, c, false, why, sizeof(why));
		pthread_mutex_unlock(&c->op);
	} else if (c) {
		/* The clone stands on overlays of the source's snapshots: they are its too. */
		layers_inherit(t, src, c);
	}
	if (c)
		ternd_put(t, c);
out:
	if (r)
		undo(m);
	free(json);
	free(m);
	return r;
}
