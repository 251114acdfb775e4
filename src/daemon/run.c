/*
 * Running VMs: starting one as tern-monitor + tern-vmm (docs/ternd.md), noticing its end
 * through pidfds, recording how it ended from the monitor's status file, and finding
 * running VMs again after ternd restarts.
 */
#include "daemon/cgroup_limits.h"
#include "daemon/chain_record.h"
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "backend/disk.h"
#include "backend/disk_chain.h"
#include "backend/qcow2.h"

#include "core/log.h"
#include "core/util.h"
#include "daemon/bridge.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCH_VMM 1UL /* low bit of an epoll event's data: which pidfd of the entry */

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot), 0 if none. */
static unsigned long long proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* The name in parentheses may hold spaces: count fields from its closing one. */
	if (!(p = strrchr(buf, ')')))
		return 0;
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
		   "%*d %llu",
		   &v) != 1)
		return 0;
	return v;
}

struct pids {
	pid_t mon, vmm;
	unsigned long long mon_start, vmm_start;
};

static int read_pids(const char *path, struct pids *p)
{
	FILE *f = fopen(path, "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%d %llu %d %llu", &p->mon, &p->mon_start, &p->vmm, &p->vmm_start);
	fclose(f);
	return n == 4 ? 0 : -EINVAL;
}

/* A pidfd for pid if it is still the process that started at start_ticks, else -1. */
static int pidfd_if_same(pid_t pid, unsigned long long start_ticks)
{
	int fd;

	if (pid <= 0 || !start_ticks)
		return -1;
	fd = pidfd_open(pid);
	/* Checked after opening: the pidfd pins the process, so the check cannot go stale. */
	if (fd >= 0 && proc_start(pid) != start_ticks) {
		close(fd);
		return -1;
	}
	return fd;
}

static void watch_add(struct ternd *t, struct vm_entry *e)
{
	struct epoll_event ev = { .events = EPOLLIN };

	pthread_mutex_lock(&t->lock);
	e->refs++; /* held until its end is recorded */
	if (e->mon_pidfd >= 0) {
		ev.data.u64 = (uintptr_t)e;
		epoll_ctl(t->watch_fd, EPOLL_CTL_ADD, e->mon_pidfd, &ev);
	}
	ev.data.u64 = (uintptr_t)e | WATCH_VMM;
	epoll_ctl(t->watch_fd, EPOLL_CTL_ADD, e->vmm_pidfd, &ev);
	pthread_mutex_unlock(&t->lock);
}

char *ternd_vm_cgroup(const struct ternd *t, const struct vm_entry *e, char *buf, size_t n)
{
	if (!t->cgroup)
		return NULL;
	snprintf(buf, n, "/sys/fs/cgroup%s/vm-%s", t->cgroup, e->def.uuid);
	return buf;
}

/* How the last run ended, from the monitor's status file: reason and a detail JSON. */
static void ended(struct ternd *t, struct vm_entry *e, const char **reason, char **detail)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	struct json_object *o = NULL, *r;
	const char *why = NULL;

	ternd_vm_dir(t, e, "status", path, sizeof(path));
	if (!file_read_all(path, &buf, &len)) {
		char *text = strndup((const char *)buf, len); /* file_read_all adds no NUL */
		o = text ? json_tokener_parse(text) : NULL;
		free(text);
	}
	if (o && json_object_object_get_ex(o, "reason", &r))
		why = json_object_get_string(r);
	if (e->end_reason[0])
		*reason = e->end_reason;
	else if (!strcmp(e->state, "migrating in"))
		*reason = "failed"; /* the migration did not arrive: it never ran here */
	else if (!o)
		*reason = "crashed";
	else if (why &&
		 (!strcmp(why, "poweroff") || !strcmp(why, "reboot") || !strcmp(why, "debug-exit")))
		*reason = "shutdown";
	else if (why && !strcmp(why, "migrated"))
		*reason = "migrated"; /* it runs on at the destination */
	else
		*reason = "crashed";
	if (o) {
		*detail = strdup(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		*detail =
			strdup("{\"reason\": \"unknown\", \"message\": \"tern-vmm and its monitor "
			       "ended and no status was written\"}");
	}
	free(buf);
}

