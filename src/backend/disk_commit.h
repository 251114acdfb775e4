/*
 * qemu-img commit: what a qcow2 overlay holds itself, written into its backing file
 * (raw or qcow2), through tern's own disk code. For tern img commit, and for ternd, which
 * merges a deleted snapshot's overlay back into the image below it.
 */
#ifndef TERN_BACKEND_DISK_COMMIT_H
#define TERN_BACKEND_DISK_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct disk_commit {
	const char *top; /* the qcow2 overlay */
	bool keep;	 /* leave its clusters in it (else it is emptied: it reads through) */
	void (*progress)(void *opaque, uint64_t done, uint64_t total); /* may be NULL */
	void *opaque;
	/* Out: the backing file written, and the bytes of data written into it. */
	char base[4096];
	uint64_t bytes;
};

/*
 * Runs the commit. Both files are locked as a VM locks them: one in use is refused. A
 * top larger than its backing file is refused. The base is flushed before the top is
 * emptied, so a failure at any point loses nothing (the top still reads as it did).
 * 0, -EINVAL when top is no qcow2 image with a backing file, or -errno; err says why.
 */
int disk_commit(struct disk_commit *c, char *err, size_t n);

#endif
