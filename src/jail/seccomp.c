/*
 * Installs a thread's allow-list (seccomp_lists.c) with libseccomp, and names a refused
 * call before the process dies: the default action traps (SIGSYS) into a handler that
 * writes one line (the call, the thread, an ioctl's request or a socket's family) and
 * then lets SIGSYS's default action end the process.
 */
#include "jail/seccomp.h"
#include "jail/jail.h"

#include "core/log.h"
#include "core/util.h"
#include "jail/seccomp_filter.h"
#include "jail/seccomp_lists.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef TERN_SECCOMP_PREBUILT
#include "seccomp_bpf.h" /* made by tools/seccomp_gen.c into $(BUILD)/gen */
#endif

static enum seccomp_mode mode = SECCOMP_OFF;
static _Thread_local char thread_label[40]; /* "vcpu0 (vcpu list)", for the handler */
static bool may_restart; /* --on-reboot restart: the main list lets it re-execute */
static bool kept;	 /* this image is a restart's: the main thread has its list */

#define KEPT_ENV "TERN_SECCOMP_KEPT"

/* Each kind's program, readied once (prepare) and loaded by every thread of the kind. */
struct compiled {
	bool ready;
	int r;
	struct sock_fprog prog;
	char err[200];
};

static struct compiled progs[SECCOMP_THREAD_KINDS];
static pthread_mutex_t progs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progs_ready = PTHREAD_COND_INITIALIZER;
static bool libc_warm; /* the preparing thread's tzset is over (prepare) */

int seccomp_mode_parse(const char *s)
{
	if (!strcmp(s, "kill"))
		return SECCOMP_KILL;
	if (!strcmp(s, "log"))
		return SECCOMP_LOG;
	if (!strcmp(s, "off"))
		return SECCOMP_OFF;
	return -1;
}

const char *seccomp_mode_name(enum seccomp_mode m)
{
	return m == SECCOMP_KILL ? "kill" : m == SECCOMP_LOG ? "log" : "off";
}

/* ---- the SIGSYS handler: async-signal-safe, so no stdio ---- */

struct line {
	char buf[256];
	size_t len;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void put_num(struct line *l, unsigned long long v, unsigned int base)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i < (int)sizeof(tmp));
	if (base == 16)
		put(l, "0x");
	while (i > 0 && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--i];
}

static bool ns_init; /* this process is PID 1 of its PID namespace (a jail's) */

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	const ucontext_t *uc = ctx;
	int nr = si->si_syscall;
	struct line l = { .len = 0 };

	put(&l, "tern-vmm: error: seccomp: thread ");
	put(&l, thread_label[0] ? thread_label : "?");
	put(&l, " called ");
	if (si->si_arch != AUDIT_ARCH_X86_64) {
		put(&l, "a system call of another architecture (");
		put_num(&l, si->si_arch, 16);
		put(&l, "), number");
	} else {
		/*
		 * The name is looked up now (a table built at start-up would cost every VM its
		 * start-up time). The lookup allocates: this thread is stopped at a call no
		 * allocator makes, so it holds no allocator lock.
		 */
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		put(&l, name ? name : "syscall");
	}
	put(&l, " (");
	put_num(&l, (unsigned long long)nr, 10);
	put(&l, ")");
	if (nr == SYS_ioctl) {
		put(&l, " with request ");
		put_num(&l, (unsigned long long)uc->uc_mcontext.gregs[REG_RSI] & 0xffffffffu, 16);
	} else if (nr == SYS_openat || nr == SYS_open) {
		/* The path is this process's own memory: worth naming, for whoever reads it. */
		const char *path =
			(const char *)uc->uc_mcontext.gregs[nr == SYS_open ? REG_RDI : REG_RSI];
		char shown[128];
		size_t i = 0;
		while (path && i < sizeof(shown) - 1 && path[i])
			shown[i] = path[i], i++;
		shown[i] = 0;
		put(&l, " on ");
		put(&l, path ? shown : "(null)");
	} else if (nr == SYS_socket || nr == SYS_socketpair) {
		put(&l, " for address family ");
		put_num(&l, (unsigned long long)uc->uc_mcontext.gregs[REG_RDI] & 0xffffffffu, 10);
	}
	put(&l, ", which its list does not allow: stopping (--seccomp=log lets it through, "
		"logged by the kernel)\n");
	if (write(STDERR_FILENO, l.buf, l.len) < 0) {
		/* Nothing else can be done: the process ends all the same. */
	}
	/*
	 * A jailed tern-vmm is its PID namespace's init, which ignores a signal it has no
	 * handler for, even its own: it exits with JAIL_EXIT_SIGSYS instead, which the jail's
	 * supervisor turns back into death by SIGSYS.
	 */
	if (ns_init)
		syscall(SYS_exit_group, JAIL_EXIT_SIGSYS);
	/* SA_RESETHAND made SIGSYS's action the default again: it ends the process. */
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

static void *prepare(void *arg);

/*
 * exit() must not run beside the preparing thread's tzset: glibc's exit-time stdio
 * clean-up takes the stream tzset reads /etc/localtime through from under it (it waits
 * only twice for the stream's lock) and the process then dies in free() instead of with
 * its exit status, as a usage error in the first milliseconds did in the lab.
 */
static void wait_libc_warm(void)
{
	pthread_mutex_lock(&progs_lock);
	while (!libc_warm)
		pthread_cond_wait(&progs_ready, &progs_lock);
	pthread_mutex_unlock(&progs_lock);
}

