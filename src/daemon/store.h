/*
 * ternd's database (SQLite, WAL mode): VM definitions, their last known state, and the
 * event log. The schema is versioned; opening migrates an older one step by step and
 * refuses a newer one. Calls are serialized by the store's own lock.
 */
#ifndef TERN_DAEMON_STORE_H
#define TERN_DAEMON_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 2

struct store;

struct store_vm {
	char uuid[40];
	char name[64];
	char *definition; /* canonical JSON (vmdef_to_json) */
	char state[16];	  /* "running", "paused", "shut off" */
	char reason[16];
	char *detail; /* how it ended, for shut-off VMs; may be NULL */
	double started_at;
};

struct store_event {
	int64_t id;
	double at;
	char name[64];
	char state[16];
	char reason[16];
	char *detail;
};

struct store_snap {
	char name[64];
	double created_at;
	char vm_state[16]; /* the VM's state when it was taken: "shut off" = disks only */
	char *definition;  /* the VM's definition then */
};

int store_open(struct store **out, const char *path, char *err, size_t errlen);
void store_close(struct store *s);

/* Adds a shut-off VM ("never" started). -EEXIST when the name or uuid is taken. */
int store_vm_add(struct store *s, const char *uuid, const char *name, const char *definition);
int store_vm_set_definition(struct store *s, const char *uuid, const char *definition);
int store_vm_delete(struct store *s, const char *uuid);
/* Records the VM's state and appends the change to the event log. */
int store_vm_set_state(struct store *s, const char *uuid, const char *state, const char *reason,
		       const char *detail, double started_at);
/* Every VM, by name; *out is malloc'd (store_vms_free). */
int store_vm_list(struct store *s, struct store_vm **out, size_t *count);
void store_vms_free(struct store_vm *v, size_t count);

/* A VM's snapshots (docs/ternd.md): add (-EEXIST when the name is taken), delete, list. */
int store_snap_add(struct store *s, const char *uuid, const char *name, const char *vm_state,
		   const char *definition);
int store_snap_delete(struct store *s, const char *uuid, const char *name);
/* Oldest first; *out malloc'd (store_snaps_free). */
int store_snap_list(struct store *s, const char *uuid, struct store_snap **out, size_t *count);
void store_snaps_free(struct store_snap *v, size_t count);

/* Appends an event that is not a state change ("defined", "undefined"). */
int store_event_add(struct store *s, const char *name, const char *state, const char *reason,
		    const char *detail);
/* Events with id > after, oldest first, at most max; *out malloc'd (store_events_free). */
int store_events(struct store *s, int64_t after, size_t max, struct store_event **out,
		 size_t *count);
void store_events_free(struct store_event *e, size_t count);
/* The newest event's id (0 when there is none). */
int64_t store_last_event(struct store *s);

#endif
