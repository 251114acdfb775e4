/* tern-vmm's configuration, as parsed from the command line. */
#ifndef TERN_VMM_CONFIG_H
#define TERN_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"
#include "backend/disk.h"
#include "jail/jail.h"
#include "jail/seccomp.h"
#include "vmm/net_opts.h"
#include "vmm/vsock_opts.h"

enum virtio_transport { TRANSPORT_PCI, TRANSPORT_MMIO };
enum disk_cache { DISK_CACHE_WRITEBACK, DISK_CACHE_NONE };

#define VMM_MAX_DISKS 8
#define DISK_ID_MAX 20 /* VIRTIO_BLK_ID_BYTES */
#define DISK_PARTUUID_MAX 64

struct disk_config {
	char *path;
	bool readonly;
	enum disk_cache cache;
	enum disk_engine engine;
	enum disk_format format; /* auto (the default), raw, qcow2, or a tern overlay */
	uint64_t l2_cache;	 /* qcow2: bytes of L2 tables kept in memory; 0: the default */
	char id[DISK_ID_MAX + 1];
	/* API only (Firecracker's is_root_device, partuuid): what goes on the command line */
	bool root;
	/* The --disk value this drive came from (inside argv), NULL for the API's drives. */
	const char *arg;
	/* Moved onto another image while it ran (disk_swap.c): path and format differ from arg. */
	bool swapped;
	char partuuid[DISK_PARTUUID_MAX + 1];
};

/*
 * A drive of a saved machine put on another image: --restore-disk, and a migration's
 * disk_paths (struct restore_overrides).
 */
struct restore_disk {
	char drive_id[DISK_ID_MAX + 8]; /* its id, or diskN for one without */
	char *path;
	enum disk_format format; /* has_format: else the saved format stays */
	bool has_format;
};

enum entry_choice { ENTRY_AUTO, ENTRY_LINUX64, ENTRY_PVH };
enum on_reboot { ON_REBOOT_EXIT, ON_REBOOT_RESTART };
/*
 * What backs guest RAM (--huge-pages; machine-config huge_pages None, Transparent, 2M,
 * whose names res_machine.c and res_snapshot.c index by this order).
 */
enum huge_pages { HUGE_PAGES_NONE, HUGE_PAGES_TRANSPARENT, HUGE_PAGES_2M };

#define VMM_MIN_MEM_MIB 16
#define VMM_MAX_MEM_MIB (1024ULL * 1024) /* 1 TiB */
#define VMM_DEFAULT_MEM_MIB 128
#define VMM_MAX_CPUS 254 /* xAPIC IDs 0..253; the IOAPIC takes the next id */

struct vmm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned int cpus;
	uint64_t mem_mib;
	bool template_set;
	enum cpu_template cpu_template;
	enum entry_choice entry;
	bool no_host_decompress; /* --no-host-decompress: the bzImage decompresses itself */
	enum on_reboot on_reboot;
	bool debug_exit;
	enum seccomp_mode seccomp; /* --seccomp: kill (0, the default), log, off */
	struct jail_config jail;   /* --jail, --jail-bind */
	enum virtio_transport transport;
	bool mmio_cmdline; /* also announce virtio-mmio devices with virtio_mmio.device= */
	bool rng;
	unsigned int ndisks;
	struct disk_config disks[VMM_MAX_DISKS];
	unsigned int nnets;
	struct net_config nets[VMM_MAX_NETS]; /* --net, in order */
	struct vsock_config vsock;	      /* --vsock: enabled, cid, path */
	const char *kvm_dev;
	int log_level;
	/* Control API */
	const char *api_sock;	    /* --api-sock */
	const char *config_file;    /* --config-file */
	bool no_api;		    /* --no-api */
	const char *id;		    /* --id: the instance id of GET / */
	bool vm_flags;		    /* some VM option was given on the command line */
	bool track_dirty;	    /* KVM dirty logging, for diff snapshots */
	enum huge_pages huge_pages; /* transparent: advised MADV_HUGEPAGE; 2M: hugetlbfs */
	bool huge_pages_given;	    /* --huge-pages was on the command line */
	/* Restore (--restore): a snapshot's state and memory files */
	const char *restore_state, *restore_mem;
	bool restore_paused; /* --restore-paused: do not resume after loading */
	/* --restore-disk: a drive of the snapshot restored on another image */
	unsigned int nrestore_disks;
	struct restore_disk restore_disks[VMM_MAX_DISKS];
	bool clone; /* --clone: a new identity for the restored VM */
	const char *describe_snapshot;
	const char *snapshot_to;    /* --snapshot-to: a client of a running tern-vmm */
	const char *create_overlay; /* --create-overlay OVERLAY,base=IMAGE */
	const char *status_file;    /* --status-file: how the run ended, for tern-monitor */
	const char *incoming;	    /* --incoming URI: a live migration's destination */
	bool disks_unlocked; /* internal: raw disks open unlocked (a migration's destination) */
};

/*
 * Parses "path=FILE[,readonly=on|off][,cache=none|writeback][,id=NAME][,aio=io_uring|threads]
 * [,format=raw|overlay]". On error
 * returns -EINVAL with a message naming the field and what it accepts in err.
 */
int config_parse_disk(const char *spec, struct disk_config *d, char *err, size_t errlen);
/*
 * The index of the drive named id: the drive with that id, else (a drive given without
 * one) diskN, N its place; the names the API, a migration's disk_paths and --restore-disk
 * use. -1 when there is none.
 */
int config_drive_index(const struct vmm_config *c, const char *id);
/* --restore-disk id=ID,path=PATH[,format=F]. 0, or -EINVAL with a message naming the key. */
int config_parse_restore_disk(const char *spec, struct restore_disk *d, char *err, size_t errlen);
/* --create-overlay "OVERLAY,base=IMAGE": makes the overlay; 0, or -errno and err. */
int config_create_overlay(const char *spec, char *err, size_t errlen);

/* Parses argv; bad input exits with status 2 and a line naming the option and the range. */
void config_parse(struct vmm_config *c, int argc, char **argv);

#endif
