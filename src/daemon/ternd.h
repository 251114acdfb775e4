/*
 * ternd's shared state: the VM table and what its modules offer each other.
 *
 * Locking: ternd.lock guards the table and every entry's runtime fields; it is held only
 * for short, non-blocking work, so listing and reading never wait for an operation.
 * An entry's op lock serializes the operations on that VM (start, shutdown, save ...),
 * which may block on its tern-vmm for their timeouts; other VMs never wait for it.
 */
#ifndef TERN_DAEMON_TERND_H
#define TERN_DAEMON_TERND_H

#include "daemon/store.h"
#include "daemon/vmdef.h"

#include <json-c/json.h>

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

struct vm_entry {
	pthread_mutex_t op;
	unsigned int refs; /* under ternd.lock */
	bool removed;	   /* undefined: off the table, freed with its last reference */
	struct vmdef def;
	char *def_json;
	/* runtime, under ternd.lock */
	char state[16], reason[16];
	char *detail; /* JSON of how the last run ended */
	double started_at;
	pid_t mon_pid, vmm_pid;
	int mon_pidfd, vmm_pidfd; /* -1 when not watched */
	bool mon_gone, vmm_gone;
	char end_reason[16]; /* set by destroy/shutdown/save before they stop it */
	uid_t jail_uid;	     /* its uid under ternd --vm-uids (vm_jail.c), 0: none yet */
	bool jailed;	     /* this run is jailed under jail_uid */
	/* An incoming migration (migrate_in.c), under ternd.lock. */
	bool mig_created;  /* defined for it: undefined again if it fails */
	bool mig_streamed; /* the stream reached its tern-vmm */
	bool mig_copied;   /* migrating out with copy_storage: its disks here stay here */
	uid_t mig_uid;	   /* the source's jail uid (0: not jailed there) */
	char *mig_owners;  /* the source's disk records (vm_jail.c), JSON, or NULL */
	/* The long operation running on it (job.c), under ternd.lock; op "" when none. */
	struct {
		char op[16];
		uint64_t done, total; /* bytes; total 0: not known up front */
		double started;
		pid_t writer;		  /* tern-vmm, when its writes count (save, snapshot) */
		unsigned long long wbase; /* its wchar at the start */
		char detail[160];	  /* where it is, in words ("round 3, 12 MiB left") */
		char *migration;	  /* JSON: tern-vmm's GET /migrate, for a migration */
		bool cancel;		  /* DELETE /vms/NAME/job asked it to stop */
	} job;
	struct vm_entry *next;
};

struct ternd {
	char *state_dir, *vmm_path, *monitor_path;
	char *tls_dir;	  /* the PKI directory: a migration's client certificate comes from it */
	char *cgroup;	  /* the cgroup ternd puts each VM under (NULL: none) */
	char *limits_off; /* why VMs run without their cgroup limits (NULL: they have them) */
	struct store *store;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* any state change or event: events long-poll, waiters */
	struct vm_entry *vms;
	int watch_fd; /* epoll of the pidfds of running VMs */
	int start_timeout_ms;
	uid_t uid_first; /* --vm-uids: VMs run jailed under uids uid_first .. + uid_count - 1 */
	unsigned int uid_count; /* 0: not jailed */
};

/* vm_table.c */
int ternd_load(struct ternd *t, char *err, size_t n);
/* Finds by name or uuid and takes a reference (ternd_put), or NULL. */
struct vm_entry *ternd_get(struct ternd *t, const char *name_or_uuid);
void ternd_put(struct ternd *t, struct vm_entry *e);
/* Adds a defined VM (its parsed definition is moved in). -EEXIST when taken. */
int ternd_define(struct ternd *t, struct vmdef *d, char *err, size_t n);
/* Removes a shut-off VM (under its op lock) from the table and the database. */
int ternd_undefine(struct ternd *t, struct vm_entry *e, bool remove_storage, char *err, size_t n);
/* Records a new state and wakes waiters; takes ternd.lock (call without it). */
void ternd_set_state(struct ternd *t, struct vm_entry *e, const char *state, const char *reason,
		     const char *detail);
/* An event about e that is not a state change (a snapshot taken, a disk grown): logged and
 * the waiters woken. Takes detail (JSON, may be NULL). */
