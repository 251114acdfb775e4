/*
 * Post-copy at the destination: the VM runs before all its memory has arrived. The pages
 * the source had not sent (or that changed since) are missing pages of the RAM, watched by
 * a userfaultfd: a vCPU or device touching one waits while a thread asks the source for
 * that page (PAGE_REQ); another thread places every page that arrives (UFFDIO_COPY, which
 * wakes whoever waits on it), requested or sent in the background, until COMPLETE.
 *
 * On 2 MiB hugetlbfs pages (--huge-pages 2M) the unit is the huge page: one is missing
 * whole or there whole. Each huge page holding a stale 4 KiB page is kept aside (its other
 * pages are good) and dropped; the stale pages that arrive fill the copy, and the huge
 * page is placed once the last of them is in. A fault asks for every stale page of its
 * huge page. The copies cost 2 MiB of ordinary memory each while they fill.
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
	uint8_t *requested; /* pages asked for already (a fault repeats) */
	/* hugetlb only: the stale pages still to come, and per huge page its copy and count */
	uint8_t *want;
	uint8_t **stage;
	uint16_t *missing;
	pthread_mutex_t *wlock; /* the replies' writer is shared with the main thread */
	struct vmstate_writer *w;
	pthread_t fault_thread, recv_thread;
	_Atomic int done;
};

/*
 * Punches the pages set in stale (on hugetlbfs, the huge pages holding them) out of mem,
 * watches all of RAM with a userfaultfd and starts the two threads. 0 or -errno + err
 * (then nothing was started, and what was punched is lost: the source still has it).
 */
int postcopy_dst_begin(struct postcopy_dst *pc, const struct guest_mem *mem, const uint8_t *stale,
		       int sock, struct vmstate_writer *w, pthread_mutex_t *wlock, char *err,
		       size_t errlen);

#endif
