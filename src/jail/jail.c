/*
 * Building the jail and entering it (jail.h): the supervisor that stays outside, the
 * namespaces, the root of bind mounts, then the privileges dropped (jail_creds.c) and
 * Landlock (landlock.c).
 */
#include "jail/jail.h"
#include "jail/jail_creds.h"
#include "jail/landlock.h"
#include "jail/sanitizer.h"
#include "jail/seccomp_lists.h"
#include "jail/test_fault.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where each jail's root is mounted, each in its own mount namespace: one empty directory. */
#define ROOT JAIL_DIR_BASE
#define JAILED_ENV "TERN_JAILED"

static int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Whether path lies in (or is) the directory dir. */
static bool beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

/* Shorter paths first: a directory's bind goes before what lies in it. */
static int by_depth(const void *a, const void *b)
{
	const struct jail_entry *x = *(const struct jail_entry *const *)a;
	const struct jail_entry *y = *(const struct jail_entry *const *)b;
	size_t lx = strlen(x->path), ly = strlen(y->path);

	return lx < ly ? -1 : lx > ly;
}

/* One entry into the jail's root: a device made, or the file or directory bind-mounted. */
static int place(const struct jail_config *c, const struct jail_entry *e, char *err, size_t n)
{
	char dst[PATH_MAX], parent[PATH_MAX];
	struct stat st;

	if (snprintf(dst, sizeof(dst), "%s%s", ROOT, e->path) >= (int)sizeof(dst))
		return fail_msg(err, n, -ENAMETOOLONG, "'%s': path too long", e->path);
	if (stat(e->path, &st))
		return 0; /* the jailed tern-vmm reports it missing, as it would outside */
	snprintf(parent, sizeof(parent), "%s", dst);
	*strrchr(parent, '/') = 0;
	int r = mkdir_p(parent, 0755);
	if (r)
		return fail_msg(err, n, r, "cannot make '%s' in the jail: %s", e->path,
				strerror(-r));
	if (e->kind == JAIL_DEVICE) {
		if (!S_ISCHR(st.st_mode))
			return fail_msg(err, n, -ENODEV, "'%s' is not a character device", e->path);
		if (mknod(dst, S_IFCHR | 0600, st.st_rdev) || chown(dst, c->uid, c->gid))
			return fail_msg(err, n, -errno,
					"cannot make the device '%s' in the jail: %s", e->path,
					strerror(errno));
		return 0;
	}
	if ((e->kind == JAIL_WRITE || e->kind == JAIL_READ) && S_ISBLK(st.st_mode)) {
		/* A disk on a block device: a node of its own (binds are nodev), the uid's to
		 * write, or root's and readable to read only. */
		bool rw = e->kind == JAIL_WRITE;
		if (mknod(dst, S_IFBLK | (rw ? 0600 : 0444), st.st_rdev) ||
		    (rw && chown(dst, c->uid, c->gid)))
			return fail_msg(err, n, -errno,
					"cannot make the block device '%s' in the jail: %s",
					e->path, strerror(errno));
		return 0;
	}
	if (e->kind == JAIL_DIR && !S_ISDIR(st.st_mode))
		return fail_msg(err, n, -ENOTDIR, "'%s' is not a directory", e->path);
	if (S_ISDIR(st.st_mode) ? mkdir(dst, 0755) && errno != EEXIST :
				  mknod(dst, S_IFREG | 0644, 0) && errno != EEXIST)
		return fail_msg(err, n, -errno, "cannot make '%s' in the jail: %s", e->path,
				strerror(errno));
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
	if (e->kind == JAIL_READ || e->kind == JAIL_EXEC)
		flags |= MS_RDONLY;
	if (e->kind != JAIL_EXEC)
		flags |= MS_NOEXEC;
	if (mount(e->path, dst, NULL, MS_BIND, NULL) || mount(NULL, dst, NULL, flags, NULL))
		return fail_msg(err, n, -errno, "cannot bind '%s' into the jail: %s", e->path,
				strerror(errno));
	return 0;
}

