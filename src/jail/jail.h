/*
 * The jail (tern-vmm --jail, docs/security.md): before anything else opens, tern-vmm
 * moves into new mount, PID, IPC and UTS namespaces (and a given network namespace), whose
 * root is an empty tmpfs holding only what this VM needs, bind-mounted at the paths it was
 * given; then it becomes a per-VM uid and gid with no capabilities, no_new_privs, rlimits,
 * no inherited fds beyond those it was told to keep, and Landlock rules on the same paths.
 *
 * The process that was started stays outside as a small supervisor (root, in the host's
 * namespaces, unreachable from the guest): it forwards signals to the jailed tern-vmm and
 * ends as it did, so whoever started tern-vmm sees one process and one exit status.
 */
#ifndef TERN_JAIL_JAIL_H
#define TERN_JAIL_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Room for every disk of a VM (VMM_MAX_DISKS) with a backing chain of the longest length
 * (QCOW2_CHAIN_MAX) each, as a migration's jailed destination binds them all.
 */
#define JAIL_MAX_BINDS 160
#define JAIL_MAX_ENTRIES 256
#define JAIL_MAX_KEEP_FDS 16
#define JAIL_DEFAULT_NOFILE 4096
#define JAIL_DEFAULT_NPROC 1024
#define JAIL_DIR_BASE "/run/tern/jail"
/*
 * The jailed tern-vmm is its PID namespace's init, which ignores the signals it raises at
 * itself: stopped by its seccomp list, it exits with this status instead, and the
 * supervisor ends by SIGSYS for it. (A --debug-exit guest could write 159 too: test only.)
 */
#define JAIL_EXIT_SIGSYS (128 + 31)

struct jail_config {
	bool on;
	uid_t uid;
	gid_t gid;
	char netns[256];	/* a network namespace to join (/run/netns/NAME), or "" */
	uint64_t nofile, nproc; /* RLIMIT_NOFILE, RLIMIT_NPROC */
	uint64_t fsize_mib;	/* RLIMIT_FSIZE in MiB; 0: no limit */
	const char *hostname;	/* the UTS namespace's name (the VM's id) */
	int supervisor_filter;	/* 0: none (--seccomp off); else libseccomp's action for the rest */
	unsigned int nbinds;	/* --jail-bind: directories the VM may write, as given */
	const char *binds[JAIL_MAX_BINDS];
};

/* How one path appears in the jail. */
enum jail_kind {
	JAIL_READ,   /* a file the VM reads: kernel, initrd, snapshot, read-only disk */
	JAIL_EXEC,   /* tern-vmm itself and its libraries (read, map, re-execute) */
	JAIL_WRITE,  /* a file the VM reads and writes: a disk */
	JAIL_DIR,    /* a directory the VM writes in: its sockets, status file, --jail-bind */
	JAIL_DEVICE, /* a character device, made afresh in the jail and given to the uid */
};

struct jail_entry {
	char *path; /* absolute, as the VM will open it */
	enum jail_kind kind;
};

/* A set of entries being collected (jail_add); jail_entries_free frees the paths. */
struct jail_entries {
	unsigned int n;
	struct jail_entry e[JAIL_MAX_ENTRIES];
	unsigned int nkeep;
	int keep[JAIL_MAX_KEEP_FDS]; /* inherited fds the VM uses (tap-fd=, fd:N) */
};

/*
 * Parses --jail's "uid=N,gid=N[,netns=PATH][,nofile=N][,nproc=N][,fsize_mib=N]". On error
 * -EINVAL and a message naming the key and what it accepts.
 */
int jail_parse(const char *spec, struct jail_config *c, char *err, size_t n);

/*
 * Adds path (relative ones made absolute from the working directory) as kind. A path
 * already added keeps the wider of the two kinds. 0 or -errno with err set.
 */
int jail_add(struct jail_entries *s, const char *path, enum jail_kind kind, char *err, size_t n);
/* Adds the directory holding path (for a socket or a file the VM creates there). */
int jail_add_dir_of(struct jail_entries *s, const char *path, char *err, size_t n);
/* Adds the executable and every shared library mapped into this process. */
int jail_add_self(struct jail_entries *s, char *err, size_t n);
void jail_entries_free(struct jail_entries *s);

/*
 * Enters the jail; call while the process has one thread. Returns 0 in the jailed process
 * (the supervisor never returns: it exits as the jailed process did). -errno and err when
 * the jail cannot be built (nothing of it is left behind).
 */
int jail_enter(const struct jail_config *c, const struct jail_entries *s, char *err, size_t n);

/* Whether this process already runs jailed (an --on-reboot restart of a jailed tern-vmm). */
bool jail_inherited(const struct jail_config *c);

#endif
