/* The VM table: entries loaded from the database, lookups with references, define/undefine. */
#include "daemon/snap_layers.h"
#include "daemon/ternd.h"
#include "daemon/chain_record.h"
#include "daemon/vm_jail.h"

#include "core/log.h"
#include "core/util.h"
#include "monitor/run_status.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ternd_vm_dir(const struct ternd *t, const struct vm_entry *e, const char *file,
			 char *buf, size_t n)
{
	snprintf(buf, n, "%s/vms/%s%s%s", t->state_dir, e->def.uuid, file ? "/" : "",
		 file ? file : "");
	return buf;
}

int ternd_write_json(const char *path, struct json_object *o)
{
	return run_status_write_file(
		path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								JSON_C_TO_STRING_NOSLASHESCAPE));
}

int ternd_make_vm_dir(const struct ternd *t, const struct vm_entry *e, char *err, size_t n)
{
	char dir[4200];

	snprintf(dir, sizeof(dir), "%s/vms", t->state_dir);
	mkdir(dir, 0700);
	if (mkdir(ternd_vm_dir(t, e, NULL, dir, sizeof(dir)), 0700) && errno != EEXIST)
		return fail_msg(err, n, -errno, "%s: %s", dir, strerror(errno));
	return 0;
}

const char *ternd_vmm_path(const struct ternd *t, const struct vm_entry *e, const char *file,
			   char *buf, size_t n)
{
	snprintf(buf, n, "%s/vms/%s/vmm/%s", t->state_dir, e->def.uuid, file);
	return buf;
}

bool ternd_is_active(const struct vm_entry *e)
{
	return !strcmp(e->state, "running") || !strcmp(e->state, "paused") ||
	       !strcmp(e->state, "migrating in");
}

static struct vm_entry *entry_new(void)
{
	struct vm_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	pthread_mutex_init(&e->op, NULL);
	e->mon_pidfd = e->vmm_pidfd = -1;
	return e;
}

static void entry_free(struct vm_entry *e)
{
	vmdef_free(&e->def);
	free(e->def_json);
	free(e->detail);
	free(e->job.migration);
	free(e->mig_owners);
	if (e->mon_pidfd >= 0)
		close(e->mon_pidfd);
	if (e->vmm_pidfd >= 0)
		close(e->vmm_pidfd);
	pthread_mutex_destroy(&e->op);
	free(e);
}

int ternd_load(struct ternd *t, char *err, size_t n)
{
	struct store_vm *v;
	size_t count;
	int r = store_vm_list(t->store, &v, &count);

	if (r)
		return fail_msg(err, n, r, "cannot read the VMs from the database");
	for (size_t i = 0; i < count; i++) {
		struct vm_entry *e = entry_new();
		char why[256];
		if (!e) {
			store_vms_free(v, count);
			return -ENOMEM;
		}
		/* What a define checked once is not checked again: a kernel may be gone now. */
		if (vmdef_parse(v[i].definition, strlen(v[i].definition), &e->def, false, why,
				sizeof(why))) {
			log_error("VM %s in the database has a bad definition (%s): skipped",
				  v[i].name, why);
			entry_free(e);
			continue;
		}
		e->def_json = vmdef_to_json(&e->def);
		snprintf(e->state, sizeof(e->state), "%s", v[i].state);
		snprintf(e->reason, sizeof(e->reason), "%s", v[i].reason);
		e->detail = v[i].detail ? strdup(v[i].detail) : NULL;
		e->started_at = v[i].started_at;
		vmjail_load(t, e);
		e->next = t->vms;
		t->vms = e;
	}
	store_vms_free(v, count);
	return 0;
}

struct vm_entry *ternd_get(struct ternd *t, const char *key)
{
	struct vm_entry *e;

	pthread_mutex_lock(&t->lock);
	for (e = t->vms; e; e = e->next)
		if (!strcmp(e->def.name, key) || !strcmp(e->def.uuid, key))
			break;
	if (e)
		e->refs++;
	pthread_mutex_unlock(&t->lock);
	return e;
}

void ternd_put(struct ternd *t, struct vm_entry *e)
{
	bool last;

	pthread_mutex_lock(&t->lock);
	last = !--e->refs && e->removed;
	pthread_mutex_unlock(&t->lock);
	if (last)
		entry_free(e);
}

int ternd_define(struct ternd *t, struct vmdef *d, char *err, size_t n)
{
	struct vm_entry *e = entry_new(), *o;
	int r;

	if (!e)
		return -ENOMEM;
	e->def = *d;
	memset(d, 0, sizeof(*d));
	if (!(e->def_json = vmdef_to_json(&e->def))) {
		entry_free(e);
		return -ENOMEM;
	}
	strcpy(e->state, "shut off");
	strcpy(e->reason, "never");
	pthread_mutex_lock(&t->lock);
	for (o = t->vms; o; o = o->next)
		if (!strcmp(o->def.name, e->def.name) || !strcmp(o->def.uuid, e->def.uuid))
			break;
	if (o) {
		r = fail_msg(err, n, -EEXIST, "a VM named %s%s exists already", o->def.name,
			     strcmp(o->def.name, e->def.name) ? " has that uuid" : "");
	} else if ((r = store_vm_add(t->store, e->def.uuid, e->def.name, e->def_json))) {
		fail_msg(err, n, r,
			 r == -EEXIST ? "the name or uuid is taken" : "cannot write the database");
	} else {
		store_event_add(t->store, e->def.name, "defined", "added", NULL);
		e->next = t->vms;
		t->vms = e;
		pthread_cond_broadcast(&t->changed);
	}
	pthread_mutex_unlock(&t->lock);
	if (r)
		entry_free(e);
	else
		chain_record_define(t, e); /* the chains the user named, as they are now */
	return r;
}

