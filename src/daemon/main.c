/*
 * ternd: the host manager (docs/ternd.md). Keeps VM definitions in its state directory,
 * runs each VM as tern-monitor + tern-vmm, and serves the management API. Its death never
 * stops a VM: a new ternd finds them again.
 */
#include "core/log.h"
#include "core/tcp.h"
#include "core/tls.h"
#include "core/util.h"
#include "daemon/server.h"
#include "daemon/cgroup_limits.h"
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/tern"
#define DEFAULT_START_TIMEOUT_S 60
/* 0x70000000 and the 64 Ki after it: above systemd's container range (0x80000 to
 * 0x6FFFFFFF), below its foreign range (0x7FFE0000) and 2^31, which some tools mishandle. */
#define DEFAULT_VM_UIDS "1879048192-1879113727"

static const char usage[] =
	"usage: ternd [--foreground] [--state-dir DIR] [--group NAME] [--cgroup PATH|none]\n"
	"             [--vmm PATH] [--monitor PATH] [--start-timeout SECONDS]\n"
	"             [--listen-tls ADDR:PORT] [--tls-dir DIR] [--vm-uids FIRST-LAST|off]\n"
	"             [--log-level error|warn|info|debug]\n"
	"\n"
	"The tern host manager: keeps VM definitions in DIR (default " DEFAULT_STATE_DIR "),\n"
	"runs each VM as its own tern-vmm under a tern-monitor, serves the management API on\n"
	"DIR/ternd.sock (read-write, group NAME, default tern if it exists) and DIR/ternd-ro.sock\n"
	"(read-only). Stopping or killing ternd never stops a VM; the next ternd reattaches.\n"
	"\n"
	"  --foreground        stay in the foreground, log to stderr (else: a daemon logging to\n"
	"                      DIR/ternd.log, returning once the sockets are ready)\n"
	"  --cgroup PATH       the cgroup v2 subtree (under /sys/fs/cgroup) where each VM gets\n"
	"                      vm-UUID; default: ternd's own cgroup, or /tern if that is the "
	"root;\n"
	"                      none: no cgroups\n"
	"  --vmm, --monitor    the tern-vmm and tern-monitor to run (default: beside ternd, else\n"
	"                      in ../bin from ternd's directory)\n"
	"  --vm-uids FIRST-LAST|off  jail every VM's tern-vmm (tern-vmm --jail) under a uid\n"
	"                      of its own from this range (1 to 4294967294; no user, group or\n"
	"                      /etc/subuid or /etc/subgid range of the host's in it), its gid\n"
	"                      the same number; its writable disks are given to that uid while\n"
	"                      it runs and given back after (docs/security.md). Default, as\n"
	"                      root: " DEFAULT_VM_UIDS "; off: VMs run unjailed, as root\n"
	"  --start-timeout S   how long a VM may take to answer on its API socket, 1 to 3600\n"
	"                      (default 60)\n"
	"  --listen-tls ADDR:PORT  also serve the API (read-write) over TLS on TCP: an IPv4\n"
	"                      address or [IPv6] address, port 1 to 65535; clients must show\n"
	"                      a certificate signed by the CA (tern --connect tls://HOST:PORT)\n"
	"  --tls-dir DIR       cacert.pem, servercert.pem, serverkey.pem (--listen-tls), and\n"
	"                      clientcert.pem, clientkey.pem (migrations to another host's\n"
	"                      ternd) (default " TLS_DEFAULT_DIR ")\n"
	"\n"
	"Exit status: 0 on SIGTERM/SIGINT, 1 when it cannot run (another ternd holds DIR, the\n"
	"database cannot be opened, the TLS port is taken), 2 for bad usage (a certificate file\n"
	"missing or unreadable too). docs/ternd.md has the API.\n";

struct opts {
	bool foreground;
	const char *state_dir, *group, *cgroup, *vmm, *monitor, *tls_dir;
	bool listen_tls;
	struct hostport tls_addr;
	unsigned int start_timeout_s;
	enum log_level level;
	uid_t uid_first;
	unsigned int uid_count;
	bool uids_given;
};

