/* Dropping every privilege the jailed tern-vmm does not need (jail_creds.h). */
#include "jail/jail_creds.h"
#include "jail/sanitizer.h"
#include "core/util.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int set_limit(int what, const char *name, uint64_t v, char *err, size_t n)
{
	struct rlimit rl = { .rlim_cur = v, .rlim_max = v };

	if (setrlimit(what, &rl))
		return fail_msg(err, n, -errno, "cannot set %s to %llu: %s", name,
				(unsigned long long)v, strerror(errno));
	return 0;
}

static int limits(const struct jail_config *c, char *err, size_t n)
{
	int r;

	if ((r = set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", c->nofile, err, n)) ||
	    (r = set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", c->nproc, err, n)) ||
	    /* A core file would hold the guest's memory. */
	    (r = set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0, err, n)))
		return r;
	if (c->fsize_mib)
		return set_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", c->fsize_mib * MIB, err, n);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

/* Every fd but stdin, stdout, stderr, the ones the VM was given, and keep_fd. */
static int close_inherited(const struct jail_entries *s, int keep_fd, char *err, size_t n)
{
	int keep[JAIL_MAX_KEEP_FDS + 1], nk = 0;
	unsigned int from = 3;

	for (unsigned int i = 0; i < s->nkeep; i++)
		keep[nk++] = s->keep[i];
	keep[nk++] = keep_fd;
	qsort(keep, nk, sizeof(keep[0]), cmp_int);
	for (int i = 0; i <= nk; i++) {
		unsigned int to = i < nk ? (unsigned int)keep[i] : ~0U;
		if (i < nk && keep[i] < 3)
			continue;
		if (to > from && close_range(from, to - 1, 0))
			return fail_msg(err, n, -errno, "cannot close inherited fds: %s",
					strerror(errno));
		if (i < nk)
			from = (unsigned int)keep[i] + 1;
	}
	return 0;
}

static int drop_caps(const struct jail_config *c, char *err, size_t n)
{
	/* No way back to any capability, by setuid root, file capabilities or ambient ones. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
					     SECBIT_NO_SETUID_FIXUP_LOCKED |
					     SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
					     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED))
		return fail_msg(err, n, -errno, "cannot lock the securebits: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return fail_msg(err, n, -errno, "cannot clear the ambient capabilities: %s",
				strerror(errno));
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap))
			return fail_msg(err, n, -errno, "cannot drop capability %d: %s", cap,
					strerror(errno));
	gid_t g = c->gid;
	if (setgroups(1, &g) || setresgid(c->gid, c->gid, c->gid))
		return fail_msg(err, n, -errno, "cannot become gid %u: %s", (unsigned int)c->gid,
				strerror(errno));
	if (setresuid(c->uid, c->uid, c->uid))
		return fail_msg(err, n, -errno, "cannot become uid %u: %s", (unsigned int)c->uid,
				strerror(errno));
	/* setresuid cleared effective and permitted; inheritable goes here too. */
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };
	if (syscall(SYS_capset, &h, d))
		return fail_msg(err, n, -errno, "cannot clear the capabilities: %s",
				strerror(errno));
	return 0;
}

int jail_drop_privileges(const struct jail_config *c, const struct jail_entries *s, int keep_fd,
			 char *err, size_t n)
{
	int r;

	if ((r = limits(c, err, n)) || (r = close_inherited(s, keep_fd, err, n)) ||
	    (r = drop_caps(c, err, n)))
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return fail_msg(err, n, -errno, "cannot set no_new_privs: %s", strerror(errno));
#ifdef TERN_SANITIZER
	/* LeakSanitizer stops the threads with ptrace, which a changed uid made undumpable. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}
