/* Small helpers with no other home: sizes, alignment, whole-file reads, checked integer parsing. */
#ifndef TERN_CORE_UTIL_H
#define TERN_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KIB (1024ULL)
#define MIB (1024ULL * 1024)
#define GIB (1024ULL * 1024 * 1024)

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

/* Reads a whole file into a malloc'ed buffer. Returns 0 or -errno. */
int file_read_all(const char *path, uint8_t **buf, size_t *len);

/*
 * Writes a message into err (when err and n are non-zero) and returns r: the one way every
 * module words a refusal for its caller, e.g. return fail_msg(err, n, -EINVAL, "...").
 */
int fail_msg(char *err, size_t n, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Copies the data extents of in to out (copy_file_range; holes stay holes) up to size
 * bytes; out must already be size bytes long. 0 or -errno.
 */
int file_copy_sparse(int in, int out, int64_t size);
/* As file_copy_sparse, calling progress(opaque, bytes) after each piece copied (may be NULL). */
int file_copy_sparse_cb(int in, int out, int64_t size, void (*progress)(void *, uint64_t),
			void *opaque);
/* The bytes in in's data extents (what file_copy_sparse copies), or -errno. */
int64_t file_data_bytes(int in, int64_t size);

/* Writes all n bytes of buf to fd (retrying short writes and EINTR). 0 or -errno. */
int fd_write_all(int fd, const void *buf, size_t n);

/* fsync()s the directory holding path, so that a rename into it is durable. 0 or -errno. */
int fsync_dir_of(const char *path);

/* Parses a decimal unsigned integer in [min, max]; false on junk, overflow or range. */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Whether len bytes at p (8-byte aligned, len a multiple of 8: pages, sectors) are all zero. */
bool mem_is_zero(const void *p, size_t len);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t monotonic_ns(void);
/* /proc/meminfo's MemAvailable in KiB; 0 when it cannot be read (then nothing is known). */
uint64_t host_mem_available_kib(void);

#endif