/* The jail's root: a small tmpfs with the entries, its own /proc, then made the root. */
static int build_root(const struct jail_config *c, const struct jail_entries *s, char *err,
		      size_t n)
{
	const struct jail_entry *order[JAIL_MAX_ENTRIES];
	char cwd[PATH_MAX], where[PATH_MAX + sizeof(ROOT)];
	int r;

	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return fail_msg(err, n, -errno, "cannot make the mounts private: %s",
				strerror(errno));
	if (mount("tern-jail", ROOT, "tmpfs", MS_NOSUID, "mode=0755,size=1m,nr_inodes=4096"))
		return fail_msg(err, n, -errno, "cannot mount the jail's root on %s: %s", ROOT,
				strerror(errno));
	uint64_t tp = monotonic_ns();
	for (unsigned int i = 0; i < s->n; i++)
		order[i] = &s->e[i];
	qsort(order, s->n, sizeof(order[0]), by_depth);
	for (unsigned int i = 0; i < s->n; i++) {
		bool inside = false; /* in a directory already bound: seen through it */
		for (unsigned int j = 0; j < i && !inside; j++)
			inside = order[j]->kind == JAIL_DIR &&
				 beneath(order[i]->path, order[j]->path);
		if (!inside && (r = place(c, order[i], err, n)))
			return r;
	}
	uint64_t tb = monotonic_ns();
	log_debug("jail: %u paths placed in %.1f ms", s->n, (tb - tp) / 1e6);
	if ((r = mkdir_p(ROOT "/proc", 0555)) ||
	    mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return fail_msg(err, n, r ? r : -errno, "cannot mount /proc in the jail: %s",
				strerror(r ? -r : errno));
	/* Relative paths keep working: the working directory is there too (perhaps empty). */
	snprintf(where, sizeof(where), "%s%s", ROOT, cwd);
	mkdir_p(where, 0755);
	if (chdir(ROOT) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH))
		return fail_msg(err, n, -errno, "cannot make the jail the root: %s",
				strerror(errno));
	if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL))
		return fail_msg(err, n, -errno, "cannot make the jail's root read-only: %s",
				strerror(errno));
	if (chdir(cwd) && chdir("/"))
		return fail_msg(err, n, -errno, "cannot enter the jail: %s", strerror(errno));
	log_debug("jail: /proc, pivot_root and the old root's unmount %.1f ms",
		  (monotonic_ns() - tb) / 1e6);
	return 0;
}

/* In the child, now PID 1 of its namespace: everything but the supervisor's part. */
static int build(const struct jail_config *c, const struct jail_entries *s, int netns, int report,
		 char *err, size_t n)
{
	uint64_t t0 = monotonic_ns(), t1, t2, t3;
	int r;

	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS))
		return fail_msg(err, n, -errno, "cannot make the namespaces: %s", strerror(errno));
	if (netns >= 0 && setns(netns, CLONE_NEWNET))
		return fail_msg(err, n, -errno, "netns='%s': cannot join it: %s", c->netns,
				strerror(errno));
	if (netns >= 0)
		close(netns);
	if (c->hostname && sethostname(c->hostname, strnlen(c->hostname, 64)))
		return fail_msg(err, n, -errno, "cannot set the jail's host name: %s",
				strerror(errno));
	t1 = monotonic_ns();
	if ((r = build_root(c, s, err, n)))
		return r;
	t2 = monotonic_ns();
	if ((r = jail_drop_privileges(c, s, report, err, n)))
		return r;
	t3 = monotonic_ns();
	/* The new uid cleared it; a supervisor that died meanwhile fails the report below. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	r = landlock_restrict(s, err, n);
	if (r == -EOPNOTSUPP)
		log_warn("jail: this kernel has no Landlock (5.13 or later, and 'landlock' among "
			 "its LSMs): the mount namespace alone keeps the paths");
	else if (r < 0)
		return r;
	else
		log_debug("jail: Landlock ABI %d", r);
	/* Where a jail's start-up goes (bench/isolation compares it with none). */
	log_debug("jail: namespaces %.1f ms, root %.1f ms, privileges %.1f ms, Landlock %.1f ms",
		  (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (monotonic_ns() - t3) / 1e6);
	char val[32];
	snprintf(val, sizeof(val), "%u:%u", (unsigned int)c->uid, (unsigned int)c->gid);
	setenv(JAILED_ENV, val, 1);
	return 0;
}

/*
 * A call outside the supervisor's list: one line naming its number (async-signal-safe, so
 * no name lookup), then death by SIGSYS, as tern-vmm's own threads end (seccomp.c).
 */
static void supervisor_sigsys(int sig, siginfo_t *si, void *ctx)
{
	static const char head[] = "tern-vmm: error: seccomp: the jail's supervisor called "
				   "system call ",
			  tail[] = ", which its list does not allow: stopping\n";
	char line[sizeof(head) + sizeof(tail) + 12], num[12];
	size_t len = sizeof(head) - 1;
	unsigned int v = (unsigned int)si->si_syscall, k = 0;

	(void)ctx;
	memcpy(line, head, len);
	do
		num[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < sizeof(num));
	while (k)
		line[len++] = num[--k];
	memcpy(line + len, tail, sizeof(tail) - 1);
	len += sizeof(tail) - 1;
	if (write(STDERR_FILENO, line, len) < 0) {
		/* It ends all the same. */
	}
	/* Pending until this returns; SA_RESETHAND made the action the default: death. */
	kill(getpid(), sig);
}

/*
 * The supervisor's own allow-list (libseccomp), once the jailed process runs: waiting,
 * forwarding signals and ending are all it does. A failure is logged, not fatal: it reads
 * nothing from the guest. --seccomp kill traps into supervisor_sigsys, so that a refused
 * call is named rather than ending the VM without a word.
 */
