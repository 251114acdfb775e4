/*
 * tern-vmm: one process per VM. Takes its configuration from the command line, a config
 * file or the API, builds the VM, runs the vCPUs, and serves the console, the API and the
 * devices until the guest stops.
 */
#include "api/api.h"
#include "core/log.h"
#include "jail/jail.h"
#include "jail/seccomp.h"
#include "monitor/run_status.h"
#include "vmm/console.h"
#include "vmm/jail_paths.h"
#include "vmm/migrate.h"
#include "vmm/restart_args.h"
#include "vmm/snapshot.h"
#include "vmm/snapshot_client.h"
#include "vmm/vm.h"

#include <errno.h>
#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const stop_names[] = {
	[MACHINE_POWEROFF] = "guest powered off",
	[MACHINE_RESET] = "guest rebooted",
	[MACHINE_DEBUG_EXIT] = "guest wrote to the debug-exit port",
	[MACHINE_CRASH] = "guest crashed",
	[MACHINE_MIGRATED] = "migrated: the VM runs on at the destination",
};

/* The status file's reason for each way the guest can end (src/monitor/run_status.h). */
static const char *const stop_reasons[] = {
	[MACHINE_POWEROFF] = "poweroff",     [MACHINE_RESET] = "reboot",
	[MACHINE_DEBUG_EXIT] = "debug-exit", [MACHINE_CRASH] = "crash",
	[MACHINE_MIGRATED] = "migrated",
};

static const char *status_file; /* --status-file, or NULL */

/*
 * Written last, when the reason is known: tern-monitor, which sees only an exit status,
 * reads from it how the VM ended. A failure here is logged; the exit goes on.
 */
static void write_status(const char *reason, int exit_status, const char *message)
{
	if (!status_file)
		return;
	char *text = run_status_format_vmm(reason, exit_status, message);
	int r = text ? run_status_write_file(status_file, text) : -ENOMEM;
	if (r)
		log_error("--status-file: cannot write '%s': %s", status_file, strerror(-r));
	free(text);
}

/* A failure of tern-vmm once the VM runs: as die(), and the status file says so. */
static noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_status("error", 1, msg);
	die("%s", msg);
}

struct serve_state {
	struct vm *vm;
	struct console *con;
	bool done;
	int retry_fd; /* timer retrying console input the UART had no room for */
	bool retry_armed;
};

/*
 * The retry timer ticks (every 10 ms) only while input is held back. Left running, it
 * woke this thread 100 times a second for the whole life of every VM, idle ones too:
 * in the lab that was 3.3-3.5 % of a CPU of an idle tern-vmm's 4.7-5.7 %, 3.3x an idle
 * QEMU; disarmed when nothing waits, 1.0x (bench/idle_cpu).
 */
static void retry_update(struct serve_state *st)
{
	bool want = st->con->pending_len != 0;
	struct itimerspec its = { 0 };

	if (want == st->retry_armed)
		return;
	if (want)
		its.it_value = its.it_interval = (struct timespec){ 0, 10000000 };
	if (timerfd_settime(st->retry_fd, 0, &its, NULL) == 0)
		st->retry_armed = want;
}

static void on_stop(void *opaque, uint32_t events)
{
	struct serve_state *st = opaque;

	st->done = true;
}

