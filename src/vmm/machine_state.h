/*
 * The MACHINE section of a snapshot: the configuration a VM was built from (vCPUs, RAM,
 * CPU template, transport, every device with its backend), so that a fresh tern-vmm can
 * build the same machine before it loads the saved state into it. Restore may override
 * backends (network_overrides, vsock_override, clones) but not the shape of the machine.
 */
#ifndef TERN_VMM_MACHINE_STATE_H
#define TERN_VMM_MACHINE_STATE_H

#include <stdio.h>

#include "vmm/config.h"
#include "vmstate/vmstate.h"

/* 2: each disk's format (raw or overlay) */
#define MACHINE_STATE_VERSION 2

void machine_state_save(const struct vmm_config *c, struct vmstate_writer *w);
/*
 * Fills out (disk paths malloc'd) from a MACHINE payload, checking every value as the
 * command line would. 0 or -EINVAL + err.
 */
int machine_state_restore(struct vmm_config *out, struct vmstate_cursor *cur, char *err,
			  size_t errlen);
/* Prints a MACHINE payload for --describe-snapshot. */
void machine_state_describe(const struct vmm_config *c, FILE *out);

#endif
