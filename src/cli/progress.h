/*
 * "saving web... 12s" on stderr while a long request waits, when stderr is a terminal
 * (nothing otherwise: logs and pipes get only the outcome). A thread redraws the line
 * every second; progress_stop erases it before the outcome is printed.
 */
#ifndef TERN_CLI_PROGRESS_H
#define TERN_CLI_PROGRESS_H

struct progress;

/* Starts showing what ("saving web"); NULL when stderr is not a terminal (a no-op). */
struct progress *progress_start(const char *what);
void progress_stop(struct progress *p);

#endif
