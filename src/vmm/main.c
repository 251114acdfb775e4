/* tern-vmm: one process per VM. Builds the VM, runs the vCPUs, serves the console until the guest stops. */
#include "core/log.h"
#include "vmm/console.h"
#include "vmm/vm.h"

#include <errno.h>
#include <poll.h>
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

static void serve(struct vm *vm, struct console *con)
{
	for (;;) {
		struct pollfd p[2] = { { vm->stop_fd, POLLIN, 0 }, { con->in_fd, POLLIN, 0 } };
		nfds_t n = con->eof ? 1 : 2;
		int r = poll(p, n, con->pending_len ? 10 : -1);

		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (p[0].revents & POLLIN)
			return;
		if (n == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (console_input(con, &vm->serial)) {
				log_info("quit from the console (Ctrl-a x)");
				vm->stop_why = MACHINE_POWEROFF;
				return;
			}
		}
		console_flush_pending(con, &vm->serial);
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