#define VM_UIDS_MAX 1000000 /* uids in --vm-uids: more VMs than a host runs */

/* Whether [a, b] meets a range "NAME:START:COUNT" of /etc/subuid or /etc/subgid (user
 * namespaces map those uids: a container's processes would own the VMs' files). */
static bool sub_overlap(const char *file, uint64_t a, uint64_t b, char *who, size_t n)
{
	FILE *f = fopen(file, "re");
	char line[512];
	bool hit = false;

	while (f && !hit && fgets(line, sizeof(line), f)) {
		char name[256];
		unsigned long long start, count;
		if (sscanf(line, "%255[^:]:%llu:%llu", name, &start, &count) == 3 && count &&
		    start <= b && start + count - 1 >= a) {
			snprintf(who, n, "%s's range %llu-%llu in %s", name, start,
				 start + count - 1, file);
			hit = true;
		}
	}
	if (f)
		fclose(f);
	return hit;
}

/* A range of uids (and gids) no user, group or user-namespace range of the host's is in. */
static void check_vm_uids(const char *arg, uint64_t a, uint64_t b, const char *fix)
{
	struct passwd *pw;
	struct group *gr;
	char who[600] = "";

	setpwent();
	while (!who[0] && (pw = getpwent()))
		if (pw->pw_uid >= a && pw->pw_uid <= b)
			snprintf(who, sizeof(who), "the host's user %s (uid %u)", pw->pw_name,
				 (unsigned int)pw->pw_uid);
	endpwent();
	setgrent();
	while (!who[0] && (gr = getgrent()))
		if (gr->gr_gid >= a && gr->gr_gid <= b)
			snprintf(who, sizeof(who), "the host's group %s (gid %u)", gr->gr_name,
				 (unsigned int)gr->gr_gid);
	endgrent();
	if (!who[0])
		sub_overlap("/etc/subuid", a, b, who, sizeof(who));
	if (!who[0])
		sub_overlap("/etc/subgid", a, b, who, sizeof(who));
	if (who[0])
		die_usage("--vm-uids %s meets %s: VMs need uids of their own (%s)", arg, who, fix);
}

/* --vm-uids FIRST-LAST or off. */
static void parse_vm_uids(const char *arg, struct opts *o, const char *fix)
{
	char first[24], last[24], extra;
	uint64_t a, b;

	o->uids_given = true;
	if (!strcmp(arg, "off")) {
		o->uid_count = 0;
		return;
	}
	if (sscanf(arg, "%23[0-9]-%23[0-9]%c", first, last, &extra) != 2 ||
	    !parse_u64(first, 1, 4294967294ULL, &a) || !parse_u64(last, 1, 4294967294ULL, &b) ||
	    b < a || b - a >= VM_UIDS_MAX)
		die_usage("--vm-uids: '%s' is not FIRST-LAST, two uids from 1 to 4294967294 with "
			  "FIRST <= LAST and at most %d of them, nor off",
			  arg, VM_UIDS_MAX);
	check_vm_uids(arg, a, b, fix);
	o->uid_first = (uid_t)a;
	o->uid_count = (unsigned int)(b - a + 1);
}

/* DIR/NAME where DIR holds ternd's executable; else DIR/../bin/NAME when that one is
 * executable (an installed ternd in sbin finds tern-vmm in bin). */
