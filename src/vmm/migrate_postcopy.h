/*
 * Post-copy at the destination: the VM runs before all its memory has arrived. The pages
 * the source had not sent (or that changed since) are missing pages of the RAM, watched by
 * a userfaultfd: a vCPU or device touching one waits while a thread asks the source for
 * that page (PAGE_REQ); another thread places every page that arrives (UFFDIO_COPY, which
 * wakes whoever waits on it), requested or sent in the background, until COMPLETE.
 */
#ifndef TERN_VMM_MIGRATE_POSTCOPY_H
#define TERN_VMM_MIGRATE_POSTCOPY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/guest_mem.h"
#include "vmstate/vmstate.h"

struct postcopy_dst {
	int sock, uffd;
	const struct guest_mem *mem;
	uint64_t pages;
	uint8_t *requested;	/* pages asked for already (a fault repeats) */
	pthread_mutex_t *wlock; /* the replies' writer is shared with the main thread */
	struct vmstate_writer *w;
	pthread_t fault_thread, recv_thread;
	_Atomic int done;
};

/*
 * Punches the pages set in stale out of mem, watches all of RAM with a userfaultfd and
 * starts the two threads. 0 or -errno + err (then nothing was started).
 */
int postcopy_dst_begin(struct postcopy_dst *pc, const struct guest_mem *mem, const uint8_t *stale,
		       int sock, struct vmstate_writer *w, pthread_mutex_t *wlock, char *err,
		       size_t errlen);

#endif