/* The status says the guest rebooted (detail: the status file's JSON). */
static bool rebooted(const char *detail)
{
	struct json_object *o = detail ? json_tokener_parse(detail) : NULL, *r;
	bool yes = o && json_object_object_get_ex(o, "reason", &r) &&
		   !strcmp(json_object_get_string(r), "reboot");

	json_object_put(o);
	return yes;
}

struct restart {
	struct ternd *t;
	struct vm_entry *e;
};

static void *restart_thread(void *arg)
{
	struct restart *r = arg;
	char err[512];

	pthread_mutex_lock(&r->e->op);
	if (!r->e->removed && !ternd_is_active(r->e) && run_start(r->t, r->e, err, sizeof(err)))
		log_error("%s: restart failed: %s", r->e->def.name, err);
	pthread_mutex_unlock(&r->e->op);
	ternd_put(r->t, r->e);
	free(r);
	return NULL;
}

/* How long a VM that ended may take to let go of its images (wait_disks_free). */
#define DISKS_FREE_WAIT_MS 5000

/*
 * An image can stay locked for a moment after its tern-vmm is gone: an io_uring request
 * in flight when it was killed holds the open file, and with it the lock, until the
 * kernel has torn the ring down (tens of milliseconds, seconds on a loaded host; the
 * ring's registered file did so every time, before it became a second open file). The
 * VM is not "shut off" before its images are free (as QEMU's are after virsh destroy): a
 * qemu-img, a merge or the VM's own start right after would be refused the lock. Only
 * write locks are waited for: a shared base may be read-locked by other running VMs.
 */
static void wait_disks_free(const struct vm_entry *e)
{
	uint64_t until = monotonic_ns() + DISKS_FREE_WAIT_MS * 1000000ULL;

	for (unsigned int i = 0; i < e->def.ndisks; i++) {
		const struct vmdef_disk *k = &e->def.disks[i];
		/* Asked as a reader would: only a write lock stands in the way. */
		while (!k->readonly && disk_lock_holder(k->path, true) == 1) {
			if (monotonic_ns() >= until) {
				log_warn("%s: %s is still locked %d ms after its tern-vmm ended",
					 e->def.name, k->path, DISKS_FREE_WAIT_MS);
				break;
			}
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
	}
}

/* The VM's processes are gone: record how it ended, then restart it if its policy says so. */
static void finalize(struct ternd *t, struct vm_entry *e)
{
	const char *reason;
	char *detail = NULL, cg[4096];
	bool restart, incoming;

	pthread_mutex_lock(&t->lock);
	incoming = !strcmp(e->state, "migrating in");
	pthread_mutex_unlock(&t->lock);
	ended(t, e, &reason, &detail);
	if (strcmp(reason, "migrated"))
		wait_disks_free(e); /* a migrated VM's disks are the destination's */
	bridge_taps_delete(&e->def);
	vmjail_release(t, e, !strcmp(reason, "migrated") && !e->mig_copied);
	e->mig_copied = false;
	/* A tern-vmm started without the VM's options (restored, migrated in) exits on a
	 * reboot rather than starting over itself: the definition says what comes next. */
	restart = (!strcmp(reason, "shutdown") && e->def.on_poweroff == VMDEF_RESTART) ||
		  (!strcmp(reason, "shutdown") && e->def.on_reboot == VMDEF_RESTART &&
		   rebooted(detail)) ||
		  (!strcmp(reason, "crashed") && e->def.on_crash == VMDEF_RESTART);
	pthread_mutex_lock(&t->lock);
	e->mon_pid = e->vmm_pid = 0;
	e->mon_gone = e->vmm_gone = false;
	pthread_mutex_unlock(&t->lock);
	/*
	 * The cgroup goes before the state says "shut off": whoever waits for that (a revert,
	 * a restart) may start the VM again at once, and its new cgroup must not be removed
	 * under it (it would start without its limits, or not at all).
	 */
	if (ternd_vm_cgroup(t, e, cg, sizeof(cg)))
		rmdir(cg);
	ternd_set_state(t, e, "shut off", reason, detail);
	free(detail);
	e->end_reason[0] = 0;
	if (incoming)
		migrate_in_ended(t, e);
	if (restart) {
		struct restart *r = malloc(sizeof(*r));
		pthread_t th;
		pthread_mutex_lock(&t->lock);
		e->refs++;
		pthread_mutex_unlock(&t->lock);
		if (r) {
			*r = (struct restart){ t, e };
			if (!pthread_create(&th, NULL, restart_thread, r)) {
				pthread_detach(th);
				return;
			}
			free(r);
		}
		ternd_put(t, e);
	}
}

void *run_watch_thread(void *arg)
{
	struct ternd *t = arg;

	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(t->watch_fd, ev, 16, -1);
		for (int i = 0; i < n; i++) {
			struct vm_entry *e =
				(struct vm_entry *)(uintptr_t)(ev[i].data.u64 & ~WATCH_VMM);
			bool vmm = ev[i].data.u64 & WATCH_VMM, done;
			pthread_mutex_lock(&t->lock);
			int *fd = vmm ? &e->vmm_pidfd : &e->mon_pidfd;
			if (*fd < 0) {
				pthread_mutex_unlock(&t->lock);
				continue;
			}
			epoll_ctl(t->watch_fd, EPOLL_CTL_DEL, *fd, NULL);
			close(*fd);
			*fd = -1;
			*(vmm ? &e->vmm_gone : &e->mon_gone) = true;
			/* The monitor writes the status after tern-vmm ends: wait for both. */
			done = e->vmm_gone && (e->mon_gone || e->mon_pidfd < 0);
			pthread_mutex_unlock(&t->lock);
			if (!vmm && !done)
				log_warn("%s: its monitor ended while tern-vmm runs: the console "
					 "is lost",
					 e->def.name);
			if (done) {
				finalize(t, e);
				ternd_put(t, e);
			}
		}
	}
	return NULL;
}

