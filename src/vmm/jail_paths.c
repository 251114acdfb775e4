/*
 * What a jailed tern-vmm needs in its jail (src/jail/jail.h), read from its configuration:
 * the files it opens, the directories it makes sockets and files in, the devices, the fds
 * it was handed, and tern-vmm itself with its libraries.
 */
#include "vmm/jail_paths.h"
#include "backend/disk_chain.h"
#include "backend/qcow2.h"
#include "core/util.h"
#include "vmm/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int keep_fd(struct jail_entries *s, int fd, char *err, size_t n)
{
	if (s->nkeep == JAIL_MAX_KEEP_FDS)
		return fail_msg(err, n, -E2BIG, "more than %d fds to keep", JAIL_MAX_KEEP_FDS);
	s->keep[s->nkeep++] = fd;
	return 0;
}

/* The files below a disk (an overlay's base, a qcow2's backing chain) are read too. */
static int add_chain(struct jail_entries *s, const struct disk_config *d, char *err, size_t n)
{
	char(*files)[DISK_CHAIN_PATH_MAX];
	int r = 0, k = disk_chain_list(d->path, d->format, &files);

	if (k < 0)
		return fail_msg(err, n, k, "out of memory");
	for (int i = 0; !r && i < k; i++)
		r = jail_add(s, files[i], JAIL_READ, err, n);
	free(files);
	return r;
}

static int add_disks(const struct vmm_config *c, struct jail_entries *s, char *err, size_t n)
{
	int r = 0;

	for (unsigned int i = 0; !r && i < c->ndisks; i++) {
		const struct disk_config *d = &c->disks[i];
		r = jail_add(s, d->path, d->readonly ? JAIL_READ : JAIL_WRITE, err, n);
		if (!r && d->format != DISK_FORMAT_RAW)
			r = add_chain(s, d, err, n);
	}
	return r;
}

static int add_net(const struct vmm_config *c, struct jail_entries *s, char *err, size_t n)
{
	bool tun = false;
	int r = 0;

	for (unsigned int i = 0; !r && i < c->nnets; i++) {
		if (c->nets[i].kind == NET_TAP)
			tun = true;
		else if (c->nets[i].kind == NET_TAP_FD)
			r = keep_fd(s, c->nets[i].tap_fd, err, n);
	}
	if (!r && tun)
		r = jail_add(s, "/dev/net/tun", JAIL_DEVICE, err, n);
	return r;
}

static int add_incoming(const char *uri, struct jail_entries *s, char *err, size_t n)
{
	struct mig_uri u;
	char why[200];

	if (mig_uri_parse(uri, &u, why, sizeof(why)))
		return 0; /* parsed before: cannot happen */
	int r = 0;

	/* Post-copy's userfaultfd, for a process without CAP_SYS_PTRACE (migrate_postcopy.c). */
	if (access("/dev/userfaultfd", F_OK) == 0)
		r = jail_add(s, "/dev/userfaultfd", JAIL_DEVICE, err, n);
	if (r)
		return r;
	if (u.kind == MIG_FD)
		return keep_fd(s, u.fd, err, n);
	if (u.kind == MIG_UNIX)
		return jail_add_dir_of(s, u.path, err, n);
	return 0;
}

int jail_paths_collect(const struct vmm_config *c, struct jail_entries *s, char *err, size_t n)
{
	const char *read_files[] = { c->kernel, c->initrd, c->config_file, c->restore_state,
				     c->restore_mem };
	const char *dirs_of[] = { c->api_sock, c->status_file,
				  c->vsock.enabled ? c->vsock.path : NULL };
	int r = 0;

	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; !r && i < ARRAY_SIZE(read_files); i++)
		if (read_files[i])
			r = jail_add(s, read_files[i], JAIL_READ, err, n);
	for (unsigned int i = 0; !r && i < ARRAY_SIZE(dirs_of); i++)
		if (dirs_of[i])
			r = jail_add_dir_of(s, dirs_of[i], err, n);
	/* A directory to write in, or a file (an image given through the API later). */
	for (unsigned int i = 0; !r && i < c->jail.nbinds; i++) {
		struct stat st;
		bool file = !stat(c->jail.binds[i], &st) && !S_ISDIR(st.st_mode);
		r = jail_add(s, c->jail.binds[i], file ? JAIL_WRITE : JAIL_DIR, err, n);
	}
	if (!r)
		r = add_disks(c, s, err, n);
	if (!r)
		r = add_net(c, s, err, n);
	if (!r && c->incoming)
		r = add_incoming(c->incoming, s, err, n);
	/* Configured through its API later, it may become a migration's destination too. */
	if (!r && !c->incoming && !c->kernel && !c->restore_state &&
	    access("/dev/userfaultfd", F_OK) == 0)
		r = jail_add(s, "/dev/userfaultfd", JAIL_DEVICE, err, n);
	if (!r)
		r = jail_add(s, c->kvm_dev, JAIL_DEVICE, err, n);
	if (!r)
		r = jail_add(s, "/dev/urandom", JAIL_DEVICE, err, n);
	if (!r)
		r = jail_add(s, "/dev/null", JAIL_DEVICE, err, n);
	/* A host whose KVM is the kvm_pvm software backend is told by this directory. */
	if (!r && access("/sys/module/kvm_pvm", F_OK) == 0)
		r = jail_add(s, "/sys/module/kvm_pvm", JAIL_READ, err, n);
	if (!r)
		r = jail_add_self(s, err, n);
	if (r)
		jail_entries_free(s);
	return r;
}
