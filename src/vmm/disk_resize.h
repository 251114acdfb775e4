/* A running VM's disk that grew on the host: the guest is told its new size. */
#ifndef TERN_VMM_DISK_RESIZE_H
#define TERN_VMM_DISK_RESIZE_H

#include <stddef.h>

struct vm;

/*
 * Reads the size of disk i's image again (a raw file or a block device that was grown
 * with truncate, fallocate or lvextend) and, if it grew, gives the guest the new capacity
 * (Firecracker's PATCH /drives with the same path_on_host, QEMU's block_resize of an image
 * grown outside). A smaller image, a qcow2 image or an overlay (their size is in their
 * header, which only `tern img resize` changes while no VM uses them), a migration under
 * way: refused, nothing changed. 0 or -EINVAL with err.
 */
int vm_disk_rescan(struct vm *vm, unsigned int i, char *err, size_t n);

#endif
