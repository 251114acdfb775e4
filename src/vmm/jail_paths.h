/* What goes into tern-vmm's jail, from its configuration (jail_paths.c). */
#ifndef TERN_VMM_JAIL_PATHS_H
#define TERN_VMM_JAIL_PATHS_H

#include "jail/jail.h"
#include "vmm/config.h"

/* Fills s from c (and c->jail's binds). 0, or -errno with err set and s empty. */
int jail_paths_collect(const struct vmm_config *c, struct jail_entries *s, char *err, size_t n);

#endif
