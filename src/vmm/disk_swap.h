/* A running VM's drive moved onto another image (Firecracker's PATCH /drives path_on_host). */
#ifndef TERN_VMM_DISK_SWAP_H
#define TERN_VMM_DISK_SWAP_H

#include <stddef.h>

#include "backend/disk.h"

struct vm;

/*
 * Puts disk i of a started VM on the image at path, opened as format (AUTO probes it)
 * with the drive's other settings (read-only, cache, engine, L2 cache): the image a
 * Firecracker user swaps in with PATCH /drives, and the way a snapshot moves a disk onto
 * a qcow2 overlay of its image (QEMU's blockdev-snapshot-sync). A running VM is paused
 * for it and resumed after; the guest's requests in flight finish on the old image,
 * which is flushed and closed, and those that come after go to the new one. A new size
 * is given to the guest as a grown disk is (a configuration change interrupt).
 *
 * When the new image cannot be opened (missing, locked by another VM, a bad header, a
 * chain that does not resolve) the old one is opened again and err says why: the guest
 * goes on as before. Only if that too fails is the device left without a disk (its
 * requests fail, it asks for a reset) and err says so. Refused before anything changes:
 * a migration under way, a disk still unlocked (a migration's destination before the
 * switch-over). 0 or -EINVAL with err.
 */
int vm_disk_swap(struct vm *vm, unsigned int i, const char *path, enum disk_format format,
		 char *err, size_t n);

#endif
