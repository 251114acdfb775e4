/*
 * "saving web... 12s" on stderr while a long request waits, when stderr is a terminal
 * (nothing otherwise: logs and pipes get only the outcome). A thread redraws the line
 * twice a second; with a VM to follow it asks ternd how far the operation is
 * (GET /vms/NAME/job) and draws a bar when the total is known, else the bytes written.
 * progress_stop erases the line before the outcome is printed.
 */
#ifndef TERN_CLI_PROGRESS_H
#define TERN_CLI_PROGRESS_H

#include <stddef.h>

struct progress;
struct cli;

/*
 * Starts showing what ("saving web"), following the job of VM vm through c (vm NULL:
 * elapsed time only); NULL when stderr is not a terminal (a no-op).
 */
struct progress *progress_start_job(const struct cli *c, const char *what, const char *vm);
void progress_stop(struct progress *p);

/*
 * The line for what, secs seconds in, done of total bytes (total 0: unknown, done 0:
 * nothing to say): "cloning web [#####     ] 45% 120/260 MiB 12s",
 * "saving web... 100 MiB written, 12s" or "saving web... 12s". Into buf (n bytes).
 */
void progress_format(char *buf, size_t n, const char *what, long secs, long long done,
		     long long total);

#endif
