/* A running VM's disk grown: by tern, or on the host, and the guest told its new size. */
#ifndef TERN_VMM_DISK_RESIZE_H
#define TERN_VMM_DISK_RESIZE_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* The largest size asked of vm_disk_grow (qcow2's own limit; a raw file stops earlier). */
#define VM_DISK_SIZE_MAX (1ULL << 55)

/*
 * Gives disk i of a running VM a larger size and tells the guest (a configuration change
 * interrupt), as QEMU's block_resize and Firecracker's PATCH /drives after a resize:
 * - size 0: the size of the image is read again (a raw file or block device grown on the
 *   host with truncate, fallocate or lvextend);
 * - size > 0 (a multiple of 512): tern grows the image to it, a raw file with ftruncate
 *   (sparse), a qcow2 image through qcow2_resize() (its header and L1 table).
 * The same size is a no-op. Refused, nothing changed: a smaller size (a disk in use does
 * not shrink), a read-only disk, a tern overlay, a block device given a size (it grows
 * with its own tools), a qcow2 image without one (its size is in its header), and any
 * resize while a migration is under way. 0 or -EINVAL with err.
 */
int vm_disk_grow(struct vm *vm, unsigned int i, uint64_t size, char *err, size_t n);

#endif