static void filter_supervisor(int action)
{
	static const char *const calls[] = {
		"wait4",	   "rt_sigtimedwait", "kill",	    "getpid", "rt_sigaction",
		"rt_sigprocmask",  "prlimit64",	      "exit_group", "exit",   "rt_sigreturn",
		"restart_syscall", "write",
	};
	if (action == (int)SCMP_ACT_KILL_PROCESS) {
		struct sigaction sa = { .sa_sigaction = supervisor_sigsys,
					.sa_flags = SA_SIGINFO | SA_RESETHAND };
		sigemptyset(&sa.sa_mask);
		if (!sigaction(SIGSYS, &sa, NULL))
			action = (int)SCMP_ACT_TRAP;
	}
	scmp_filter_ctx ctx = seccomp_init((uint32_t)action);
	int r = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; !r && i < ARRAY_SIZE(calls); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(calls[i]),
				     0);
#ifdef TERN_SANITIZER
	for (const char *const *c = seccomp_sanitizer_calls(); !r && *c; c++) {
		int nr = seccomp_syscall_resolve_name(*c);
		r = nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	}
#endif
	if (!r)
		r = seccomp_load(ctx);
	if (r)
		log_warn("jail: the supervisor runs without its seccomp filter: %s", strerror(-r));
	seccomp_release(ctx);
}

/*
 * The supervisor: forwards the signals that would end tern-vmm (PID 1 of its namespace
 * ignores those it has no handler for, so they go as SIGKILL, which is what their default
 * action was) and ends as the jailed process did.
 */
static noreturn void supervise(pid_t child, int filter)
{
	static const int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	sigset_t set;
	int status = 0, forwarded = 0;

	/* It needs none of the VM's files: a tap or a socket must close when the VM does. */
	close_range(3, ~0U, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (unsigned int i = 0; i < ARRAY_SIZE(fwd); i++)
		sigaddset(&set, fwd[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Of root's powers it keeps CAP_KILL alone: the jailed process is another user's. */
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { .effective = 1u << CAP_KILL,
						 .permitted = 1u << CAP_KILL } };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_capset, &h, d))
		log_warn("jail: the supervisor keeps its capabilities: %s", strerror(errno));
	if (filter)
		filter_supervisor(filter);
	test_fault_supervisor();
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child || (w < 0 && errno != EINTR))
			break;
		int sig = sigwaitinfo(&set, NULL);
		if (sig > 0 && sig != SIGCHLD) {
			forwarded = sig;
			kill(child, SIGKILL);
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != JAIL_EXIT_SIGSYS)
		_exit(WEXITSTATUS(status));
	int sig = WIFEXITED(status) ? SIGSYS : WTERMSIG(status);
	if (sig == SIGKILL && forwarded)
		sig = forwarded;
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none); /* tern-vmm's core, if any, was the jailed one's */
	signal(sig, SIG_DFL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	kill(getpid(), sig);
	_exit(128 + sig);
}

bool jail_inherited(const struct jail_config *c)
{
	const char *v = getenv(JAILED_ENV);
	char want[32];

	snprintf(want, sizeof(want), "%u:%u", (unsigned int)c->uid, (unsigned int)c->gid);
	/* Only a process that really is that uid, PID 1 of its own namespace, counts. */
	return v && !strcmp(v, want) && getuid() == c->uid && getpid() == 1;
}

int jail_enter(const struct jail_config *c, const struct jail_entries *s, char *err, size_t n)
{
	int netns = -1, pipefd[2], r;
	char msg[512] = "";

	if (geteuid() != 0)
		return fail_msg(err, n, -EPERM,
				"needs root: it makes namespaces and devices, then becomes uid %u",
				(unsigned int)c->uid);
	if ((r = mkdir_p(ROOT, 0700)))
		return fail_msg(err, n, r, "cannot make %s: %s", ROOT, strerror(-r));
	if (c->netns[0] && (netns = open(c->netns, O_RDONLY | O_CLOEXEC)) < 0)
		return fail_msg(err, n, -errno, "netns='%s': %s", c->netns, strerror(errno));
	if (pipe2(pipefd, O_CLOEXEC)) {
		r = -errno;
		goto fail;
	}
	if (unshare(CLONE_NEWPID)) {
		r = fail_msg(err, n, -errno, "cannot make a PID namespace: %s", strerror(errno));
		goto fail_pipe;
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0) {
		r = fail_msg(err, n, -errno, "cannot fork: %s", strerror(errno));
		goto fail_pipe;
	}
	if (child == 0) {
		/* The supervisor gone (kill -9), the VM goes too: nothing runs unwatched. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pipefd[0]);
		r = build(c, s, netns, pipefd[1], msg, sizeof(msg));
		if (r) {
			if (write(pipefd[1], msg, strlen(msg) + 1) < 0)
				_exit(1);
			_exit(1);
		}
		if (write(pipefd[1], "", 1) != 1)
			_exit(1);
		close(pipefd[1]);
		return 0;
	}
	close(pipefd[1]);
	if (netns >= 0)
		close(netns);
	ssize_t got = read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	if (got == 1 && msg[0] == 0)
		supervise(child, c->supervisor_filter);
	waitpid(child, NULL, 0);
	msg[got > 0 ? got : 0] = 0;
	return fail_msg(err, n, -EPERM, "%s", got > 0 ? msg : "the jailed process died");
fail_pipe:
	close(pipefd[0]);
	close(pipefd[1]);
fail:
	if (netns >= 0)
		close(netns);
	return r;
}
