/*
 * How a run of tern-vmm ended, on disk (docs/ternd.md, "The status file"):
 *  - status.vmm: {"reason", "exit_status", "message"}, written by tern-vmm itself
 *    (--status-file) just before it exits for a reason it knows;
 *  - status: written by tern-monitor once tern-vmm is gone, from status.vmm when there is
 *    one and from waitpid() otherwise, with the console's last lines.
 * Both are written atomically (a temporary file, fsync, rename), so a reader sees the
 * whole file or none.
 */
#ifndef TERN_MONITOR_RUN_STATUS_H
#define TERN_MONITOR_RUN_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#define RUN_STATUS_MESSAGE_MAX 1024

/* What tern-vmm said in status.vmm. */
struct run_status_vmm {
	char reason[16]; /* poweroff, reboot, crash, debug-exit or error */
	int exit_status;
	char message[RUN_STATUS_MESSAGE_MAX];
};

/* What the monitor knows when PROGRAM is gone. */
struct run_status_in {
	bool ran; /* PROGRAM was forked and reaped: wait_status holds waitpid()'s word */
	int wait_status;
	double ended_at; /* seconds since the epoch */
	const char *program;
	const struct run_status_vmm *vmm; /* NULL: PROGRAM left no (valid) status.vmm */
	const char *failure;		  /* the monitor's own reason PROGRAM did not start */
	const char *last_log_line;	  /* PROGRAM's last line on stderr, or NULL */
	const char *const *tail;	  /* the console's last lines, oldest first */
	size_t ntail;
};

/*
 * Writes text to path through path.tmp: write, fsync, rename, then fsync the directory
 * so that the rename itself survives a crash. Mode 0600. 0 or -errno.
 */
int run_status_write_file(const char *path, const char *text);

/* status.vmm's text (malloc'ed; NULL when out of memory). */
char *run_status_format_vmm(const char *reason, int exit_status, const char *message);
#define RUN_STATUS_VMM_MAX 65536 /* bytes: a status.vmm is a few hundred */
/*
 * Reads status.vmm. 0; -ENOENT when there is none; -EINVAL when it is not one (bad JSON,
 * a field missing or of the wrong type, an unknown reason, a symlink, not a regular file,
 * larger than RUN_STATUS_VMM_MAX); other -errno from reading.
 */
int run_status_read_vmm(const char *path, struct run_status_vmm *out);

/*
 * The status file's text (malloc'ed; NULL when out of memory):
 * {"exit_status", "signal", "reason", "ended_at", "message", "console_tail"}.
 * exit_status is PROGRAM's, 128+S when signal S killed it, -1 when it never ran; reason
 * and message come from status.vmm when there is one, else "killed" (a signal) or
 * "error" with the monitor's failure, PROGRAM's last stderr line, or its exit status.
 * Strings are made valid UTF-8 (bad bytes become U+FFFD) so every JSON reader takes them.
 */
char *run_status_compose(const struct run_status_in *in);

#endif
