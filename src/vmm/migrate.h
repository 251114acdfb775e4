/*
 * Live migration of this tern-vmm's VM (docs/migration.md): the source side (PUT /migrate:
 * pre-copy rounds on a thread of their own, then the switchover on the event loop) and the
 * destination side (--incoming, PUT /migrate/incoming). The stream is
 * src/vmstate/migration.h's; it is neither encrypted nor authenticated (ternd carries it
 * over TLS between hosts).
 */
#ifndef TERN_VMM_MIGRATE_H
#define TERN_VMM_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot.h"

struct vm;
struct api;

#define MIG_URI_MAX 4096
#define MIG_DEFAULT_DOWNTIME_MS 300 /* QEMU's default downtime limit */
#define MIG_DEFAULT_MAX_ROUNDS 30

/* Where the stream goes or comes from: tcp:HOST:PORT, unix:PATH or fd:N. */
enum mig_transport { MIG_TCP, MIG_UNIX, MIG_FD };

struct mig_uri {
	enum mig_transport kind;
	char host[256], port[8];
	char path[108]; /* sun_path */
	int fd;
};

/* 0, or -EINVAL with err naming the URI's fault and the accepted forms. */
int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t errlen);
/* Destination: listens (fd: is already the stream, returned as it is). fd or -errno + err. */
int mig_uri_listen(const struct mig_uri *u, char *err, size_t errlen);
/* Destination: the one stream from lfd (fd: lfd itself). fd or -errno + err. */
int mig_uri_accept(const struct mig_uri *u, int lfd, char *err, size_t errlen);
/* Destination: closes lfd and removes a unix socket's path (nothing for fd:). */
void mig_uri_unlisten(const struct mig_uri *u, int lfd);
/* Source: connects. fd or -errno + err. */
int mig_uri_connect(const struct mig_uri *u, char *err, size_t errlen);

struct migrate_params {
	char uri[MIG_URI_MAX];
	uint64_t downtime_limit_ms; /* switch over when the rest fits in this */
	uint64_t bandwidth_mib_s;   /* 0: as fast as the link goes */
	unsigned int max_rounds;    /* give up after this many rounds without converging */
	bool auto_converge;	    /* throttle the vCPUs when they dirty faster than we send */
	bool copy_storage;	    /* stream the writable disks too (migrate_disk.h) */
	bool post_copy;		    /* switch over before convergence; the destination pulls */
};

enum migrate_state {
	MIGRATE_NONE,
	MIGRATE_SETUP,	    /* connecting, the destination checking the machine */
	MIGRATE_ACTIVE,	    /* pre-copy rounds */
	MIGRATE_SWITCHOVER, /* the VM is paused; the rest and the device state go */
	MIGRATE_COMPLETED,
	MIGRATE_FAILED,
	MIGRATE_CANCELLED,
	MIGRATE_INCOMING, /* destination: receiving */
	MIGRATE_POSTCOPY, /* the VM runs at the destination, which pulls the rest */
};

struct migrate_progress {
	enum migrate_state state;
	bool incoming; /* this is the destination */
	char error[512];
	unsigned int round;
	uint64_t ram_bytes, bytes_sent, bytes_left;
	uint64_t dirty_rate_bps, bandwidth_bps;
	uint64_t expected_downtime_ms;
	unsigned int throttle_pct;
	uint64_t downtime_us, total_ms; /* once completed */
	uint64_t zero_pages, data_pages;
};

const char *migrate_state_name(enum migrate_state s);

/*
 * Is an outgoing migration under way (from PUT /migrate until it completed, failed or was
 * cancelled)? What the VM must keep still meanwhile (a disk's size) asks this.
 */
bool migrate_under_way(void);
/* Source: checks p and starts migrating vm. 0, or -EINVAL/-EBUSY + err (a 400). */
int migrate_start(struct vm *vm, const struct migrate_params *p, char *err, size_t errlen);
/* Source: stops a migration in progress; the VM runs on. -EINVAL + err when none is. */
int migrate_cancel(char *err, size_t errlen);
/* A copy of the current (or last) migration's progress. */
void migrate_get_progress(struct migrate_progress *out);
/* The destination's side of it (migrate_recv.c), kept with the source's for GET /migrate. */
void migrate_progress_set_incoming(const struct migrate_progress *p);

/*
 * Destination: accepts the stream at uri, builds vm from it with the overrides applied
 * (a->cfg gives the process settings: KVM device, logging) and starts it. 0 once the VM
 * runs here; -errno + err when the migration failed (the source then keeps its VM).
 */
int migrate_incoming(struct api *a, struct vm *vm, const char *uri,
		     const struct restore_overrides *o, char *err, size_t errlen);
/*
 * Destination (PUT /migrate/cancel while the VM arrives): ends the migration here, as a
 * failure the source is told of; the source runs on. -EBUSY + err once the stream is in
 * and the VM is being started here.
 */
int migrate_incoming_cancel(char *err, size_t errlen);

#endif