int ternd_set_definition(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *json)
{
	pthread_mutex_lock(&t->lock);
	if (store_vm_set_definition(t->store, e->def.uuid, json)) {
		pthread_mutex_unlock(&t->lock);
		return -EIO;
	}
	vmdef_free(&e->def);
	e->def = *d;
	memset(d, 0, sizeof(*d));
	free(e->def_json);
	e->def_json = json;
	store_event_add(t->store, e->def.name, "defined", "updated", NULL);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int ternd_store_definition(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *err,
			   size_t n)
{
	char *json = vmdef_to_json(d);

	if (json && !ternd_set_definition(t, e, d, json))
		return 0;
	free(json);
	return fail_msg(err, n, -EIO, "cannot write the database");
}

static int remove_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void ternd_remove_tree(const char *path)
{
	nftw(path, remove_file, 16, FTW_DEPTH | FTW_PHYS);
}

int ternd_undefine(struct ternd *t, struct vm_entry *e, bool remove_storage, char *err, size_t n)
{
	char dir[4096];
	int r;

	pthread_mutex_lock(&t->lock);
	if (ternd_is_active(e)) {
		pthread_mutex_unlock(&t->lock);
		return fail_msg(err, n, -EBUSY, "%s is %s: destroy or shut it down first",
				e->def.name, e->state);
	}
	if ((r = store_vm_delete(t->store, e->def.uuid))) {
		pthread_mutex_unlock(&t->lock);
		return fail_msg(err, n, r, "cannot write the database");
	}
	store_event_add(t->store, e->def.name, "undefined", "removed", NULL);
	for (struct vm_entry **p = &t->vms; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	e->removed = true;
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	/*
	 * The VM's own files go with it; its disks only when asked (virsh's
	 * --remove-all-storage), and with them the overlays ternd made for its snapshots
	 * that no other VM stands on (their list is in its directory: first).
	 */
	if (remove_storage) {
		for (unsigned int i = 0; i < e->def.ndisks; i++)
			if (unlink(e->def.disks[i].path) && errno != ENOENT)
				log_warn("undefine %s: cannot remove %s: %s", e->def.name,
					 e->def.disks[i].path, strerror(errno));
		layers_gc(t, e);
	}
	ternd_remove_tree(ternd_vm_dir(t, e, NULL, dir, sizeof(dir)));
	return 0;
}

void ternd_event(struct ternd *t, struct vm_entry *e, const char *state, const char *reason,
		 struct json_object *detail)
{
	pthread_mutex_lock(&t->lock);
	store_event_add(t->store, e->def.name, state, reason,
			detail ? json_object_to_json_string(detail) : NULL);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	json_object_put(detail);
}

/* Under ternd.lock. */
static void set_state(struct ternd *t, struct vm_entry *e, const char *state, const char *reason,
		      const char *detail)
{
	bool active = !strcmp(state, "running") || !strcmp(state, "paused");
	int r;

	/* A VM that arrived by migration starts its uptime here, not at the prepare. */
	if ((!ternd_is_active(e) || !strcmp(e->state, "migrating in")) && active &&
	    strcmp(reason, "unpaused")) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		e->started_at = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	}
	snprintf(e->state, sizeof(e->state), "%s", state);
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	if (detail || !active) {
		free(e->detail);
		e->detail = detail ? strdup(detail) : NULL;
	}
	if (!e->removed && (r = store_vm_set_state(t->store, e->def.uuid, state, reason, e->detail,
						   e->started_at)))
		log_error("%s: cannot record state %s (%s) in the database: %s", e->def.name, state,
			  reason, strerror(-r));
	pthread_cond_broadcast(&t->changed);
}

void ternd_set_state(struct ternd *t, struct vm_entry *e, const char *state, const char *reason,
		     const char *detail)
{
	pthread_mutex_lock(&t->lock);
	set_state(t, e, state, reason, detail);
	pthread_mutex_unlock(&t->lock);
	log_info("%s: %s (%s)", e->def.name, state, reason);
}

bool ternd_set_state_from(struct ternd *t, struct vm_entry *e, const char *from, const char *state,
			  const char *reason, const char *detail)
{
	bool now;

	pthread_mutex_lock(&t->lock);
	if ((now = !strcmp(e->state, from)))
		set_state(t, e, state, reason, detail);
	pthread_mutex_unlock(&t->lock);
	if (now)
		log_info("%s: %s (%s)", e->def.name, state, reason);
	return now;
}
