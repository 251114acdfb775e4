/*
 * tern-monitor's run: starts PROGRAM (tern-vmm) on pipes, holds its console (logged,
 * served on console.sock), logs its stderr, writes the pid file, and writes the status
 * file once PROGRAM is gone (docs/ternd.md). Single-threaded, on one epoll loop.
 */
#ifndef TERN_MONITOR_MONITOR_H
#define TERN_MONITOR_MONITOR_H

#include <stdint.h>

struct monitor_opts {
	const char *dir;
	const char *status_vmm; /* NULL: DIR/status.vmm */
	uint64_t log_size;
	unsigned int log_keep;
	char **argv; /* PROGRAM and its arguments, NULL-terminated */
};

/*
 * Runs PROGRAM to its end. Returns the monitor's exit status: 0 once PROGRAM ran and the
 * status file is written, 1 when PROGRAM could not be started (the status file then says
 * why, unless DIR belongs to another live monitor).
 */
int monitor_run(const struct monitor_opts *o);

#endif