static char *beside_self(const char *name)
{
	char self[PATH_MAX], *dir, *out, *alt;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return strdup(name);
	self[n] = 0;
	dir = dirname(self);
	if (asprintf(&out, "%s/%s", dir, name) < 0)
		return NULL;
	if (access(out, X_OK) && asprintf(&alt, "%s/../bin/%s", dir, name) >= 0) {
		if (access(alt, X_OK) == 0) {
			free(out);
			return alt;
		}
		free(alt);
	}
	return out;
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "group", required_argument, NULL, 'g' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "vmm", required_argument, NULL, 'v' },
		{ "monitor", required_argument, NULL, 'm' },
		{ "start-timeout", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "listen-tls", required_argument, NULL, 'L' },
		{ "tls-dir", required_argument, NULL, 'T' },
		{ "vm-uids", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[512];
	uint64_t v;
	int c;

	*o = (struct opts){ .state_dir = DEFAULT_STATE_DIR,
			    .start_timeout_s = DEFAULT_START_TIMEOUT_S,
			    .level = LOG_INFO };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 's':
			o->state_dir = optarg;
			break;
		case 'g':
			o->group = optarg;
			break;
		case 'c':
			o->cgroup = optarg;
			break;
		case 'v':
			o->vmm = optarg;
			break;
		case 'm':
			o->monitor = optarg;
			break;
		case 't':
			if (!parse_u64(optarg, 1, 3600, &v))
				die_usage("--start-timeout: '%s' must be 1 to 3600 seconds",
					  optarg);
			o->start_timeout_s = (unsigned int)v;
			break;
		case 'l':
			if (log_level_parse(optarg, &o->level))
				die_usage("--log-level: '%s' is not error, warn, info or debug",
					  optarg);
			break;
		case 'L':
			if (hostport_parse(optarg, true, &o->tls_addr, err, sizeof(err)))
				die_usage("--listen-tls: %s", err);
			o->listen_tls = true;
			break;
		case 'T':
			if (!*optarg)
				die_usage("--tls-dir: the path is empty");
			o->tls_dir = optarg;
			break;
		case 'U':
			parse_vm_uids(optarg, o, "name free ones, or off");
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			die_usage("unknown or incomplete option '%s' (ternd --help lists them)",
				  argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s' (ternd takes options only)", argv[optind]);
	/* Jailing takes root (namespaces, chown): a ternd run by a user runs its VMs unjailed. */
	if (o->uids_given && o->uid_count && geteuid() != 0)
		die_usage("--vm-uids: jailing VMs needs root (ternd runs as uid %u); or --vm-uids "
			  "off",
			  (unsigned int)geteuid());
	if (!o->uids_given && geteuid() == 0)
		parse_vm_uids(DEFAULT_VM_UIDS, o,
			      "the default range: give ternd --vm-uids FIRST-LAST of free ones, or "
			      "--vm-uids off");
	if (o->state_dir[0] != '/')
		die_usage("--state-dir: '%s' must be an absolute path", o->state_dir);
	if (o->cgroup && strcmp(o->cgroup, "none") && o->cgroup[0] != '/')
		die_usage("--cgroup: '%s' must be a path under /sys/fs/cgroup starting with / (or "
			  "none)",
			  o->cgroup);
}

/* ternd's own cgroup v2 path, e.g. "/system.slice/ternd.service"; NULL if none. */
static char *own_cgroup(void)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	char *out = NULL;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			out = strdup(line + 3);
		}
	if (f)
		fclose(f);
	return out;
}

/*
 * Where VMs get their cgroups. When that is ternd's own cgroup (systemd's Delegate=yes
 * gives it one), ternd moves itself into a "daemon" child: cgroup v2 lets only leaves
 * hold processes once controllers are enabled for children.
 */