static int catch_sigsys(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_RESETHAND };

	ns_init = getpid() == 1;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL);
}

/*
 * A restart's new image runs under the old one's list from its first instruction: the
 * handler goes in before main, so that a refused call of its set-up is named too (the
 * loader's and the sanitizers' own start-up still come before this).
 */
__attribute__((constructor)) static void catch_sigsys_early(void)
{
	if (getenv(KEPT_ENV))
		catch_sigsys();
}

int seccomp_init_process(enum seccomp_mode m, bool restart, char *err, size_t n)
{
	bool prebuilt = false;

	mode = m;
	may_restart = restart;
	ns_init = getpid() == 1;
	if (m == SECCOMP_OFF)
		return 0;
	if (catch_sigsys() < 0)
		return fail_msg(err, n, -errno, "sigaction(SIGSYS): %s", strerror(errno));
	/* A restart's new image runs under the list the old one left: it is the same. */
	kept = getenv(KEPT_ENV) != NULL;
	unsetenv(KEPT_ENV);
#ifdef TERN_SECCOMP_PREBUILT
	/* The default mode's programs were built with tern-vmm (tools/seccomp_gen.c). */
	prebuilt = m == SECCOMP_KILL;
#endif
	pthread_t t;
	int r = pthread_create(&t, NULL, prepare, prebuilt ? &prebuilt : NULL);
	if (r)
		return fail_msg(err, n, -r, "cannot start the seccomp thread: %s", strerror(r));
	pthread_detach(t);
	atexit(wait_libc_warm);
	return 0;
}

unsigned int seccomp_list_size(enum seccomp_thread kind)
{
	unsigned int k = 0;

	for (const char *const *c = seccomp_common_calls(); *c; c++)
		k++;
	for (const char *const *c = seccomp_lists[kind].calls; *c; c++)
		k++;
	return k;
}

/* One kind's program, built here (--seccomp log, or a build without the ahead-of-time ones). */
static void compile(enum seccomp_thread kind, struct compiled *c)
{
	c->r = seccomp_filter_build(kind, mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP,
				    may_restart, &c->prog, c->err, sizeof(c->err));
}

/* A kind's program is ready: its threads may load it. */
static void publish(enum seccomp_thread kind, const struct compiled *c)
{
	pthread_mutex_lock(&progs_lock);
	progs[kind] = *c;
	progs[kind].ready = true;
	pthread_cond_broadcast(&progs_ready);
	pthread_mutex_unlock(&progs_lock);
}

/*
 * The preparing thread, beside the VM's set-up: first what the C library does lazily on
 * first use, while any call may still be made (the RTC's first gmtime_r, on a vCPU thread,
 * would open /etc/localtime: 0.4 ms of tzset), then each kind's program, built ahead
 * (tools/seccomp_gen.c) or compiled now, the vCPUs' first since the guest waits for it.
 */
static void *prepare(void *arg)
{
	static const enum seccomp_thread order[] = { SECCOMP_VCPU, SECCOMP_IO, SECCOMP_VMM };
	bool prebuilt = arg != NULL;

	pthread_setname_np(pthread_self(), "seccomp-prep");
	tzset();
	pthread_mutex_lock(&progs_lock);
	libc_warm = true;
	pthread_cond_broadcast(&progs_ready);
	pthread_mutex_unlock(&progs_lock);
	for (unsigned int i = 0; i < SECCOMP_THREAD_KINDS; i++) {
		struct compiled c = { .r = 0 };
#ifdef TERN_SECCOMP_PREBUILT
		if (prebuilt) {
			const struct seccomp_prebuilt *p = &seccomp_prebuilt[order[i]][may_restart];
			c.prog.filter = (struct sock_filter *)p->filter;
			c.prog.len = p->len;
			publish(order[i], &c);
			continue;
		}
#endif
		(void)prebuilt;
		compile(order[i], &c);
		publish(order[i], &c);
	}
	return NULL;
}

int seccomp_enter(enum seccomp_thread kind, char *err, size_t n)
{
	const char *name = seccomp_lists[kind].name;
	struct compiled *c = &progs[kind];
	char comm[17] = "";

	if (mode == SECCOMP_OFF)
		return 0;
	if (kind == SECCOMP_VMM && kept) {
		log_debug("seccomp: the main thread keeps the list it had before the restart");
		return 0;
	}
	pthread_mutex_lock(&progs_lock);
	while (!c->ready)
		pthread_cond_wait(&progs_ready, &progs_lock);
	pthread_mutex_unlock(&progs_lock);
	if (c->r)
		return fail_msg(err, n, c->r, "%s", c->err);
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	snprintf(thread_label, sizeof(thread_label), "%s (%s list)", comm, name);
	/*
	 * An unprivileged filter needs no_new_privs, which tern wants anyway. prctl rather
	 * than seccomp(2): a thread started by one already filtered (a disk worker the loop
	 * adds) stacks its own narrower list, and prctl is on every list (a filter can only
	 * take calls away).
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &c->prog, 0, 0) < 0)
		return fail_msg(err, n, -errno, "cannot install the %s thread's seccomp filter: %s",
				name, strerror(errno));
	log_debug("seccomp: %s filter on for %s (%s)", name, comm, seccomp_mode_name(mode));
	return 0;
}

void seccomp_enter_or_die(enum seccomp_thread kind)
{
	char err[200];

	if (seccomp_enter(kind, err, sizeof(err)))
		die("%s", err);
}

void seccomp_before_restart(void)
{
	if (mode != SECCOMP_OFF)
		setenv(KEPT_ENV, "1", 1);
}
