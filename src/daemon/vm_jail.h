/* ternd --vm-uids: each VM jailed under a uid of its own (vm_jail.c). */
#ifndef TERN_DAEMON_VM_JAIL_H
#define TERN_DAEMON_VM_JAIL_H

#include "daemon/ternd.h"

/* At ternd's start: the VM's uid from its directory, and whether its run is jailed. */
void vmjail_load(struct ternd *t, struct vm_entry *e);
/* Whether uid is in ternd's --vm-uids range. */
bool vmjail_in_range(const struct ternd *t, uid_t uid);
/*
 * Before a start (under e's op lock): DIR/vmm made, and, with --vm-uids, the VM's uid
 * chosen (e->jail_uid, e->jailed), DIR/vmm and the restore files given to it, its kernel,
 * initrd and read-only disks checked readable by it, its writable disks handed over.
 * 0, or -errno with err (nothing left handed over).
 */
int vmjail_prepare(struct ternd *t, struct vm_entry *e, const char *restore_state,
		   const char *restore_mem, bool incoming, char *err, size_t n);
/* Gives the VM's disks back to their owners after its run (idempotent); moved: it runs on
 * at a migration's destination, whose ternd gives them back in its turn. */
void vmjail_release(struct ternd *t, struct vm_entry *e, bool moved);
/* The records of the disks this run holds ({"path", "uid", "gid", "mode"}[]) and the uid
 * they were given to (0: none): what a migration's source sends along. */
struct json_object *vmjail_records(struct ternd *t, struct vm_entry *e, uid_t *uid);
/* A migration arrived: the records become the source's (e->mig_owners), so that this
 * host gives the disks back to who owned them before the first run. */
void vmjail_arrived(struct ternd *t, struct vm_entry *e);
/*
 * Who owned path (one of e's writable disks) before this run lent it to the VM's uid: its
 * record in the owners file. false when there is none.
 */
bool vmjail_owner(struct ternd *t, struct vm_entry *e, const char *path, uid_t *uid, gid_t *gid,
		  mode_t *mode);
/* At ternd's start: what shut-off VMs still hold (ternd died while they ran) goes back. */
void vmjail_release_stale(struct ternd *t);
/* The tern-vmm that runs the VM: pid itself, or for a jailed VM the child of pid (its
 * jail's supervisor); pid when there is none (yet). */
pid_t vmjail_vmm_pid(const struct vm_entry *e, pid_t pid);
/*
 * Moves DIR/vmm/name, a file tern-vmm wrote (a save, a snapshot), to the path to in
 * ternd's own directories: only a regular file, then root's. 0 or -errno with err.
 */
int vmjail_take_file(struct ternd *t, struct vm_entry *e, const char *name, const char *to,
		     char *err, size_t n);

#endif
