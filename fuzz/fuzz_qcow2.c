/*
 * libFuzzer harness for qcow2 images (src/backend/qcow2*.c): an image is user input (a
 * cloud image, a disk handed to --disk), so opening it must refuse anything malformed
 * with a message and never read outside a buffer, and requests on what it accepts must
 * fail cleanly (-EIO) on bad table entries rather than crash.
 *
 * Input layout:
 *   0      control: bit 0 -> open read-only; bit 1 -> a tiny L2 cache (evictions);
 *          bits 2-3 -> err buffer of 512, 1, 0 (NULL) or 9 bytes
 *   1..15  request parameters: byte 1 + 2k is an op (read, write, write-zeroes,
 *          discard, flush), byte 2 + 2k picks its offset (as a fraction of the disk)
 *   16..   the image file, written to an O_TMPFILE (or memfd) file as it is, except that
 *          a backing file name (when its offset is at least 72 and it fits) is replaced
 *          by the path of a harness-owned raw file, and otherwise removed: no input
 *          chooses which file is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/qcow2.h"
#include "core/log.h"
#include "fuzz.h"

#define PREFIX 16

static int img_fd = -1, base_fd = -1;
static char img_path[40], base_path[40];

static int tmpfile_any(void)
{
	const char *dirs[] = { getenv("TMPDIR"), "/dev/shm", "/tmp" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		int fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
	}
	return memfd_create("fuzz_qcow2", MFD_CLOEXEC);
}

static void setup(void)
{
	static uint8_t pattern[3 * 65536 + 100];

	if (img_fd >= 0)
		return;
	log_set_level(LOG_OFF);
	img_fd = tmpfile_any();
	base_fd = tmpfile_any();
	ASSERT(img_fd >= 0 && base_fd >= 0);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
	ASSERT(pwrite(base_fd, pattern, sizeof(pattern), 0) == (ssize_t)sizeof(pattern));
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", img_fd);
	snprintf(base_path, sizeof(base_path), "/proc/self/fd/%d", base_fd);
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Points the backing name at the harness's own file, or drops it. */
static void neutralize_backing(uint8_t *img, size_t n)
{
	size_t plen = strlen(base_path);

	if (n < 20)
		return;
	uint64_t off = be64(img + 8);
	if (off == 0)
		return;
	if (off >= 72 && off <= n && n - off >= plen) {
		memcpy(img + off, base_path, plen);
		img[16] = img[17] = img[18] = 0;
		img[19] = (uint8_t)plen;
	} else {
		memset(img + 8, 0, 8);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t errlens[4] = { 512, 1, 0, 9 };
	char errbuf[512];

	setup();
	if (size < PREFIX)
		return 0;
	uint8_t ctrl = data[0];
	size_t errlen = errlens[(ctrl >> 2) & 3];
	char *err = errlen ? errbuf : NULL;
	size_t n = size - PREFIX;
	uint8_t *img = malloc(n ? n : 1);
	ASSERT(img);
	memcpy(img, data + PREFIX, n);
	neutralize_backing(img, n);
	ASSERT(ftruncate(img_fd, 0) == 0);
	ASSERT(n == 0 || pwrite(img_fd, img, n, 0) == (ssize_t)n);
	free(img);

	struct qcow2 *q;
	struct qcow2_open_args a = { .fd = img_fd,
				     .path = img_path,
				     .readonly = ctrl & 1,
				     .l2_cache_bytes = ctrl & 2 ? 1 : 0 };
	memset(errbuf, 0x5a, sizeof(errbuf));
	int r = qcow2_open(&q, &a, err, errlen);
	if (r) {
		ASSERT(r < 0);
		if (errlen)
			ASSERT(memchr(err, 0, errlen) != NULL);
		if (errlen > 1)
			ASSERT(err[0] != 0);
		return 0;
	}
	uint64_t disk = qcow2_size(q);
	uint8_t *buf = malloc(8192);
	ASSERT(buf);
	for (int k = 0; k < 7 && disk >= 512; k++) {
		uint8_t op = data[1 + 2 * k] % 6, where = data[2 + 2 * k];
		uint64_t off = (disk / 512) * where / 256 * 512;
		uint64_t len = disk - off < 8192 ? disk - off : 8192;
		struct iovec v[2] = { { buf, 1000 < len ? 1000 : len },
				      { buf + (1000 < len ? 1000 : len),
					len - (1000 < len ? 1000 : len) } };
		memset(buf, where, 8192);
		switch (op) {
		case 0:
		case 1:
			r = qcow2_read(q, v, 2, off, len);
			ASSERT(r == 0 || r == -EIO || r == -ENOMEM);
			break;
		case 2:
			r = qcow2_write(q, v, 2, off, len);
			ASSERT(r <= 0 && (r == 0 || !(ctrl & 1) || r == -EROFS));
			if (r == 0) {
				/* What was written reads back. */
				uint8_t *back = malloc(len);
				struct iovec bv = { back, len };
				ASSERT(back);
				if (qcow2_read(q, &bv, 1, off, len) == 0)
					ASSERT(memcmp(back, buf, len) == 0);
				free(back);
			}
			break;
		case 3:
			r = qcow2_write_zeroes(q, off, len);
			ASSERT(r <= 0);
			break;
		case 4:
			r = qcow2_discard(q, off & ~(uint64_t)65535,
					  131072 < disk - (off & ~(uint64_t)65535) ?
						  131072 :
						  disk - (off & ~(uint64_t)65535));
			ASSERT(r <= 0);
			break;
		default:
			ASSERT(qcow2_flush(q) <= 0);
			break;
		}
	}
	free(buf);
	qcow2_close(q);
	return 0;
}