/* In the child: the VM's cgroup, a session of its own, then the monitor. */
static void spawn_child(const char *cg, char **argv, int log_fd)
{
	sigset_t none;
	int fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (fork() > 0)
		_exit(0);
	if (cg) {
		char procs[4300];
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
		if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) >= 0) {
			if (write(fd, "0", 1) < 0)
				dprintf(log_fd, "ternd: cannot join %s: %s\n", cg, strerror(errno));
			close(fd);
		}
	}
	fd = open("/dev/null", O_RDWR);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(log_fd, 2);
	closefrom(3);
	execv(argv[0], argv);
	dprintf(2, "ternd: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/*
 * restore_state, restore_mem: the files to restore (a managed save, a snapshot) or NULL.
 * incoming: no VM options at all, the machine comes from the migration stream.
 */
static char **start_argv(struct ternd *t, struct vm_entry *e, const char *restore_state,
			 const char *restore_mem, bool paused, bool incoming)
{
	char dir[4096], api[4200], status[4200], vsock[4200], jail[64];
	bool restore = restore_state;
	char **vargs = NULL, **argv;
	size_t nv = 0, i = 0;

	ternd_vm_dir(t, e, NULL, dir, sizeof(dir));
	ternd_vmm_path(t, e, "api.sock", api, sizeof(api));
	ternd_vmm_path(t, e, "status.vmm", status, sizeof(status));
	ternd_vmm_path(t, e, "vsock.sock", vsock, sizeof(vsock));
	snprintf(jail, sizeof(jail), "uid=%u,gid=%u", (unsigned int)e->jail_uid,
		 (unsigned int)e->jail_uid);
	char taps[VMDEF_MAX_NICS][IFNAMSIZ], *tapv[VMDEF_MAX_NICS];
	for (unsigned int k = 0; k < e->def.nnics; k++) {
		bridge_tap_name(&e->def, k, taps[k]);
		tapv[k] = taps[k];
	}
	if (!restore && !incoming && !(vargs = vmdef_vmm_args(&e->def, vsock, tapv)))
		return NULL;
	while (vargs && vargs[nv])
		nv++;
	if (!(argv = calloc(nv + 20 + 2 * VMDEF_MAX_DISKS * (QCOW2_CHAIN_MAX + 2),
			    sizeof(*argv)))) {
		vmdef_free_args(vargs);
		return NULL;
	}
	argv[i++] = strdup(t->monitor_path);
	argv[i++] = strdup("--dir");
	argv[i++] = strdup(dir);
	argv[i++] = strdup("--status-vmm");
	argv[i++] = strdup(status);
	argv[i++] = strdup("--");
	argv[i++] = strdup(t->vmm_path);
	if (e->jailed) {
		argv[i++] = strdup("--jail");
		argv[i++] = strdup(jail);
	}
	/* A destination learns its disks from the stream: its jail must hold them already. */
	for (unsigned int k = 0; e->jailed && incoming && k < e->def.ndisks; k++) {
		char(*below)[DISK_CHAIN_PATH_MAX];
		argv[i++] = strdup("--jail-bind");
		argv[i++] = strdup(e->def.disks[k].path);
		int nb = disk_chain_list(e->def.disks[k].path, e->def.disks[k].format, &below);
		for (int b = 0; b < nb; b++) {
			argv[i++] = strdup("--jail-bind");
			argv[i++] = strdup(below[b]);
		}
		free(below);
	}
	if (restore) {
		argv[i++] = strdup("--restore");
		argv[i++] = strdup(restore_state);
		argv[i++] = strdup("--restore-mem");
		argv[i++] = strdup(restore_mem);
		if (paused)
			argv[i++] = strdup("--restore-paused");
		/*
		 * The drives on the definition's images, which the state file may name
		 * otherwise: a revert puts the VM on new overlays in front of those it names.
		 */
		for (unsigned int k = 0; k < e->def.ndisks; k++) {
			const struct vmdef_disk *dk = &e->def.disks[k];
			char one[VMDEF_PATH_MAX + 128], id[32];
			if (dk->readonly || !vmdef_drive_id(&e->def, k, id, sizeof(id)))
				continue;
			snprintf(one, sizeof(one), "id=%s,path=%s", id, dk->path);
			if (dk->format != DISK_FORMAT_AUTO)
				snprintf(one + strlen(one), sizeof(one) - strlen(one), ",format=%s",
					 disk_format_name(dk->format));
			argv[i++] = strdup("--restore-disk");
			argv[i++] = strdup(one);
		}
	}
	/*
	 * RAM the definition puts on 2 MiB pages stays on them when the VM is restored (its
	 * memory file read into them) or arrives; a restore otherwise maps its memory file.
	 */
	if ((restore && e->def.huge_pages == VMDEF_HUGE_2M) || incoming) {
		argv[i++] = strdup("--huge-pages");
		argv[i++] = strdup(vmdef_huge_names[e->def.huge_pages]);
	}
	for (size_t k = 0; k < nv; k++)
		argv[i++] = strdup(vargs[k]);
	if (incoming) {
		argv[i++] = strdup("--id");
		argv[i++] = strdup(e->def.name);
	}
	argv[i++] = strdup("--api-sock");
	argv[i++] = strdup(api);
	argv[i++] = strdup("--status-file");
	argv[i++] = strdup(status);
	argv[i] = NULL;
	vmdef_free_args(vargs);
	for (size_t k = 0; k < i; k++)
		if (!argv[k]) {
			vmdef_free_args(argv);
			return NULL;
		}
	return argv;
}

/*
 * tern-vmm ended while starting. If the guest ran (the status file says it crashed or
 * powered off), the start worked and the VM ended at once: both are recorded, and 0. Else
 * the start failed: -EIO with what the status file or the monitor said.
 */
static int ended_early(struct ternd *t, struct vm_entry *e, char *err, size_t n, const char *what)
{
	const char *reason;
	char *detail = NULL, why[1024] = "", vmm_reason[16] = "";
	struct json_object *o;

	ended(t, e, &reason, &detail);
	bridge_taps_delete(&e->def);
	vmjail_release(t, e, false);
	if (detail && (o = json_tokener_parse(detail))) {
		struct json_object *m;
		if (json_object_object_get_ex(o, "message", &m))
			snprintf(why, sizeof(why), ": %s", json_object_get_string(m));
		if (json_object_object_get_ex(o, "reason", &m))
			snprintf(vmm_reason, sizeof(vmm_reason), "%s", json_object_get_string(m));
		json_object_put(o);
	}
	if (!strcmp(vmm_reason, "crash") || !strcmp(vmm_reason, "poweroff") ||
	    !strcmp(vmm_reason, "reboot") || !strcmp(vmm_reason, "debug-exit")) {
		ternd_set_state(t, e, "running", "booted", NULL);
		ternd_set_state(t, e, "shut off", reason, detail);
		free(detail);
		return 0;
	}
	fail_msg(err, n, -EIO, "%s %s%s", e->def.name, what, why);
	ternd_set_state(t, e, "shut off", "failed", detail);
	free(detail);
	return -EIO;
}

/*
 * Starts the VM: booted, or restored from restore_state + restore_mem (then paused if
 * asked), or as a migration's destination (incoming: up once its API answers at all);
 * reason is the state's reason once it runs ("booted", "restored" ...).
 */
static int launch(struct ternd *t, struct vm_entry *e, const char *restore_state,
		  const char *restore_mem, bool paused, bool incoming, const char *reason,
		  char *err, size_t n)
{
	char path[4200], cgbuf[4200], *cg;
	char **argv;
	struct pids p = { 0 };
	long long deadline;
	int mon_fd = -1, vmm_fd = -1, log_fd, r;
	pid_t child;

	if (ternd_is_active(e))
		return fail_msg(err, n, -EBUSY, "%s is %s already", e->def.name, e->state);
	if ((r = ternd_make_vm_dir(t, e, err, n)))
		return r;
	unlink(ternd_vm_dir(t, e, "status", path, sizeof(path)));
	unlink(ternd_vm_dir(t, e, "pid", path, sizeof(path)));
	/* An incoming VM's disks are the source's, or come with the stream. */
	if (!incoming && (r = chain_record_check(t, e, err, n)))
		return r;
	if ((r = vmjail_prepare(t, e, restore_state, restore_mem, incoming, err, n)))
		return r;
	for (const char *f = "status.vmm\0api.sock\0incoming.sock\0migrate.sock\0"; *f;
	     f += strlen(f) + 1)
		unlink(ternd_vmm_path(t, e, f, path, sizeof(path)));
	if ((r = bridge_taps_create(&e->def, e->jailed ? e->jail_uid : 0, err, n))) {
		vmjail_release(t, e, false);
		return r;
	}
	if (!(argv = start_argv(t, e, restore_state, restore_mem, paused, incoming))) {
		bridge_taps_delete(&e->def);
		vmjail_release(t, e, false);
		return -ENOMEM;
	}
	if ((cg = ternd_vm_cgroup(t, e, cgbuf, sizeof(cgbuf))) && mkdir(cg, 0755) &&
	    errno != EEXIST) {
		log_warn("%s: cannot make cgroup %s: %s; running it without one", e->def.name, cg,
			 strerror(errno));
		cg = NULL;
	}
	/* The definition's limits hold from the first instruction, or the VM does not start. */
	if (cg && !t->limits_off && (r = cgroup_limits_apply(cg, &e->def, err, n))) {
		rmdir(cg);
		bridge_taps_delete(&e->def);
		vmjail_release(t, e, false);
		vmdef_free_args(argv);
		return r;
	}
	log_fd = open(ternd_vm_dir(t, e, "monitor.log", path, sizeof(path)),
		      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	child = fork();
	if (child == 0)
		spawn_child(cg, argv, log_fd >= 0 ? log_fd : 2);
	vmdef_free_args(argv);
	if (log_fd >= 0)
		close(log_fd);
	if (child < 0) {
		r = fail_msg(err, n, -errno, "fork: %s", strerror(errno));
		bridge_taps_delete(&e->def);
		vmjail_release(t, e, false);
		return r;
	}
	waitpid(child, NULL, 0); /* the intermediate process; the monitor is init's now */
	deadline = ms_now() + t->start_timeout_ms;
	ternd_vm_dir(t, e, "pid", path, sizeof(path));
	while (read_pids(path, &p) && ms_now() < deadline)
		usleep(20000);
	mon_fd = pidfd_if_same(p.mon, p.mon_start);
	vmm_fd = pidfd_if_same(p.vmm, p.vmm_start);
	if (vmm_fd < 0) {
		/* It never got going: the monitor reports a failed exec in the status file. */
		while (mon_fd >= 0 && ms_now() < deadline) {
			struct pollfd pf = { .fd = mon_fd, .events = POLLIN };
			if (poll(&pf, 1, 100) > 0)
				break;
		}
		if (mon_fd >= 0)
			close(mon_fd);
		return ended_early(t, e, err, n, "did not start");
	}
	/* Running once its API answers; an early end says why in the status file. */
	for (;;) {
		char *resp = NULL, why[256];
		struct pollfd pf = { .fd = vmm_fd, .events = POLLIN };
		if (poll(&pf, 1, 50) > 0) {
			if (mon_fd >= 0) {
				struct pollfd pm = { .fd = mon_fd, .events = POLLIN };
				poll(&pm, 1, 5000);
				close(mon_fd);
			}
			close(vmm_fd);
			return ended_early(t, e, err, n, "stopped while starting");
		}
		ternd_vmm_path(t, e, "api.sock", path, sizeof(path));
		r = vmm_request(path, "GET", "/", NULL, 2000, &resp, why, sizeof(why));
		bool up = r == 200 && resp &&
			  (incoming || strstr(resp, "\"Running\"") || strstr(resp, "\"Paused\""));
		free(resp);
		if (up)
			break;
		if (ms_now() > deadline) {
			pidfd_kill(vmm_fd, SIGKILL);
			close(vmm_fd);
			if (mon_fd >= 0)
				close(mon_fd);
			fail_msg(err, n, -ETIMEDOUT,
				 "%s did not answer on its API socket within %d ms (%s): killed",
				 e->def.name, t->start_timeout_ms, why);
			bridge_taps_delete(&e->def);
			vmjail_release(t, e, false);
			ternd_set_state(t, e, "shut off", "failed", NULL);
			return -ETIMEDOUT;
		}
	}
	pthread_mutex_lock(&t->lock);
	e->mon_pid = p.mon;
	e->vmm_pid = p.vmm;
	e->mon_pidfd = mon_fd;
	e->vmm_pidfd = vmm_fd;
	e->mon_gone = mon_fd < 0;
	e->vmm_gone = false;
	e->end_reason[0] = 0;
	pthread_mutex_unlock(&t->lock);
	ternd_set_state(t, e,
			incoming		? "migrating in" :
			restore_state && paused ? "paused" :
						  "running",
			reason, NULL);
	watch_add(t, e);
	return 0;
}

int run_start(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	char st[4200], mem[4200];
	struct stat sb;
	int r;

	if (ternd_is_active(e))
		return fail_msg(err, n, -EBUSY, "%s is %s already", e->def.name, e->state);
	ternd_vm_dir(t, e, "save/vm.state", st, sizeof(st));
	ternd_vm_dir(t, e, "save/vm.mem", mem, sizeof(mem));
	if (stat(st, &sb))
		return launch(t, e, NULL, NULL, false, false, "booted", err, n);
	if ((r = launch(t, e, st, mem, false, false, "restored", err, n)))
		return r;
	/* The restored VM maps the memory file privately: the names may go now. */
	unlink(st);
	unlink(mem);
	return 0;
}

int run_start_snapshot(struct ternd *t, struct vm_entry *e, const char *dir, bool paused, char *err,
		       size_t n)
{
	char st[4200], mem[4200];

	snprintf(st, sizeof(st), "%s/vm.state", dir);
	snprintf(mem, sizeof(mem), "%s/vm.mem", dir);
	return launch(t, e, st, mem, paused, false, "from snapshot", err, n);
}

int run_start_incoming(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	return launch(t, e, NULL, NULL, false, true, "migration", err, n);
}

bool run_wait_off(struct ternd *t, struct vm_entry *e, int timeout_ms)
{
	struct timespec until;
	bool off;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->lock);
	while (ternd_is_active(e) && pthread_cond_timedwait(&t->changed, &t->lock, &until) == 0)
		;
	off = !ternd_is_active(e);
	pthread_mutex_unlock(&t->lock);
	return off;
}

int run_kill(struct ternd *t, struct vm_entry *e, const char *reason, char *err, size_t n)
{
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!ternd_is_active(e)) {
		pthread_mutex_unlock(&t->lock);
		return fail_msg(err, n, -EINVAL, "%s is not running (%s)", e->def.name, e->state);
	}
	snprintf(e->end_reason, sizeof(e->end_reason), "%s", reason);
	if (e->vmm_pidfd >= 0)
		r = pidfd_kill(e->vmm_pidfd, SIGKILL);
	pthread_mutex_unlock(&t->lock);
	if (r < 0 && errno != ESRCH)
		return fail_msg(err, n, -errno, "cannot kill %s: %s", e->def.name, strerror(errno));
	if (!run_wait_off(t, e, 15000))
		return fail_msg(err, n, -ETIMEDOUT,
				"%s was killed but its end was not seen in 15 s", e->def.name);
	return 0;
}

