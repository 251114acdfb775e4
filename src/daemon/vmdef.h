/*
 * VM definitions (docs/ternd.md): the JSON document a user defines, checked field by
 * field, stored as canonical JSON, and turned into tern-vmm's configuration.
 */
#ifndef TERN_DAEMON_VMDEF_H
#define TERN_DAEMON_VMDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/disk.h"

#define VMDEF_NAME_MAX 63
#define VMDEF_UUID_LEN 36
#define VMDEF_MAX_DISKS 16
#define VMDEF_MAX_NICS 8
#define VMDEF_MAX_FWDS 8
#define VMDEF_CMDLINE_MAX 4096
#define VMDEF_PATH_MAX 4096
#define VMDEF_MIN_MIB 16
#define VMDEF_MAX_MIB 1048576
#define VMDEF_MAX_VCPUS 254

enum vmdef_nic_type { VMDEF_NIC_USER, VMDEF_NIC_BRIDGE };
enum vmdef_action { VMDEF_DESTROY, VMDEF_RESTART };
/* What backs guest RAM: tern-vmm's --huge-pages, by the same names (vmdef_huge_names). */
enum vmdef_huge { VMDEF_HUGE_TRANSPARENT, VMDEF_HUGE_NONE, VMDEF_HUGE_2M };
extern const char *const vmdef_huge_names[];

struct vmdef_disk {
	char *path;
	char *id; /* NULL: tern-vmm's default serial */
	bool readonly;
	bool cache_none;
	/* "format": auto (the default; qcow2 or raw), raw, qcow2 or overlay (docs/overlay.md) */
	enum disk_format format;
};

struct vmdef_nic {
	enum vmdef_nic_type type;
	char *bridge; /* VMDEF_NIC_BRIDGE only */
	char mac[18]; /* always set: generated when the definition gave none */
	unsigned int nfwds;
	char *fwds[VMDEF_MAX_FWDS]; /* "tcp::HOSTPORT-:GUESTPORT" */
};

/*
 * cgroup v2 limits of the VM's processes (tern-vmm and its monitor): 0 means the default,
 * written out as 0 so that a later change of vcpus or memory_mib moves it along.
 */
/* io.max for one disk (the block device under its image); 0: no cap. */
struct vmdef_disk_io {
	unsigned int read_iops, write_iops;   /* 1..1000000 */
	unsigned int read_mib_s, write_mib_s; /* 1..100000 */
};
#define VMDEF_IOPS_MAX 1000000
#define VMDEF_IO_MIB_S_MAX 100000

struct vmdef_limits {
	unsigned int cpu_max_percent; /* cpu.max: % of one CPU, 1..100 * vcpus; 0: no cap */
	unsigned int cpu_weight;      /* cpu.weight 1..10000; 0: 100 */
	uint64_t memory_max_mib;      /* memory.max: >= memory_mib + 64; 0: no cap (below) */
	unsigned int pids_max;	      /* pids.max 16..65536; 0: 512 */
	unsigned int ndisks;	      /* "disks": entries for disks[0..ndisks-1] */
	struct vmdef_disk_io disks[VMDEF_MAX_DISKS];
};

/*
 * The least memory.max above guest RAM. There is no cap by default (libvirt sets no
 * hard limit either): a snapshot or a managed save written to a tmpfs state directory is
 * charged to the VM's cgroup, and a cap at RAM plus overhead would kill the VM mid-save.
 */
#define VMDEF_MEMORY_MARGIN_MIB 64
#define VMDEF_PIDS_DEFAULT 512

struct json_object;

struct vmdef {
	char name[VMDEF_NAME_MAX + 1];
	char uuid[VMDEF_UUID_LEN + 1];
	unsigned int vcpus;
	uint64_t memory_mib;
	enum vmdef_huge huge_pages;
	char *kernel, *initrd, *cmdline;
	unsigned int ndisks, nnics;
	struct vmdef_disk disks[VMDEF_MAX_DISKS];
	struct vmdef_nic nics[VMDEF_MAX_NICS];
	bool has_vsock, rng, autostart;
	uint64_t vsock_cid;
	enum vmdef_action on_poweroff, on_reboot, on_crash;
	struct vmdef_limits limits;
};

/*
 * Parses and checks a definition. Missing uuid and MACs are generated. 0, or -EINVAL
 * with err naming the field and what it accepts. check_files: the kernel, initrd and
 * disks must exist now (a define does; reading one back from the database does not).
 */
int vmdef_parse(const char *json, size_t len, struct vmdef *d, bool check_files, char *err,
		size_t errlen);
void vmdef_free(struct vmdef *d);
/* The canonical JSON of d (every field, defaults written out); malloc'd. */
char *vmdef_to_json(const struct vmdef *d);
/*
 * tern-vmm's command-line options for d (they say more than its JSON configuration:
 * hostfwd, cache=none), the vsock socket at vsock_uds; taps[i] names the TAP made for
 * bridge NIC i (taps may be NULL when there is none). A NULL-terminated malloc'd array
 * of malloc'd strings (vmdef_free_args), or NULL when out of memory.
 */
char **vmdef_vmm_args(const struct vmdef *d, const char *vsock_uds, char *const *taps);
void vmdef_free_args(char **args);

/*
 * o's "limits" object (absent: all defaults) into l, checked against d's vcpus and
 * memory_mib. 0, or -EINVAL with err naming "limits.FIELD" and what it accepts.
 */
int vmdef_limits_parse(struct json_object *o, const struct vmdef *d, struct vmdef_limits *l,
		       char *err, size_t n);
/* The values the cgroup gets (defaults filled in; memory: 0 for no cap). */
uint64_t vmdef_memory_max_mib(const struct vmdef *d);
unsigned int vmdef_cpu_weight(const struct vmdef *d);
unsigned int vmdef_pids_max(const struct vmdef *d);

/* Syntax checks shared with renames and clones. */
bool vmdef_name_ok(const char *name);
bool vmdef_uuid_ok(const char *uuid);
/* o's "name" member, checked (vmdef_name_ok) into out; 0 or -EINVAL naming the field. */
int vmdef_name_field(struct json_object *o, char out[VMDEF_NAME_MAX + 1], char *err, size_t n);
/*
 * tern-vmm's name for disk i of d (its id, or diskI without one) into out: true, or false
 * when the id has a character an API path or an option cannot carry (letters, digits,
 * '.', '_', '-' only).
 */
bool vmdef_drive_id(const struct vmdef *d, unsigned int i, char *out, size_t n);
/* A random RFC 4122 version-4 UUID / locally administered unicast MAC. */
void vmdef_new_uuid(char out[VMDEF_UUID_LEN + 1]);
void vmdef_new_mac(char out[18]);

#endif