static char *setup_cgroup(const char *wanted)
{
	char *own = own_cgroup(), *path, dir[4300];
	int fd;

	if (wanted && !strcmp(wanted, "none")) {
		free(own);
		return NULL;
	}
	path = strdup(wanted ? wanted : own && strcmp(own, "/") ? own : "/tern");
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", path);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		log_warn("cgroup %s: %s; VMs run without cgroups", dir, strerror(errno));
		free(own);
		free(path);
		return NULL;
	}
	if (own && !strcmp(own, path)) {
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s/daemon", path);
		mkdir(dir, 0755);
		strcat(dir, "/cgroup.procs");
		if ((fd = open(dir, O_WRONLY | O_CLOEXEC)) < 0 || write(fd, "0", 1) < 0)
			log_warn("cannot move ternd into %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	free(own);
	return path;
}

/*
 * Each VM's cgroup gets the cpu, memory and pids controllers, for the limits its
 * definition sets; where they cannot be had, VMs run without limits and say why.
 */
static char *enable_limits(const char *cgroup)
{
	char err[600];

	if (!cgroup)
		return strdup("ternd runs with --cgroup none");
	if (cgroup_limits_enable(cgroup, err, sizeof(err))) {
		log_warn("VMs run without their cgroup limits: %s", err);
		return strdup(err);
	}
	return NULL;
}

static void autostart(struct ternd *t)
{
	for (;;) {
		struct vm_entry *e = NULL;
		char err[1024];
		pthread_mutex_lock(&t->lock);
		for (struct vm_entry *x = t->vms; x; x = x->next)
			/* Not one that migrated away: it runs on another host now. */
			if (x->def.autostart && !ternd_is_active(x) && !x->vmm_gone &&
			    strcmp(x->reason, "failed") && strcmp(x->reason, "migrated")) {
				e = x;
				e->refs++;
				break;
			}
		/* Marked so that one that fails to start is not tried again and again here. */
		if (e)
			e->vmm_gone = true;
		pthread_mutex_unlock(&t->lock);
		if (!e)
			return;
		pthread_mutex_lock(&e->op);
		if (run_start(t, e, err, sizeof(err)))
			log_error("autostart of %s failed: %s", e->def.name, err);
		pthread_mutex_unlock(&e->op);
		pthread_mutex_lock(&t->lock);
		e->vmm_gone = false;
		pthread_mutex_unlock(&t->lock);
		ternd_put(t, e);
	}
}

int main(int argc, char **argv)
{
	static struct ternd t;
	static struct mgmt_listener rw = { &t, false }, ro = { &t, true };
	struct tls_creds *tls = NULL;
	struct opts o;
	char path[4200], err[1024];
	gid_t gid = (gid_t)-1;
	sigset_t sigs;
	pthread_t th;
	int lock_fd, sig, ready[2] = { -1, -1 };

	log_set_program("ternd");
	parse(argc, argv, &o);
	log_set_level(o.level);
	if (o.group) {
		struct group *g = getgrnam(o.group);
		if (!g)
			die_usage("--group: no group named '%s'", o.group);
		gid = g->gr_gid;
	} else {
		struct group *g = getgrnam("tern");
		gid = g ? g->gr_gid : (gid_t)-1;
	}
	/* Before anything starts: a missing certificate is the user's to fix (exit 2). */
	if (o.listen_tls &&
	    tls_creds_load(&tls, TLS_SERVER, o.tls_dir ? o.tls_dir : TLS_DEFAULT_DIR, err,
			   sizeof(err)))
		die_usage("--tls-dir: %s (docs/ternd.md, \"Remote management over TLS\", shows how "
			  "to make the certificates)",
			  err);
	/* --tls-dir alone: a host that only sends migrations needs its client certificate. */
	if (o.tls_dir && !o.listen_tls) {
		struct tls_creds *client;
		if (tls_creds_load(&client, TLS_CLIENT, o.tls_dir, err, sizeof(err)))
			die_usage("--tls-dir: %s (migrations to another host need this ternd's "
				  "client certificate; docs/ternd.md)",
				  err);
		tls_creds_free(client);
	}
	if (mkdir(o.state_dir, 0755) && errno != EEXIST)
		die("cannot make the state directory %s: %s", o.state_dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/ternd.lock", o.state_dir);
	if ((lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		die("%s: %s", path, strerror(errno));
	if (flock(lock_fd, LOCK_EX | LOCK_NB)) {
		char pid[32] = "?";
		ssize_t n = pread(lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 1] = 0;
		pid[strcspn(pid, "\n")] = 0;
		die("another ternd (pid %s) runs on %s: one ternd per state directory", pid,
		    o.state_dir);
	}
	if (!o.foreground) {
		/* The parent returns once the sockets are ready (systemd's Type=forking). */
		if (pipe2(ready, O_CLOEXEC))
			die("pipe: %s", strerror(errno));
		pid_t p = fork();
		if (p < 0)
			die("fork: %s", strerror(errno));
		if (p > 0) {
			char ok = 0;
			close(ready[1]);
			_exit(read(ready[0], &ok, 1) == 1 && ok == 1 ? 0 : 1);
		}
		close(ready[0]);
		setsid();
		snprintf(path, sizeof(path), "%s/ternd.log", o.state_dir);
		if (log_set_file(path, err, sizeof(err)))
			die("%s", err);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
		/* The lock came from before the fork: it is this process's now. */
		if (flock(lock_fd, LOCK_EX | LOCK_NB))
			die("lost the state directory's lock");
	}
	if (ftruncate(lock_fd, 0) == 0)
		dprintf(lock_fd, "%d\n", getpid());

	t.state_dir = strdup(o.state_dir);
	t.tls_dir = strdup(o.tls_dir ? o.tls_dir : TLS_DEFAULT_DIR);
	t.vmm_path = o.vmm ? strdup(o.vmm) : beside_self("tern-vmm");
	t.monitor_path = o.monitor ? strdup(o.monitor) : beside_self("tern-monitor");
	t.start_timeout_ms = (int)o.start_timeout_s * 1000;
	t.uid_first = o.uid_first;
	t.uid_count = o.uid_count;
	pthread_mutex_init(&t.lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_cond_init(&t.changed, &ca);
	}
	for (const char *p = t.vmm_path; p; p = p == t.vmm_path ? t.monitor_path : NULL)
		if (access(p, X_OK))
			die("%s: %s (--vmm and --monitor name them)", p, strerror(errno));
	snprintf(path, sizeof(path), "%s/ternd.db", o.state_dir);
	if (store_open(&t.store, path, err, sizeof(err)))
		die("%s", err);
	if (ternd_load(&t, err, sizeof(err)))
		die("%s", err);
	vmjail_release_stale(&t);
	t.cgroup = setup_cgroup(o.cgroup);
	t.limits_off = enable_limits(t.cgroup);
	if ((t.watch_fd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll: %s", strerror(errno));
	/* Signals go to the main thread's sigwait, not to the workers. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&th, NULL, run_watch_thread, &t))
		die("cannot start a thread");
	run_reconcile(&t);
	snprintf(path, sizeof(path), "%s/ternd.sock", o.state_dir);
	if (server_start(&rw, path, gid != (gid_t)-1 ? 0660 : 0600, gid, err, sizeof(err)))
		die("%s", err);
	snprintf(path, sizeof(path), "%s/ternd-ro.sock", o.state_dir);
	if (server_start(&ro, path, 0666, (gid_t)-1, err, sizeof(err)))
		die("%s", err);
	log_info("serving %s/ternd.sock (state in %s, cgroup %s)", o.state_dir, o.state_dir,
		 t.cgroup ? t.cgroup : "none");
	if (t.uid_count)
		log_info("VMs run jailed, each under a uid of %u-%u", (unsigned int)t.uid_first,
			 (unsigned int)(t.uid_first + t.uid_count - 1));
	else
		log_info("VMs run unjailed (--vm-uids off, or ternd is not root)");
	if (tls) {
		if (server_start_tls(&rw, &o.tls_addr, tls, err, sizeof(err)))
			die("--listen-tls: %s", err);
		log_info("serving TLS on %s (certificates in %s)",
			 hostport_text(&o.tls_addr, path, sizeof(path)),
			 o.tls_dir ? o.tls_dir : TLS_DEFAULT_DIR);
	}
	if (ready[1] >= 0) {
		char ok = 1;
		if (write(ready[1], &ok, 1) < 0)
			log_warn("cannot tell the starting process: %s", strerror(errno));
		close(ready[1]);
	}
	autostart(&t);
	do
		sig = 0;
	while (sigwait(&sigs, &sig) || sig == SIGHUP);
	log_info("stopping on signal %d; the VMs keep running", sig);
	/* The VMs belong to their monitors: nothing to stop. The sockets go with ternd. */
	snprintf(path, sizeof(path), "%s/ternd.sock", o.state_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ternd-ro.sock", o.state_dir);
	unlink(path);
	return 0;
}
