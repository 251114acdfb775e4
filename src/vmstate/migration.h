/*
 * The live-migration stream: tern's state format (vmstate.h) sent over a connection, one
 * section at a time, in both directions.
 *
 *   source → destination                     destination → source
 *   header, HELLO, MACHINE (as in a file)
 *                                            header, READY (or ERROR, and it closes)
 *   RAM ... (all pages, then the pages
 *   dirtied meanwhile, in rounds)
 *   DEVICES (a whole state file), COMPLETE
 *                                            PREPARED (built, disks open), RESUMED
 *   REPORT (downtime, totals), end marker
 *
 * Either side may send ERROR (a message) instead of what comes next and close. Every
 * section is length- and CRC-checked as it arrives (vmstate_read_section); every value in
 * a payload is checked here before anything is written into the VM, so a corrupt or
 * hostile stream is refused with an error, never trusted.
 */
#ifndef TERN_VMSTATE_MIGRATION_H
#define TERN_VMSTATE_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmstate/vmstate.h"

#define MIG_PROTOCOL_VERSION 1
#define MIG_PAGE 4096ULL
#define MIG_RUN_MAX_PAGES 256 /* data pages in one run: 1 MiB */
#define MIG_SECTION_VERSION 1 /* of every MIG_* section */
/* A RAM section holds at most this much payload: a few runs' headers and 1 MiB of data. */
#define MIG_RAM_SECTION_MAX ((MIG_RUN_MAX_PAGES * MIG_PAGE) + 64 * 1024)
#define MIG_MESSAGE_MAX 1024

struct mig_hello {
	uint32_t protocol; /* MIG_PROTOCOL_VERSION */
	uint32_t page_size;
	uint64_t ram_size; /* bytes */
	uint32_t flags;	   /* MIG_HELLO_* */
};

#define MIG_HELLO_COPY_STORAGE 1u /* a DISKS section follows MACHINE; disks stream too */

void mig_hello_put(struct vmstate_writer *w, const struct mig_hello *h);
/* 0, or -EINVAL with err naming what this tern-vmm does not take. */
int mig_hello_get(const struct vmstate_section *s, struct mig_hello *h, char *err, size_t n);

/*
 * A RAM section's payload is a list of runs: u64 first page, u32 page count, u8 kind
 * (MIG_RUN_DATA: the pages' bytes follow; MIG_RUN_ZERO: they are all zero).
 */
enum mig_run_kind { MIG_RUN_DATA = 0, MIG_RUN_ZERO = 1 };

void mig_run_put(struct vmstate_writer *w, uint64_t first, uint32_t count, enum mig_run_kind kind,
		 const uint8_t *data);
/*
 * Checks every run of a RAM section against a RAM of `pages` pages, then copies each into
 * ram (the VMM's mapping, page i at i * MIG_PAGE) and zeroes the zero runs (anon: private
 * anonymous RAM, whose pages go back to the host; else memset). Nothing is written unless the whole section is valid. Adds the pages it
 * covered to *pages_done. 0, or -EINVAL with err.
 */
int mig_ram_apply(const struct vmstate_section *s, uint8_t *ram, bool anon, uint64_t pages,
		  uint64_t *pages_done, char *err, size_t n);

/* What mig_ram_walk hands each run to: 0 or -errno. data is NULL for zero runs. */
typedef int (*mig_run_fn)(void *opaque, uint64_t first, uint32_t count, enum mig_run_kind kind,
			  const uint8_t *data);
/*
 * The same checks as mig_ram_apply, then each run goes to fn (post-copy places pages with
 * userfaultfd instead of writing them). 0, or -errno with err.
 */
int mig_ram_walk(const struct vmstate_section *s, uint64_t pages, mig_run_fn fn, void *opaque,
		 uint64_t *pages_done, char *err, size_t errlen);

/* ERROR: a message, at most MIG_MESSAGE_MAX bytes, no NUL inside. */
void mig_message_put(struct vmstate_writer *w, const char *msg);
/* The message into buf (a placeholder when the payload is not a valid one). */
void mig_message_get(const struct vmstate_section *s, char *buf, size_t len);

/* REPORT: what the source measured, for the destination's GET /migrate. */
struct mig_report {
	uint64_t downtime_us, total_ms, bytes_sent;
	uint32_t rounds;
};

void mig_report_put(struct vmstate_writer *w, const struct mig_report *r);
int mig_report_get(const struct vmstate_section *s, struct mig_report *r);

/*
 * copy_storage. DISKS (after MACHINE): u32 count, then per copied disk u32 index (in the
 * machine's disk list) and u64 size in bytes. DISK: u32 index, then runs: u64 offset, u32
 * length (both multiples of 512; at most MIG_DISK_RUN_MAX), u8 kind (data: the bytes
 * follow; zero: a hole).
 */
#define MIG_DISK_RUN_MAX (1024 * 1024)
#define MIG_DISK_SECTION_MAX (MIG_DISK_RUN_MAX + 64 * 1024)
#define MIG_MAX_DISKS 8

struct mig_disk_target {
	int fd; /* the destination's copy, open for writing */
	uint64_t size;
};

/*
 * Checks every run of a DISK section against targets[0..n) (index n or more, or a target
 * with fd < 0, is refused), then writes each run (zero runs punch a hole, or write zeros
 * where the file system cannot). Nothing is written unless the whole section is valid.
 * Adds the bytes covered to *bytes. 0, or -errno with err.
 */
int mig_disk_apply(const struct vmstate_section *s, const struct mig_disk_target *targets,
		   unsigned int n, uint64_t *bytes, char *err, size_t errlen);

/* Writes one empty section (READY, PREPARED, RESUMED, COMPLETE). */
void mig_signal_put(struct vmstate_writer *w, uint32_t tag);

#endif
