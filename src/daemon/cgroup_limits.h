/*
 * A VM's cgroup v2 limits (docs/ternd.md, "Limits"): ternd writes what the definition
 * says into the VM's cgroup when it starts and when `tern set` changes it while it runs,
 * and reads back what the kernel holds for `tern info`.
 */
#ifndef TERN_DAEMON_CGROUP_LIMITS_H
#define TERN_DAEMON_CGROUP_LIMITS_H

#include <stddef.h>

#include "daemon/vmdef.h"

struct json_object;

/*
 * Turns on the cpu, memory, pids (and io, where the kernel has it) controllers for the children of /sys/fs/cgroup/SUB
 * (and of each cgroup above it, up from the root). 0, or -errno with err.
 */
int cgroup_limits_enable(const char *sub, char *err, size_t n);

/*
 * Writes cpu.max, cpu.weight, memory.max and pids.max of the cgroup at dir, and io.max
 * for the block devices under its disks (limits.disks; docs/ternd.md, "Limits").
 */
int cgroup_limits_apply(const char *dir, const struct vmdef *d, char *err, size_t n);

/* What the kernel holds at dir: the limits and the current use; NULL if it cannot read. */
struct json_object *cgroup_limits_read(const char *dir);

#endif
