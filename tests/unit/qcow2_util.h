/*
 * Helpers for the qcow2 tests (test_qcow2*.c): running qemu-img / qemu-io as the oracle,
 * opening an image through the library, reading files and images whole, patterns.
 */
#ifndef TERN_TESTS_QCOW2_UTIL_H
#define TERN_TESTS_QCOW2_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/qcow2.h"

/* Runs a shell command (output to /dev/null unless Q2T_VERBOSE is set); its exit status. */
int q2t_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a command and returns its stdout (up to 64 KiB, static buffer). */
const char *q2t_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct q2t_img {
	struct qcow2 *q;
	int fd;
	char err[512];
};
/* 0 or -errno (err in img->err). */
int q2t_open(struct q2t_img *img, const char *path, bool readonly);
void q2t_close(struct q2t_img *img);

/* The whole file (malloc'd, *len set), NULL if it cannot be read. */
uint8_t *q2t_file(const char *path, size_t *len);
/* The whole image through qcow2_read, in odd-sized iovec pieces; NULL on error. */
uint8_t *q2t_read_all(struct qcow2 *q);
/* Writes buf as a raw file. */
bool q2t_write_file(const char *path, const uint8_t *buf, size_t len);
/* Deterministic pseudo-random bytes. */
uint64_t q2t_rand(uint64_t *s);
void q2t_fill(uint8_t *buf, size_t len, uint64_t seed);
/* qemu-img convert -O raw of img (into dir, removed after) reads exactly want (len bytes). */
bool q2t_qemu_reads(const char *dir, const char *img, const uint8_t *want, size_t len);
/* rm -rf of a test directory. */
void q2t_rmdir(const char *dir);

#endif
