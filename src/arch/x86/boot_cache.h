/*
 * The host-decompressed kernel cache: a bzImage's decompressed payload, keyed by the
 * SHA-256 of the whole bzImage, so booting the same kernel again skips decompression.
 *
 * One file per kernel, DIR/<sha256>.vmlinux: a header (magic, key, length, CRC-32 of the
 * payload) then the payload. Written to a temporary file and renamed into place, read
 * only if every header field matches. Failures are never errors: the caller decompresses.
 */
#ifndef TERN_ARCH_X86_BOOT_CACHE_H
#define TERN_ARCH_X86_BOOT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOOT_CACHE_KEY 32

/* SHA-256 of data. */
void boot_cache_key(const void *data, size_t len, uint8_t key[BOOT_CACHE_KEY]);

/*
 * The cache directory: $XDG_CACHE_HOME/tern/kernels if set, else /var/cache/tern/kernels
 * for root, else $HOME/.cache/tern/kernels. 0, or -ENOENT when none can be named.
 */
int boot_cache_dir(char *buf, size_t n);

/*
 * A hit reads the payload into a new malloc'ed *buf at offset headroom (room the caller
 * lays the kernel out in). 0, or -errno (-EBADMSG: a file that does not match).
 */
int boot_cache_get(const char *dir, const uint8_t key[BOOT_CACHE_KEY], size_t headroom,
		   uint8_t **buf, size_t *len);

/* Stores len bytes under key, creating dir as needed. 0 or -errno. */
int boot_cache_put(const char *dir, const uint8_t key[BOOT_CACHE_KEY], const uint8_t *buf,
		   size_t len);

#endif
