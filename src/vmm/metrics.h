/*
 * Firecracker's metrics file (PUT /metrics, the FlushMetrics action, and a line every
 * 60 s): one JSON object per line with the VM's counters as deltas since the previous
 * line. Everything here runs on the event-loop thread.
 */
#ifndef TERN_VMM_METRICS_H
#define TERN_VMM_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

struct vm;
struct json_object;

/*
 * The API server's counters ("api_server"). The server owns them and increments them
 * (++ on an _Atomic is an atomic add, so any thread may); metrics only reads them.
 */
struct api_counters {
	_Atomic unsigned long long requests, errors;
};

/* A drive or interface id and its NUL (the API's ids are at most 64 bytes). */
#define METRICS_ID_MAX (NET_ID_MAX + 1)

/* One section's counters; the field names are the JSON keys. */
struct metrics_api {
	unsigned long long requests, errors;
};

struct metrics_logger {
	unsigned long long missed_metrics_count; /* lines metrics_flush() could not write */
	unsigned long long missed_log_count;	 /* log lines the log file refused */
};

struct metrics_vcpu {
	unsigned long long exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write;
	unsigned long long exit_emulation, failures;
};

struct metrics_block {
	unsigned long long read_bytes, write_bytes, read_count, write_count, flush_count;
	unsigned long long invalid_reqs_count;
};

struct metrics_net {
	unsigned long long rx_bytes_count, tx_bytes_count, rx_packets_count, tx_packets_count;
	unsigned long long rx_fails, tx_fails, tx_malformed_frames;
	unsigned long long rx_stalls; /* tern's: the guest's receive buffers ran out */
};

/* rx: to the guest, tx: from it (Firecracker's directions); bytes are payload. */
struct metrics_vsock {
	unsigned long long rx_bytes_count, tx_bytes_count, rx_packets_count, tx_packets_count;
};

struct metrics_entropy {
	unsigned long long entropy_bytes;
	unsigned long long entropy_requests; /* tern's: buffers filled */
};

/* Every counter at one instant, as running totals. A device slot with an empty id is absent. */
struct metrics_sample {
	struct metrics_api api;
	struct metrics_logger logger;
	struct metrics_vcpu vcpu; /* summed over the vCPUs */
	struct {
		char id[METRICS_ID_MAX];
		struct metrics_block c;
	} block[VMM_MAX_DISKS];
	struct {
		char id[METRICS_ID_MAX];
		struct metrics_net c;
	} net[VMM_MAX_NETS];
	struct metrics_vsock vsock;
	struct metrics_entropy entropy;
};

/* All zeros is a closed struct metrics. */
struct metrics {
	bool open;
	int fd;
	/* Set after metrics_open(); NULL reports zeros. */
	const struct api_counters *api;
	struct metrics_sample prev; /* the totals the last written line counted up to */
	unsigned long long missed;  /* lines dropped */
	/* The tail of a line a pipe took only part of: it goes out before the next line. */
	char *pending;
	size_t pending_off, pending_len;
};

/*
 * Opens path like the log (src/core/log.h, log_open_output: appending, non-blocking; a
 * FIFO needs a reader, else -ENXIO "no reader on the FIFO") and resets m, which must
 * not be open (Firecracker refuses a second PUT /metrics; else metrics_close first).
 * 0, or -errno with a message in err (m untouched).
 */
int metrics_open(struct metrics *m, const char *path, char *err, size_t errlen);
/*
 * Appends one line: a JSON object with "utc_timestamp_ms" and the counters of vm (NULL
 * or a VM not built yet: zeros) as deltas since the previous line written, then "\n".
 * Never blocks: a line the file or pipe does not take at once is dropped and counted
 * ("logger": "missed_metrics_count"; a warning at the 1st, 2nd, 4th, 8th... drop), and
 * its counts go into the next line, so none are lost. 0 or -errno (-EAGAIN: dropped,
 * -EBADF: m not open).
 */
int metrics_flush(struct metrics *m, const struct vm *vm);
/* Closes the file; m may be closed already (or all zeros). */
void metrics_close(struct metrics *m);

/* The parts of metrics_flush, apart for tests. */
/*
 * Reads every counter of vm into s: vCPU counters with relaxed atomic loads, device
 * counters under each device's lock (queue notifications can run on vCPU threads).
 */
void metrics_sample_read(const struct metrics *m, const struct vm *vm, struct metrics_sample *s);
/* Writes the line for now (deltas against m->prev) as metrics_flush does. */
int metrics_write_sample(struct metrics *m, const struct metrics_sample *now, uint64_t utc_ms);
/* The JSON object of one line; the caller puts it. NULL when out of memory. */
struct json_object *metrics_format(const struct metrics_sample *now,
				   const struct metrics_sample *prev, uint64_t utc_ms);

#endif