void run_reconcile(struct ternd *t)
{
	for (;;) {
		struct vm_entry *e, *todo = NULL;
		pthread_mutex_lock(&t->lock);
		for (e = t->vms; e; e = e->next)
			if (ternd_is_active(e) && e->vmm_pidfd < 0 && !e->vmm_gone) {
				todo = e;
				e->refs++;
				break;
			}
		pthread_mutex_unlock(&t->lock);
		if (!todo)
			return;
		e = todo;
		char path[4200], *resp = NULL, why[256];
		struct pids p = { 0 };
		read_pids(ternd_vm_dir(t, e, "pid", path, sizeof(path)), &p);
		int vmm_fd = pidfd_if_same(p.vmm, p.vmm_start);
		int mon_fd = pidfd_if_same(p.mon, p.mon_start);
		if (vmm_fd < 0) {
			/* It ended while ternd was down; the monitor's status says how. */
			if (mon_fd >= 0) {
				struct pollfd pm = { .fd = mon_fd, .events = POLLIN };
				poll(&pm, 1, 5000);
				close(mon_fd);
			}
			pthread_mutex_lock(&t->lock);
			e->vmm_gone = true; /* not picked again by this loop */
			pthread_mutex_unlock(&t->lock);
			finalize(t, e);
			ternd_put(t, e);
			continue;
		}
		pthread_mutex_lock(&t->lock);
		e->mon_pid = p.mon;
		e->vmm_pid = p.vmm;
		e->mon_pidfd = mon_fd;
		e->vmm_pidfd = vmm_fd;
		e->mon_gone = mon_fd < 0;
		pthread_mutex_unlock(&t->lock);
		watch_add(t, e);
		if (!strcmp(e->state, "migrating in")) {
			/* Its API answers once the VM arrived: a thread of its own waits. */
			log_info("%s: reattached while migrating in (tern-vmm pid %d)", e->def.name,
				 p.vmm);
			migrate_in_follow(t, e);
			ternd_put(t, e);
			continue;
		}
		int r = vmm_request(ternd_vmm_path(t, e, "api.sock", path, sizeof(path)), "GET",
				    "/", NULL, 5000, &resp, why, sizeof(why));
		if (r == 200 && resp) {
			bool paused = strstr(resp, "\"Paused\"");
			if (paused != !strcmp(e->state, "paused"))
				ternd_set_state(t, e, paused ? "paused" : "running",
						paused ? "user" : "unpaused", NULL);
		} else {
			log_warn("%s: running (pid %d) but its API does not answer: %s",
				 e->def.name, p.vmm, why);
		}
		free(resp);
		log_info("%s: reattached (tern-vmm pid %d, monitor pid %d%s)", e->def.name, p.vmm,
			 p.mon, mon_fd < 0 ? ", gone" : "");
		ternd_put(t, e);
	}
}
