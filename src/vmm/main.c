/* tern-vmm: one process per VM. Builds the VM, runs the vCPUs, serves the console until the guest stops. */
#include "core/log.h"
#include "vmm/console.h"
#include "vmm/vm.h"

#include <errno.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const stop_names[] = {
	[MACHINE_POWEROFF] = "guest powered off",
	[MACHINE_RESET] = "guest rebooted",
	[MACHINE_DEBUG_EXIT] = "guest wrote to the debug-exit port",
	[MACHINE_CRASH] = "guest crashed",
};

struct serve_state {
	struct vm *vm;
	struct console *con;
	bool done;
	int retry_fd; /* timer retrying console input the UART had no room for */
};

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
}

static void serve(struct vm *vm, struct console *con)
{
	struct serve_state st = { .vm = vm, .con = con };

	if (loop_add(vm->loop, vm->stop_fd, EPOLLIN, on_stop, &st) < 0)
		die("event loop: cannot watch the stop signal");
	/* stdin may be /dev/null or a file, which epoll refuses: then there is no input. */
	if (loop_add(vm->loop, con->in_fd, EPOLLIN, on_console, &st) < 0)
		log_debug("console input not watched (stdin is not pollable)");
	st.retry_fd = loop_add_timer(vm->loop, 10000000, 10000000, on_retry, &st);
	if (st.retry_fd < 0)
		die("event loop: cannot create a timer");
	while (!st.done) {
		int r = loop_run_once(vm->loop, -1);
		if (r < 0)
			die("event loop: %s", strerror(-r));
	}
}

int main(int argc, char **argv)
{
	struct vmm_config cfg;
	static struct vm vm;
	struct console con;

	config_parse(&cfg, argc, argv);
	log_set_level(cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	vm_create(&vm, &cfg);
	console_init(&con, STDIN_FILENO);
	vm_start(&vm);
	serve(&vm, &con);

	atomic_store(&vm.stopping, 1);
	if (vm.software_kvm)
		swkvm_log_stats(&vm.swkvm);
	log_info("%s", stop_names[vm.stop_why]);
	if (vm.stop_why == MACHINE_RESET && cfg.on_reboot == ON_REBOOT_RESTART) {
		/* A fresh process is the cleanest reset: every device and vCPU starts over. */
		console_restore();
		execv("/proc/self/exe", argv);
		die("cannot restart: %s", strerror(errno));
	}
	fflush(stdout);
	console_restore();
	/* vCPU threads may still be inside KVM_RUN; _exit does not wait for them. */
	_exit(vm_exit_status(&vm));
}
