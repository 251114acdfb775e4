/*
 * Landlock (Linux 5.13 and later): the jail's second wall on paths. Even if a bind mount
 * were wrong, the jailed process may open only the entries it was given, each only as its
 * kind allows (read, map and execute, write, create in a directory).
 */
#ifndef TERN_JAIL_LANDLOCK_H
#define TERN_JAIL_LANDLOCK_H

#include "jail/jail.h"

#include <stddef.h>

/*
 * Restricts this process (and what it starts) to the entries, plus reading /proc. Needs
 * no_new_privs. Returns the Landlock ABI version used (1 or more), -EOPNOTSUPP when the
 * kernel has no Landlock (too old, or not among its LSMs), or another -errno with err set.
 */
int landlock_restrict(const struct jail_entries *s, char *err, size_t n);

#endif
