/*
 * A restored VM's new identity (--clone, "tern_clone" in /snapshot/load): what two copies
 * of one snapshot must not share.
 */
#ifndef TERN_VMM_CLONE_H
#define TERN_VMM_CLONE_H

#include <stddef.h>

#include "vmm/config.h"

/*
 * New random MACs; a new random vsock CID and, unless keep_vsock_path, the socket path
 * with ".PID" appended; each writable disk replaced by a copy-on-write copy next to it,
 * "IMAGE.clone-PID": a reflink where the file system has them, else an overlay in front
 * of IMAGE (disk_overlay.h), which IMAGE must stay unchanged for, so an IMAGE another
 * process holds for writing is refused. A disk that is already an overlay is copied
 * (only what was written). Read-only disks are shared. 0 or -errno + err.
 */
int clone_identity(struct vmm_config *c, bool keep_vsock_path, char *err, size_t errlen);

#endif
