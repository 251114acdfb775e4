/*
 * The pid file: "MONITOR_PID MONITOR_START VMM_PID VMM_START\n". START is field 22 of
 * /proc/PID/stat (clock ticks since boot), so whoever checks a pid later can tell the
 * process it names from another that got the same pid since.
 */
#ifndef TERN_MONITOR_PID_FILE_H
#define TERN_MONITOR_PID_FILE_H

#include <sys/types.h>

/* Field 22 of a /proc/PID/stat line (its comm may hold spaces and ')'). 0 or -EINVAL. */
int pid_file_parse_start(const char *stat, unsigned long long *start);
/* The start time of a live process. 0 or -errno (-ESRCH once it is gone). */
int pid_file_start_time(pid_t pid, unsigned long long *start);
/* Writes the pid file atomically (run_status_write_file). 0 or -errno. */
int pid_file_write(const char *path, pid_t monitor, pid_t vmm);

#endif
