/* The command line a VM restarted by its guest (--on-reboot restart) runs again. */
#ifndef TERN_VMM_RESTART_ARGS_H
#define TERN_VMM_RESTART_ARGS_H

#include <stddef.h>

#include "vmm/config.h"

/*
 * argv as it was, but with each drive that moved onto another image while the VM ran
 * (PATCH /drives, disk_swap.h) given its new path and format in its --disk value: the
 * restarted VM boots what the guest last wrote, never the image a snapshot froze under
 * an overlay. A moved drive that came from the API or a config file has no --disk to
 * change: NULL and err then (the VM must not restart on its old image). The strings
 * replaced are new allocations, the rest argv's own.
 */
char **restart_args(int argc, char **argv, const struct vmm_config *cfg, char *err, size_t n);

#endif
