/*
 * Image files opened by a tool rather than a VM (tern img, ternd's merges), locked as a
 * tern-vmm locks a disk so that neither writes under the other.
 */
#ifndef TERN_BACKEND_IMAGE_FILE_H
#define TERN_BACKEND_IMAGE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/qcow2.h"

/*
 * path opened for writing or reading and locked as a tern-vmm locks a disk (disk_lock_fd):
 * the fd, or -errno with err naming path (-EBUSY: a running VM holds it).
 */
int image_open_locked(const char *path, bool write, char *err, size_t n);
/*
 * The qcow2 image at path opened that way (for writing unless a->readonly), a->fd and
 * a->path filled in: 0 with *fd and *q, or -errno with err naming path.
 */
int image_open_qcow2(const char *path, struct qcow2_open_args *a, int *fd, struct qcow2 **q,
		     char *err, size_t n);

#endif