static void on_retry(void *opaque, uint32_t events)
{
	struct serve_state *st = opaque;
	uint64_t n;

	if (read(st->retry_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	console_flush_pending(st->con, &st->vm->serial);
	retry_update(st);
}

static void on_console(void *opaque, uint32_t events)
{
	struct serve_state *st = opaque;

	if (console_input(st->con, &st->vm->serial)) {
		log_info("quit from the console (Ctrl-a x)");
		st->vm->stop_why = MACHINE_POWEROFF;
		st->done = true;
		return;
	}
	if (st->con->eof)
		loop_del(st->vm->loop, st->con->in_fd);
	retry_update(st);
}

static void serve(struct vm *vm, struct console *con)
{
	struct serve_state st = { .vm = vm, .con = con };

	if (loop_add_service(vm->loop, vm->stop_fd, EPOLLIN, on_stop, &st) < 0)
		fail("event loop: cannot watch the stop signal");
	/* stdin may be /dev/null or a file, which epoll refuses: then there is no input. */
	if (loop_add(vm->loop, con->in_fd, EPOLLIN, on_console, &st) < 0)
		log_debug("console input not watched (stdin is not pollable)");
	st.retry_fd = loop_add_timer(vm->loop, 0, 0, on_retry, &st, false); /* disarmed */
	if (st.retry_fd < 0)
		fail("event loop: cannot create a timer");
	while (!st.done) {
		int r = loop_run_once(vm->loop, -1);
		if (r < 0)
			fail("event loop: %s", strerror(-r));
	}
}

static struct vm vm;
static struct console con;

/*
 * The command line the guest gets: boot_args (tern's default if none) plus, as
 * Firecracker, the root device when a drive is marked is_root_device. That drive is
 * moved first so that it is /dev/vda.
 */
static char *compose_root(struct vmm_config *c, const char *boot_args)
{
	const char *args = boot_args ? boot_args : "console=ttyS0";
	size_t len = strlen(args) + DISK_PARTUUID_MAX + 64;
	char *s = malloc(len);

	if (!s)
		die("out of memory");
	snprintf(s, len, "%s", args);
	for (unsigned int i = 0; i < c->ndisks; i++) {
		struct disk_config d = c->disks[i];
		if (!d.root)
			continue;
		memmove(&c->disks[1], &c->disks[0], i * sizeof(d));
		c->disks[0] = d;
		if (d.partuuid[0])
			snprintf(s + strlen(s), len - strlen(s), " root=PARTUUID=%s", d.partuuid);
		else
			snprintf(s + strlen(s), len - strlen(s), " root=/dev/vda");
		snprintf(s + strlen(s), len - strlen(s), " %s", d.readonly ? "ro" : "rw");
		break;
	}
	return s;
}

/* What the command line asks a restore to change: identity, dirty logging, drives' images. */
static void restore_overrides_of(const struct vmm_config *c, struct restore_overrides *o)
{
	memset(o, 0, sizeof(*o));
	o->clone = c->clone;
	o->track_dirty = c->track_dirty;
	o->ndisks = c->nrestore_disks;
	memcpy(o->disks, c->restore_disks, sizeof(o->disks)); /* the paths stay the config's */
}

/* Builds and starts the VM from the API's configuration (InstanceStart or at once). */
static int boot(struct api *a, char *err, size_t errlen)
{
	struct vmm_config c = a->cfg;

	struct boot_inputs in;

	/* First: the kernel's placement reads it ("nokaslr"). */
	c.cmdline = compose_root(&c, a->boot_args);
	if (boot_inputs_load(&c,
			     a->started_by_api || c.config_file ? &boot_names_api : &boot_names_cli,
			     &in, err, errlen)) {
		free((char *)c.cmdline);
		return -EINVAL;
	}
	/* A disk another VM holds would only fail once the machine is half built. */
	for (unsigned int i = 0; i < c.ndisks; i++) {
		if (disk_lock_holder(c.disks[i].path, c.disks[i].readonly) == 1) {
			boot_inputs_free(&in);
			free((char *)c.cmdline);
			return fail_msg(err, errlen, -EINVAL,
					"drive '%s': '%s' is in use by another process (another "
					"tern-vmm?)",
					c.disks[i].id, c.disks[i].path);
		}
	}
	/* RAM first: a host without the huge pages asked for is a 400, not an exit. */
	static struct guest_mem ram;
	if (vm_ram_create(&ram, &c, err, errlen)) {
		boot_inputs_free(&in);
		free((char *)c.cmdline);
		return -EINVAL;
	}
	vm_create(&vm, &c, a->loop, &in, &(struct vm_restore_mem){ .mem = &ram });
	console_init(&con, STDIN_FILENO);
	vm_start(&vm);
	api_started(a, &vm);
	return 0;
}

/*
 * --restore under --jail: the state file as enter_jail() read and checked it (the jail is
 * built for what it names), taken by the first restore(). buf is NULL otherwise.
 */
static struct snapshot_load jail_load;

/*
 * Loads a snapshot into this process (PUT /snapshot/load or --restore). Everything that
 * can be checked without building is checked first (a 400, or exit 2, and nothing
 * started); a refusal from KVM or a device while loading ends the process with status 2.
 */
static int restore(struct api *a, const char *state, const char *mem,
		   const struct restore_overrides *o, bool resume, char *err, size_t errlen)
{
	static struct snapshot_load l;

	if (jail_load.buf) {
		/* --restore under --jail: read and checked before the jail was built. */
		l = jail_load;
		jail_load = (struct snapshot_load){ 0 };
	} else if (snapshot_load_prepare(&l, state, mem, &a->cfg, o, err, errlen)) {
		snapshot_load_free(&l);
		return -EINVAL;
	}
	if (snapshot_load_apply(&l, &vm, a->loop, mem, err, errlen)) {
		if (l.built)
			die_usage("cannot restore '%s': %s", state, err);
		/* No RAM of the kind asked for: nothing was built, the API may try again. */
		snapshot_load_free(&l);
		return -EINVAL;
	}
	/* What GET /vm/config reports from now on is the restored machine. */
	a->cfg = l.cfg;
	snapshot_load_free(&l);
	console_init(&con, STDIN_FILENO);
	if (resume) {
		vm_start(&vm);
		snapshot_resume_devices(&vm);
	} else {
		vm_start_paused(&vm);
	}
	api_started(a, &vm);
	log_info("restored %s%s%s", state, o->clone ? " as a clone" : "",
		 resume ? "" : " (paused)");
	return 0;
}

/*
 * Be a live migration's destination (--incoming or PUT /migrate/incoming). A migration
 * that fails here ends this process (status 1): the source runs on, and nothing is left.
 */
static void incoming(struct api *a, const char *uri, const struct restore_overrides *o)
{
	char err[600];

	console_init(&con, STDIN_FILENO);
	if (migrate_incoming(a, &vm, uri, o, err, sizeof(err)))
		fail("incoming migration failed: %s", err);
	api_started(a, &vm);
}

/*
 * An overlay's bitmap and a qcow2 image's tables say where its data is; the guest's last
 * writes stay visible to the next user of the file only once they are written back, as a
 * raw image's writes are through the page cache. (A killed tern-vmm loses what was not
 * flushed; qcow2 keeps the file consistent either way.)
 */
static void flush_overlays(struct vm *m)
{
	for (unsigned int i = 0; i < VMM_MAX_DISKS; i++) {
		struct virtio_blk *b = m->blk[i];
		int r;
		if (b && (b->disk.ovl || b->disk.qcow) && !b->disk.readonly &&
		    (r = disk_flush_now(&b->disk)))
			log_error("%s: cannot write back the %s image's tables: %s",
				  b->dev.ops->name, disk_format_name(b->disk.format), strerror(-r));
	}
}

/*
 * --jail: done first, while this is the only thread and nothing is open. A restart under
 * --on-reboot restart is already inside (and can no longer build one).
 */
static void enter_jail(struct vmm_config *c)
{
	struct jail_entries s;
	char err[600];

	if (jail_inherited(&c->jail))
		return;
	c->jail.hostname = c->id ? c->id : "tern-vmm";
	c->jail.supervisor_filter = c->seccomp == SECCOMP_OFF ? 0 :
				    c->seccomp == SECCOMP_LOG ? (int)SCMP_ACT_LOG :
								(int)SCMP_ACT_KILL_PROCESS;
	if (c->clone)
		die_usage(
			"--jail: --clone makes overlay files beside the snapshot's disks, which "
			"the jail cannot hold before they exist; restore the clone without --jail");
	/*
	 * A snapshot's disks, NICs and vsock socket are in its state file, not on the line.
	 * What is read here is what restore() builds the VM from, inside the jail.
	 */
	const struct vmm_config *what = c;
	if (c->restore_state) {
		static struct restore_overrides o; /* large: not on the stack */
		restore_overrides_of(c, &o);
		o.clone = false; /* refused above */
		if (snapshot_load_prepare(&jail_load, c->restore_state, c->restore_mem, c, &o, err,
					  sizeof(err)))
			die_usage("--restore: %s", err);
		what = &jail_load.cfg;
	}
	int r = jail_paths_collect(what, &s, err, sizeof(err));
	if (r == -EINVAL)
		die_usage("--jail: %s", err);
	if (r || jail_enter(&c->jail, &s, err, sizeof(err)))
		die("--jail: %s", err);
	log_info("jailed: uid %u, gid %u, %u paths", (unsigned int)c->jail.uid,
		 (unsigned int)c->jail.gid, s.n);
	jail_entries_free(&s);
}

int main(int argc, char **argv)
{
	struct vmm_config cfg;
	static struct api api;
	char err[320];

	config_parse(&cfg, argc, argv);
	log_set_level(cfg.log_level);
	status_file = cfg.status_file;
	if (cfg.snapshot_to)
		return snapshot_client(cfg.api_sock, cfg.snapshot_to);
	if (cfg.create_overlay) {
		int r = config_create_overlay(cfg.create_overlay, err, sizeof(err));
		if (r == -ENOSPC || r == -EIO)
			die("%s", err);
		if (r)
			die_usage("--create-overlay: %s", err);
		return 0;
	}
	if (cfg.describe_snapshot) {
		if (snapshot_describe(cfg.describe_snapshot, stdout, err, sizeof(err)))
			die_usage("--describe-snapshot: %s", err);
		return 0;
	}
	if (cfg.jail.on)
		enter_jail(&cfg);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A write or ftruncate past RLIMIT_FSIZE (--jail fsize_mib) fails with EFBIG instead:
	 * the guest's disk gets an I/O error, a resize a 400, and the VMM lives on.
	 */
	signal(SIGXFSZ, SIG_IGN);
	if (seccomp_init_process(cfg.seccomp, cfg.on_reboot == ON_REBOOT_RESTART, err, sizeof(err)))
		die("--seccomp: %s", err);
	if (cfg.seccomp == SECCOMP_OFF)
		log_warn("--seccomp off: no system-call filter; a guest that takes over tern-vmm "
			 "can make any call this user may (unsafe: for debugging only)");
	struct loop *loop = loop_create();
	if (!loop)
		die("cannot create the event loop: %s", strerror(errno));
	api_init(&api, loop, &cfg, boot);
	api.restore = restore;
	if (cfg.config_file)
		api_config_file(&api, cfg.config_file);
	if (cfg.api_sock) {
		int r = api_serve(&api, cfg.api_sock, err, sizeof(err));
		if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
			die("--api-sock: %s", err);
		if (r)
			die_usage("--api-sock: %s", err);
	}
	if (cfg.incoming) {
		struct restore_overrides o = { 0 };
		incoming(&api, cfg.incoming, &o);
	} else if (cfg.restore_state) {
		static struct restore_overrides o;
		restore_overrides_of(&cfg, &o);
		if (restore(&api, cfg.restore_state, cfg.restore_mem, &o, !cfg.restore_paused, err,
			    sizeof(err)))
			die_usage("--restore: %s", err);
	} else if (api.cfg.kernel && !api.started) {
		if (boot(&api, err, sizeof(err)))
			die_usage("%s", err);
	} else {
		api.started_by_api = true;
		log_info("waiting for the API: configure the VM, then PUT /actions InstanceStart");
		while (!api.started && !api.incoming) {
			int r = loop_run_once(loop, -1);
			if (r < 0)
				die("event loop: %s", strerror(-r));
		}
		if (api.incoming)
			incoming(&api, api.incoming, &api.incoming_ov);
	}
	/* Set-up is over (the VM runs, every thread of its own has its list): the loop's. */
	seccomp_enter_or_die(SECCOMP_VMM);
	serve(&vm, &con);
	if (api.metrics_on)
		metrics_flush(&api.metrics, &vm);

	atomic_store(&vm.stopping, 1);
	if (vm.software_kvm)
		swkvm_log_stats(&vm.swkvm);
	for (unsigned int i = 0; i < VMM_MAX_NETS; i++) {
		const struct virtio_net *n = vm.net[i];
		if (n)
			log_debug("%s: rx %llu frames %llu bytes (%llu dropped, %llu stalls), tx "
				  "%llu frames %llu bytes (%llu dropped, %llu errors)",
				  n->ops.name, n->stats.rx_frames, n->stats.rx_bytes,
				  n->stats.rx_dropped, n->stats.rx_stalls, n->stats.tx_frames,
				  n->stats.tx_bytes, n->stats.tx_dropped, n->stats.tx_errors);
	}
	serial_flush(&vm.serial); /* the guest's last words before the VMM's */
	log_info("%s", stop_names[vm.stop_why]);
	/* After a migration the disks are the destination's: nothing more is written here. */
	if (vm.stop_why != MACHINE_MIGRATED)
		flush_overlays(&vm);
	if (vm.stop_why == MACHINE_RESET && cfg.on_reboot == ON_REBOOT_RESTART) {
		/* A fresh process is the cleanest reset: every device and vCPU starts over. */
		console_restore();
		char **again = restart_args(argc, argv, &vm.cfg, err, sizeof(err));
		if (!again)
			fail("cannot restart: %s", err);
		seccomp_before_restart();
		execv("/proc/self/exe", again);
		fail("cannot restart: %s", strerror(errno));
	}
	fflush(stdout);
	write_status(stop_reasons[vm.stop_why], vm_exit_status(&vm), stop_names[vm.stop_why]);
	console_restore();
	/* vCPU threads may still be inside KVM_RUN; _exit does not wait for them. */
	_exit(vm_exit_status(&vm));
}