void ternd_event(struct ternd *t, struct vm_entry *e, const char *state, const char *reason,
		 struct json_object *detail);
/* As ternd_set_state, only while the VM is in state from (checked under the lock): false
 * when it is not (another thread recorded a change first). */
bool ternd_set_state_from(struct ternd *t, struct vm_entry *e, const char *from, const char *state,
			  const char *reason, const char *detail);
/* Makes vms/ and the VM's directory (0700) where missing: 0, or -errno with err. */
int ternd_make_vm_dir(const struct ternd *t, const struct vm_entry *e, char *err, size_t n);
/*
 * Writes o to path as JSON, through run_status_write_file (synced before and after the
 * rename): a crash leaves the old file or the new one. 0 or -errno.
 */
int ternd_write_json(const char *path, struct json_object *o);
/* The VM's directory under the state directory, into buf. */
const char *ternd_vm_dir(const struct ternd *t, const struct vm_entry *e, const char *file,
			 char *buf, size_t n);
/*
 * DIR/vmm/file: where tern-vmm makes its sockets, status and saved state. The directory
 * belongs to the VM's own uid when ternd jails it (--vm-uids), so everything read from it
 * is as hostile as the guest.
 */
const char *ternd_vmm_path(const struct ternd *t, const struct vm_entry *e, const char *file,
			   char *buf, size_t n);
/* The VM's cgroup directory (/sys/fs/cgroup/.../vm-UUID) into buf, or NULL with no cgroups. */
char *ternd_vm_cgroup(const struct ternd *t, const struct vm_entry *e, char *buf, size_t n);
/* running, paused, or migrating in: it has processes. */
bool ternd_is_active(const struct vm_entry *e);
/* rm -rf path (no error when it is not there). */
void ternd_remove_tree(const char *path);
/* Replaces e's definition (parsed d and its JSON, both moved in) in the table and the database. */
int ternd_set_definition(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *json);
/* The same from d alone (its JSON made here): 0, or -EIO with err and d left as it was. */
int ternd_store_definition(struct ternd *t, struct vm_entry *e, struct vmdef *d, char *err,
			   size_t n);

/* snapshot.c: under the entry's op lock; 0 or -errno with err. */
/* body {"name"}: the name is copied to name (VMDEF_NAME_MAX + 1 bytes). */
int snap_create(struct ternd *t, struct vm_entry *e, const char *body, char *name, char *err,
		size_t n);
int snap_revert(struct ternd *t, struct vm_entry *e, const char *name, char *err, size_t n);
int snap_delete(struct ternd *t, struct vm_entry *e, const char *name, char *err, size_t n);
/* {"name", "snapshots": [{"name", "created_at", "vm_state", "memory"}]}, NULL on failure. */
struct json_object *snap_list(struct ternd *t, struct vm_entry *e);

/* clone.c: body {"name", "copy"}; src under its op lock. The new name into name. */
int clone_vm(struct ternd *t, struct vm_entry *src, const char *body, char *name, char *err,
	     size_t n);

/* job.c: what GET /vms/NAME/job reports (docs/ternd.md). */
struct job_ctx {
	struct ternd *t;
	struct vm_entry *e;
};
/* total: bytes to copy (0: unknown); writes: tern-vmm's own writes count too. */
void job_begin(struct ternd *t, struct vm_entry *e, const char *op, uint64_t total, bool writes);
/* A progress callback (disk_copy_cb) with a struct job_ctx as opaque. */
void job_progress(void *opaque, uint64_t bytes);
/* Sets done and total outright, where it is in words, and a JSON object for "migration"
 * (may be NULL: none); for jobs whose owner learns their progress by asking. */
void job_set(struct ternd *t, struct vm_entry *e, uint64_t done, uint64_t total, const char *detail,
	     const char *migration_json);
void job_end(struct ternd *t, struct vm_entry *e);
/* {"name", "operation" (null when none), "done_bytes", "total_bytes", "elapsed_s"}, and
 * "detail" and "migration" when the job set them. */
struct json_object *job_get(struct ternd *t, struct vm_entry *e);
/*
 * DELETE /vms/NAME/job (virsh domjobabort): asks the running job to stop. Only a migration
 * can (it then fails as cancelled, and the VM runs on here). 0, -ENOENT when no job runs,
 * -EBUSY when the job cannot be cancelled; err says which.
 */
