/*
 * The jail's last step before Landlock: rlimits, inherited fds closed, the per-VM uid and
 * gid with no capabilities left anywhere (effective, permitted, inheritable, ambient,
 * bounding), securebits locked, no_new_privs.
 */
#ifndef TERN_JAIL_JAIL_CREDS_H
#define TERN_JAIL_JAIL_CREDS_H

#include "jail/jail.h"

#include <stddef.h>

/* keep_fd is one more fd to leave open (the supervisor's report pipe). 0 or -errno + err. */
int jail_drop_privileges(const struct jail_config *c, const struct jail_entries *s, int keep_fd,
			 char *err, size_t n);

#endif
