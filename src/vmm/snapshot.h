/*
 * Snapshots of a paused VM (state file + memory file) and restoring them into a fresh
 * tern-vmm. The state file is src/vmstate's format; the memory file is
 * src/vmstate/mem_file.h's. Both are written under temporary names, synced and renamed, so
 * a crash or a full disk mid-way leaves the previous snapshot as it was.
 */
#ifndef TERN_VMM_SNAPSHOT_H
#define TERN_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vmm/config.h"
#include "vmstate/mem_file.h"
#include "vmstate/vmstate.h"

struct vm;
struct loop;

/* The VM must be paused. 0, or -errno with err (nothing replaced then). */
int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
		       char *err, size_t errlen);

/*
 * Waits for every disk request in flight and flushes each writable disk (before a snapshot
 * or a migration's switchover). 0 or -errno + err.
 */
int snapshot_quiesce_disks(struct vm *vm, char *err, size_t errlen);
/*
 * ORs into out (one bit per 4 KiB page) KVM's log of the pages the guest wrote since the
 * last call (the log is cleared as it is read) and the pages tern's devices were handed
 * (guest_mem's bits, cleared too). The VM's RAM must be logging (track_dirty, or a
 * migration). 0 or -errno.
 */
int snapshot_collect_dirty(struct vm *vm, uint8_t *out);
/* Writes the whole state file of the paused VM to fd, its memory described by mem. */
int snapshot_write_state(struct vm *vm, int fd, const struct mem_file_info *mem, char *err,
			 size_t errlen);

/* What a restore is asked to change in the saved configuration. */
struct restore_overrides {
	unsigned int nnets;
	struct {
		char iface_id[NET_ID_MAX + 1];
		char host_dev_name[IFNAMSIZ];
	} nets[VMM_MAX_NETS];
	const char *vsock_uds; /* NULL: as saved */
	/*
	 * Disks at other paths (drive_id, or diskN for no id): a migration's destination
	 * (disk_paths), a restore's --restore-disk (which may give the format too).
	 */
	unsigned int ndisks;
	struct restore_disk disks[VMM_MAX_DISKS];
	bool clone; /* new MACs, vsock CID and socket path, disk overlays, VM generation */
	bool track_dirty;
	/* PUT /snapshot/load huge_pages other than "Snapshot": replaces --huge-pages */
	bool huge_pages_set;
	enum huge_pages huge_pages;
};

/* A parsed state file and the configuration it describes. */
struct snapshot_load {
	uint8_t *buf; /* the state file */
	struct vmstate_file file;
	struct vmm_config cfg;
	uint8_t mem_id[16];
	bool built; /* snapshot_load_apply built the VM (a failure before it harmed nothing) */
};

/*
 * Reads and checks the state file (and that mem_path is its memory file) and fills l->cfg
 * from it, with base (the command line's
 * non-VM settings: log level, KVM device, ...) and the overrides applied. Nothing is built.
 * 0 or -EINVAL + err.
 */
int snapshot_load_prepare(struct snapshot_load *l, const char *state_path, const char *mem_path,
			  const struct vmm_config *base, const struct restore_overrides *o,
			  char *err, size_t errlen);
/* Applies a restore's network, vsock and disk overrides to cfg. 0 or -EINVAL + err. */
int snapshot_apply_overrides(struct vmm_config *cfg, const struct restore_overrides *o, char *err,
			     size_t errlen);
/*
 * Loads every saved state of f (clock, irqchip, PIT, vCPUs, devices) into vm, built from
 * the same machine. 0 or -errno + err.
 */
/* catch_up_clock: a migration (clock_state_restore). */
int snapshot_restore_state(const struct vmstate_file *f, struct vm *vm, bool catch_up_clock,
			   char *err, size_t errlen);
/* Restored devices pick up where they were once the vCPUs run again. */
void snapshot_resume_devices(struct vm *vm);
/* --describe-snapshot: the state file's sections and the machine it describes. */
int snapshot_describe(const char *path, FILE *out, char *err, size_t errlen);
/*
 * Builds the VM from l->cfg with RAM mapped from mem_path (or, asked for huge pages, made
 * as a boot's and filled from it) and loads every saved state into it; the vCPUs are
 * created but not started. Bad files end tern-vmm with status 2 (it has
 * nothing else running). 0 or -EINVAL + err for what is caught before KVM is touched.
 */
int snapshot_load_apply(struct snapshot_load *l, struct vm *vm, struct loop *loop,
			const char *mem_path, char *err, size_t errlen);
void snapshot_load_free(struct snapshot_load *l);

#endif