int job_cancel(struct ternd *t, struct vm_entry *e, char *err, size_t n);
/* Whether the running job was asked to stop. */
bool job_cancelled(struct ternd *t, struct vm_entry *e);

/* stats.c: tern-vmm's counters of a running VM, by disk and NIC; NULL + err on failure. */
struct json_object *stats_get(struct ternd *t, struct vm_entry *e, int *status, char *err,
			      size_t n);

/* run.c */
int run_start(struct ternd *t, struct vm_entry *e, char *err, size_t n);
/* Starts it from the snapshot in dir (vm.state, vm.mem), paused if asked; the files stay. */
int run_start_snapshot(struct ternd *t, struct vm_entry *e, const char *dir, bool paused, char *err,
		       size_t n);
/* Stops it at once (SIGKILL) and waits until its end is recorded with reason. */
int run_kill(struct ternd *t, struct vm_entry *e, const char *reason, char *err, size_t n);
/* Waits up to timeout_ms for the VM to be shut off; true if it is. */
bool run_wait_off(struct ternd *t, struct vm_entry *e, int timeout_ms);
/*
 * Starts the VM as a migration's destination: tern-monitor and a tern-vmm that runs no VM
 * yet, answering on its API socket; the state is then "migrating in" (migrate_in.c tells
 * it where the stream comes from). 0, or -errno with err (the VM is then shut off, failed).
 */
int run_start_incoming(struct ternd *t, struct vm_entry *e, char *err, size_t n);
/* Reattaches to each VM the database says runs (after a restart of ternd). */
void run_reconcile(struct ternd *t);
/* The thread that notices VMs ending. */
void *run_watch_thread(void *arg);

/* migrate_out.c: POST /vms/NAME/migrate (docs/ternd.md), under the VM's op lock. 0 with
 * *report (the migration's numbers), or -errno with err. */
int migrate_out(struct ternd *t, struct vm_entry *e, const char *body, struct json_object **report,
		char *err, size_t n);

/* migrate_in.c: the destination's side. POST /vms/NAME/incoming: *out the VM's summary. */
int migrate_in_prepare(struct ternd *t, const char *name, const char *body,
		       struct json_object **out, char *err, size_t n);
/* POST /vms/NAME/incoming/stream: 0 when the answer (*out) is to turn the connection into
 * the stream's tunnel (server_tunnel_after_reply is called). */
int migrate_in_stream(struct ternd *t, const char *name, const char *body, struct json_object **out,
		      char *err, size_t n);
/* Follows a VM that is migrating in until it runs here or ends (a thread of its own). */
void migrate_in_follow(struct ternd *t, struct vm_entry *e);
/* Its tern-vmm ended while migrating in (run.c, after recording it): the definition goes
 * too when it was made for the migration. */
void migrate_in_ended(struct ternd *t, struct vm_entry *e);

#define API_TIMEOUT_MS 10000
#define SAVE_TIMEOUT_MS 600000 /* writing guest memory: minutes for big guests */

/* The VM must be in state a (or b): else -EBUSY naming the state it is in. */
int ops_need_state(struct ternd *t, struct vm_entry *e, const char *a, const char *b,
		   const char *op, char *err, size_t n);
/* One request to the VM's tern-vmm that must answer 200 or 204. */
int ops_vmm_call(struct ternd *t, struct vm_entry *e, const char *method, const char *path,
		 const char *body, int timeout_ms, char *err, size_t n);
/* The same with open files sent along (PUT /files: vmm_request_fds). */
int ops_vmm_call_fds(struct ternd *t, struct vm_entry *e, const char *method, const char *path,
		     const char *body, const int *fds, unsigned int nfds, int timeout_ms, char *err,
		     size_t n);

/* blockresize.c: body {"disk": I or "ID", "size": BYTES}; under the entry's op lock. */
int op_blockresize(struct ternd *t, struct vm_entry *e, const char *body, char *err, size_t n);

/* ops.c: one operation each, under the entry's op lock; 0 or -errno with err. */
int ops_do(struct ternd *t, struct vm_entry *e, const char *op, const char *body, char *err,
	   size_t n);

#endif
