/*
 * Whole-file copies of disk images: a reflink where the file system shares blocks
 * (btrfs, XFS), else a sparse copy (holes stay holes). Used by tern-vmm's clones and by
 * ternd's snapshots and clones.
 */
#ifndef TERN_BACKEND_DISK_COPY_H
#define TERN_BACKEND_DISK_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Makes to (which must not exist) a reflink of from; false (and no to) where the file
 * system cannot. TERN_CLONE_NO_REFLINK=1 makes it always false, so tests see the
 * fallback on any file system.
 */
bool disk_reflink(const char *from, const char *to);

/*
 * Copies from to to (which must not exist): a reflink when possible, else the data
 * extents only, then fsync. On failure to is removed. 0 or -errno with err naming the file.
 */
int disk_copy(const char *from, const char *to, char *err, size_t n);

/*
 * disk_copy, calling progress(opaque, bytes) as data is copied (a reflink counts all of
 * disk_copy_bytes(from) at once).
 */
int disk_copy_cb(const char *from, const char *to, void (*progress)(void *, uint64_t), void *opaque,
		 char *err, size_t n);
/* What disk_copy of path copies: the bytes in its data extents; 0 when it cannot tell. */
uint64_t disk_copy_bytes(const char *path);

#endif
