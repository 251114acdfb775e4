/*
 * Image files handed in already open (PUT /files: descriptors over the API's Unix socket).
 *
 * A jailed tern-vmm sees only the files its jail was built with. When ternd puts a running
 * VM's disk on a new qcow2 overlay (a snapshot), it opens the overlay and the files below
 * it outside the jail and hands the descriptors in, right before PATCH /drives; the disk
 * layer's opens of those paths then take them (image_fds_open) instead of the file
 * system's, as QEMU takes images from libvirt by descriptor (-add-fd). An open takes its
 * file out of the table: the descriptor and the locks tern puts on it (OFD locks, which
 * belong to the open file) are the opener's, and go when it closes them.
 */
#ifndef TERN_BACKEND_IMAGE_FDS_H
#define TERN_BACKEND_IMAGE_FDS_H

#include <stdbool.h>
#include <stddef.h>

/* How many files the table holds at once. */
#define IMAGE_FDS_MAX 64

/* Closes what the table holds (a new hand-over replaces what no open took of the last). */
void image_fds_clear(void);

/*
 * Takes fd (closed on failure) as an open file of path (absolute; a path may come twice,
 * read-only and read-write). 0, or -errno with err: a relative path, a descriptor that is
 * not a regular file or block device, a full table.
 */
int image_fds_add(const char *path, int fd, char *err, size_t n);

/*
 * open(path, flags) for the disk layer: a file handed in as path that serves flags (its
 * access mode allows flags', read-only preferred for reading; O_DSYNC when flags ask for
 * it), taken out of the table; else the file system's. O_DIRECT is refused with EINVAL for
 * a handed path, which the disk layer takes as a file system without it. -1 with errno.
 */
int image_fds_open(const char *path, int flags);

/* Whether a file was handed in as path (and not taken yet). */
bool image_fds_has(const char *path);

#endif
