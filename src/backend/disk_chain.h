/*
 * The files an image reads besides itself: an overlay's base, a qcow2 image's backing
 * chain. The jail binds them, ternd checks its VM's uid can read them, and a drive or a
 * restore is refused early when one is missing or bad.
 */
#ifndef TERN_BACKEND_DISK_CHAIN_H
#define TERN_BACKEND_DISK_CHAIN_H

#include <stddef.h>

#include "backend/disk.h"

#define DISK_CHAIN_PATH_MAX 4096

/*
 * Checks the image at path as disk_open would read it (format AUTO probed; without writing
 * to it, and without its lock) and stores up to max of the files below it, top first, in
 * files (may be NULL with max 0). Returns how many there are, or -errno with the reason
 * in err.
 */
int disk_chain(const char *path, enum disk_format format, char (*files)[DISK_CHAIN_PATH_MAX],
	       int max, char *err, size_t n);
/*
 * The files below the image at path, top first, for whoever binds or grants them (a
 * jail, ternd's ACLs): how many, with *files a new array the caller frees (NULL when there
 * are none); 0 for a raw image, and for one that does not open (its own open reports
 * why); -ENOMEM. Read without the backing files' locks: a running VM may write the file
 * below a new overlay (ternd hands both to its jail).
 */
int disk_chain_list(const char *path, enum disk_format format, char (**files)[DISK_CHAIN_PATH_MAX]);

#endif
