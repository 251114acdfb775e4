/*
 * Bridge NICs: for each `{"type": "bridge"}` NIC of a VM, ternd makes a persistent TAP,
 * attaches it to the bridge and brings it up before tern-vmm opens it by name; the TAP is
 * deleted when the VM ends. Names derive from the VM's uuid (bridge_tap_name), so a
 * ternd that restarts finds a VM's TAPs again without having stored them.
 */
#ifndef TERN_DAEMON_BRIDGE_H
#define TERN_DAEMON_BRIDGE_H

#include "daemon/vmdef.h"

#include <net/if.h>
#include <stddef.h>
#include <sys/types.h>

/* "tn" + the uuid's first 8 hex digits + "-" + the NIC's index: 12 characters. */
void bridge_tap_name(const struct vmdef *d, unsigned int nic, char out[IFNAMSIZ]);
/* Makes and attaches every bridge NIC's TAP, owned by uid when not 0 (a jailed VM's); on
 * failure removes what it made. 0 or -errno. */
int bridge_taps_create(const struct vmdef *d, uid_t uid, char *err, size_t errlen);
/* Deletes the VM's TAPs (those that exist). */
void bridge_taps_delete(const struct vmdef *d);

#endif
