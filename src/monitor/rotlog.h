/*
 * A log file rotated by size (the monitor's console.log and vmm.log): PATH fills up to
 * max bytes, then becomes PATH.1, PATH.1 becomes PATH.2 ... up to PATH.keep, and the
 * oldest is dropped. Files are split at the byte where they reach max, so every file
 * holds exactly max bytes except the current one, and nothing is lost or doubled.
 */
#ifndef TERN_MONITOR_ROTLOG_H
#define TERN_MONITOR_ROTLOG_H

#include <stddef.h>
#include <stdint.h>

#define ROTLOG_MIN_SIZE 4096ULL
#define ROTLOG_MAX_SIZE (1ULL << 30)
#define ROTLOG_DEFAULT_SIZE (1ULL << 20)
#define ROTLOG_MIN_KEEP 1U
#define ROTLOG_MAX_KEEP 100U
#define ROTLOG_DEFAULT_KEEP 4U

struct rotlog {
	char *path;
	int fd;	       /* -1 while it could not be (re)opened */
	uint64_t size; /* bytes in the current file */
	uint64_t max;
	unsigned int keep;
};

/*
 * Opens (appending to) path; a file left by an earlier run keeps filling up to max.
 * 0, or -errno (l is then closed and safe to rotlog_close()).
 */
int rotlog_open(struct rotlog *l, const char *path, uint64_t max, unsigned int keep);
/*
 * Appends n bytes, rotating as often as needed. 0, or the first -errno (the bytes the
 * failing file did not take are dropped: a full disk must not stall the VM).
 */
int rotlog_write(struct rotlog *l, const void *buf, size_t n);
void rotlog_close(struct rotlog *l);

#endif
