/* The host-decompressed kernel cache (see boot_cache.h). */
#include "arch/x86/boot_cache.h"
#include "arch/x86/boot_decompress.h"
#include "arch/x86/boot_internal.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "TERNKRN1"
#define HDR_SIZE 56 /* magic 8, key 32, length 8, crc32 4, zero 4 */
#define MAX_PAYLOAD (1ULL << 32)

void boot_cache_key(const void *data, size_t len, uint8_t key[BOOT_CACHE_KEY])
{
	/*
	 * Nettle, not GnuTLS (which wraps it): same SHA extensions, no library constructor and
	 * eight libraries fewer for every tern-vmm start (~1 ms natively) and its jail.
	 */
	struct sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, len, data);
	sha256_digest(&c, BOOT_CACHE_KEY, key);
}

int boot_cache_dir(char *buf, size_t n)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int k;

	if (xdg && xdg[0] == '/')
		k = snprintf(buf, n, "%s/tern/kernels", xdg);
	else if (geteuid() == 0)
		k = snprintf(buf, n, "/var/cache/tern/kernels");
	else if (home && home[0] == '/')
		k = snprintf(buf, n, "%s/.cache/tern/kernels", home);
	else
		return -ENOENT;
	return k > 0 && (size_t)k < n ? 0 : -ENOENT;
}

static int path_of(char *buf, size_t n, const char *dir, const uint8_t key[BOOT_CACHE_KEY])
{
	char hex[2 * BOOT_CACHE_KEY + 1];

	for (int i = 0; i < BOOT_CACHE_KEY; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	int k = snprintf(buf, n, "%s/%s.vmlinux", dir, hex);
	return k > 0 && (size_t)k < n ? 0 : -ENAMETOOLONG;
}

static uint32_t crc(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), p, len);
}

static void header(uint8_t h[HDR_SIZE], const uint8_t key[BOOT_CACHE_KEY], uint64_t len,
		   uint32_t sum)
{
	memset(h, 0, HDR_SIZE);
	memcpy(h, MAGIC, 8);
	memcpy(h + 8, key, BOOT_CACHE_KEY);
	for (int i = 0; i < 8; i++)
		h[40 + i] = (uint8_t)(len >> (8 * i));
	for (int i = 0; i < 4; i++)
		h[48 + i] = (uint8_t)(sum >> (8 * i));
}

static int read_at(int fd, uint8_t *p, size_t n, off_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int boot_cache_get(const char *dir, const uint8_t key[BOOT_CACHE_KEY], size_t headroom,
		   uint8_t **buf, size_t *len)
{
	char path[4096];
	uint8_t h[HDR_SIZE], want[HDR_SIZE];
	struct stat st;
	uint8_t *b = NULL;
	int fd, r = -EBADMSG;

	if (path_of(path, sizeof(path), dir, key))
		return -ENAMETOOLONG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= HDR_SIZE ||
	    (uint64_t)st.st_size > MAX_PAYLOAD + HDR_SIZE || read_at(fd, h, HDR_SIZE, 0))
		goto out;
	uint64_t plen = boot_le(h + 40, 8);
	uint32_t sum = (uint32_t)boot_le(h + 48, 4);
	header(want, key, plen, sum);
	if (plen != (uint64_t)st.st_size - HDR_SIZE || memcmp(h, want, HDR_SIZE))
		goto out;
	if (!(b = boot_alloc_populated(headroom + (size_t)plen))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = read_at(fd, b + headroom, (size_t)plen, HDR_SIZE)))
		goto out;
	if (crc(b + headroom, (size_t)plen) != sum) {
		r = -EBADMSG;
		goto out;
	}
	*buf = b;
	*len = (size_t)plen;
	b = NULL;
	r = 0;
out:
	free(b);
	close(fd);
	return r;
}

/* mkdir -p: each missing component in turn (an existing one is fine). */
static int make_dirs(const char *dir)
{
	char p[4096];
	size_t n = strlen(dir);

	if (n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		p[i] = c;
	}
	return 0;
}

int boot_cache_put(const char *dir, const uint8_t key[BOOT_CACHE_KEY], const uint8_t *buf,
		   size_t len)
{
	char path[4096], tmp[4096 + 32];
	uint8_t h[HDR_SIZE];
	int r, fd;

	if ((r = path_of(path, sizeof(path), dir, key)))
		return r;
	if ((r = make_dirs(dir)))
		return r;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	header(h, key, len, crc(buf, len));
	if (!(r = fd_write_all(fd, h, HDR_SIZE)))
		r = fd_write_all(fd, buf, len);
	/* No fsync: a file torn by a crash fails the CRC and is rewritten by the next boot. */
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}
