/*
 * libFuzzer harness for the copy-on-write overlay header (src/backend/disk_overlay.c): an
 * overlay file is user input (a clone's disk, or one handed to format=overlay), so its
 * header parser must refuse anything malformed without reading a byte outside it, and what
 * it accepts must describe a layout the request code can trust.
 *
 * Input layout:
 *   0..4095  the header (an input that is shorter, or does not start with the magic, is
 *            parsed as it is); unless control bit 0 is set, the CRC at 4092 is recomputed
 *            over bytes 0..4091 first, so that mutations reach the checks behind it
 *   4096     control (0 when the input ends before it):
 *            bit 0 -> leave the CRC as it is
 *            bits 1-2 -> err buffer of 256, 1, 0 (NULL) or 13 bytes
 *            bit 3 -> also run overlay_check() on the input written to a temporary file;
 *                     a header that parses gets the harness's own base file's path
 *                     (/proc/self/fd/N) instead of its own, so no input picks what is opened
 *            bit 4 -> extend that file to the size its header describes
 *            bit 5 -> make the header's base inode and mtime those of the harness's base
 *            bit 6 -> hold a write lock on the base (another "VM" using it)
 *            bit 7 -> cut that file to (u16 at 4097) % 4096 bytes: a short header
 *   4097..   the rest of the file (the bitmap), written to the temporary file as it is
 *
 * The header is copied into an exact-size heap block so that ASan sees any stray read. The
 * parser's verdict must match a simple reference checker written here from the format; a
 * parsed header must satisfy the layout invariants (bitmap before data, data cluster-aligned,
 * a bit for every cluster, a non-empty base path), come out of overlay_header_build with the
 * same bytes, and overlay_layout must give it the same offsets again. overlay_layout also
 * runs on the raw cluster_bits and size of every input, CRC or not. The temporary files are
 * O_TMPFILE files (no name, gone when the process ends, crash or not) created once; when no
 * temporary directory supports O_TMPFILE the overlay_check part is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "backend/disk_overlay.h"
#include "fuzz.h"

#define HDR OVERLAY_HEADER_SIZE
#define CRC_OFF (HDR - 4)
#define PATH_LEN_OFF 84

#define C_KEEP_CRC 1u
#define C_CHECK 8u
#define C_EXTEND 16u
#define C_BASE_MATCH 32u
#define C_LOCK 64u
#define C_CUT 128u

static void fix_crc(uint8_t *p)
{
	le_put32(p + CRC_OFF, (uint32_t)crc32(0, p, CRC_OFF));
}

/* The one layout a (cluster_bits, size) may have, computed the slow and obvious way. */
static bool ref_layout(uint32_t cbits, uint64_t size, uint64_t *bm_bytes, uint64_t *data_off)
{
	if (cbits < 12 || cbits > 21 || size == 0 || size % 512 || size > (1ULL << 62))
		return false;
	uint64_t csize = 1ULL << cbits;
	uint64_t clusters = size / csize + (size % csize != 0);
	uint64_t bytes = clusters / 8 + (clusters % 8 != 0);
	bytes = (bytes + 4095) / 4096 * 4096;
	if (bytes > (64ULL << 20))
		return false;
	*bm_bytes = bytes;
	*data_off = (HDR + bytes + csize - 1) / csize * csize;
	return true;
}

/* The reference checker: the header rules, one after the other, nothing clever. */
static bool ref_valid(const uint8_t *p, size_t n)
{
	uint64_t bm_bytes, data_off;

	if (n < HDR || memcmp(p, "TERNOVL1", 8) != 0 || le_get32(p + 8) != 1)
		return false;
	if (le_get32(p + CRC_OFF) != (uint32_t)crc32(0, p, CRC_OFF))
		return false;
	if (le_get32(p + 12) != HDR || le_get32(p + 20) != 0)
		return false;
	uint64_t size = le_get64(p + 24), base_size = le_get64(p + 56);
	if (!ref_layout(le_get32(p + 16), size, &bm_bytes, &data_off))
		return false;
	if (le_get64(p + 32) != HDR || le_get64(p + 40) != bm_bytes || le_get64(p + 48) != data_off)
		return false;
	if (base_size < size || base_size >= size + 512 || le_get32(p + 80) >= 1000000000)
		return false;
	uint32_t plen = le_get32(p + PATH_LEN_OFF);
	return plen >= 1 && plen <= HDR - 4 - 88 && !memchr(p + 88, 0, plen);
}

/* What any successful overlay_layout must have produced. */
static void check_layout(const struct overlay_header *h)
{
	uint64_t csize = 1ULL << h->cluster_bits;
	uint64_t clusters = (h->size - 1) / csize + 1;

	ASSERT(h->cluster_bits >= OVERLAY_CLUSTER_BITS_MIN);
	ASSERT(h->cluster_bits <= OVERLAY_CLUSTER_BITS_MAX);
	ASSERT(h->size && h->size % 512 == 0 && h->size <= 1ULL << 62);
	ASSERT(h->bitmap_offset == OVERLAY_HEADER_SIZE);
	ASSERT(h->bitmap_bytes && h->bitmap_bytes % OVERLAY_BITMAP_CHUNK == 0);
	ASSERT(h->bitmap_bytes <= OVERLAY_BITMAP_MAX);
	ASSERT(h->data_offset >= h->bitmap_offset + h->bitmap_bytes);
	ASSERT(h->data_offset % csize == 0);
	ASSERT(h->bitmap_bytes * 8 >= clusters);
	/* And no larger than it has to be. */
	ASSERT(h->bitmap_bytes - OVERLAY_BITMAP_CHUNK < (clusters + 7) / 8);
	ASSERT(h->data_offset - (h->bitmap_offset + h->bitmap_bytes) < csize);
	/* The whole file stays far from overflowing an off_t. */
	ASSERT(h->data_offset + h->size > h->size && h->data_offset + h->size < 1ULL << 63);
}

static void check_err(int r, const char *err, size_t errlen)
{
	ASSERT(r == -EINVAL);
	/* A message, cut to fit, always terminated. */
	if (errlen)
		ASSERT(memchr(err, 0, errlen) != NULL);
	if (errlen > 1)
		ASSERT(err[0] != 0);
}

/* overlay_layout on whatever cluster_bits and size the input holds. */
static void raw_layout(const uint8_t *p, size_t n, char *err, size_t errlen)
{
	struct overlay_header h;
	uint64_t bm_bytes = 0, data_off = 0;

	if (n < 32)
		return;
	memset(&h, 0, sizeof(h));
	h.cluster_bits = le_get32(p + 16);
	h.size = le_get64(p + 24);
	bool valid = ref_layout(h.cluster_bits, h.size, &bm_bytes, &data_off);
	int r = overlay_layout(&h, err, errlen);
	ASSERT(valid == (r == 0));
	if (r) {
		check_err(r, err, errlen);
		return;
	}
	check_layout(&h);
	ASSERT(h.bitmap_bytes == bm_bytes && h.data_offset == data_off);
}

/* ---- overlay_check on a temporary file ---- */

static int ovl_fd = -1, base_fd = -1, lock_fd = -1;
static char ovl_path[32], base_path[32];

static int tmpfile_in(const char *dir)
{
	return dir && *dir ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
}

/* Once: an unnamed overlay file and base file; false if there is nowhere to make them. */
static bool tmp_files(void)
{
	static int state; /* 0 not tried, 1 ready, -1 unavailable */
	const char *dirs[] = { getenv("TMPDIR"), "/dev/shm", "/tmp" };

	if (state)
		return state > 0;
	state = -1;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && ovl_fd < 0; i++) {
		ovl_fd = tmpfile_in(dirs[i]);
		if (ovl_fd >= 0)
			base_fd = tmpfile_in(dirs[i]);
		if (base_fd < 0 && ovl_fd >= 0) {
			close(ovl_fd);
			ovl_fd = -1;
		}
	}
	if (ovl_fd < 0) {
		fprintf(stderr, "fuzz_overlay: no O_TMPFILE directory, overlay_check skipped\n");
		return false;
	}
	snprintf(ovl_path, sizeof(ovl_path), "/proc/self/fd/%d", ovl_fd);
	snprintf(base_path, sizeof(base_path), "/proc/self/fd/%d", base_fd);
	/* A second open file description of the base, for a write lock that conflicts. */
	lock_fd = open(base_path, O_RDWR | O_CLOEXEC);
	ASSERT(lock_fd >= 0);
	state = 1;
	return true;
}

static void lock_base(bool on)
{
	struct flock fl = { .l_type = on ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET };

	ASSERT(fcntl(lock_fd, F_OFD_SETLK, &fl) == 0);
}

/* The lowest free descriptor: overlay_check must leave none open. */
static int lowest_free_fd(void)
{
	int fd = fcntl(ovl_fd, F_DUPFD_CLOEXEC, 0);

	ASSERT(fd >= 0);
	close(fd);
	return fd;
}

/*
 * Writes the input as a file (with the harness's base in its header if that parses) and
 * checks overlay_check's verdict against what it has to find: the parser's for a bad header
 * (with the same message), then the file's size, the lock, and whether the base is still the
 * one in the header. file is the input, n bytes, the header's CRC already fixed.
 */
static void check_file(uint8_t *file, size_t n, unsigned int ctrl, char *errbuf, size_t errlen)
{
	char *err = errlen ? errbuf : NULL;
	char perr[256];
	struct overlay_header h;
	struct stat st, bst;
	int want;

	if (!tmp_files())
		return;
	memset(&bst, 0, sizeof(bst));
	if (overlay_header_parse(file, n < HDR ? n : HDR, &h, NULL, 0) == 0) {
		size_t plen = strlen(base_path);
		/* The parser allows any byte after the path: leave the old one's tail there. */
		memcpy(file + OVERLAY_BASE_PATH_OFF, base_path, plen);
		le_put32(file + PATH_LEN_OFF, (uint32_t)plen);
		ASSERT(ftruncate(base_fd, 0) == 0);
		/* As large as the header says; a file system may refuse the largest sizes. */
		(void)!ftruncate(base_fd, (off_t)le_get64(file + 56));
		ASSERT(fstat(base_fd, &bst) == 0);
		if (ctrl & C_BASE_MATCH) {
			le_put64(file + 64, (uint64_t)bst.st_ino);
			le_put64(file + 72, (uint64_t)bst.st_mtim.tv_sec);
			le_put32(file + 80, (uint32_t)bst.st_mtim.tv_nsec);
		}
		fix_crc(file);
	}
	if (ctrl & C_CUT && n >= HDR + 3)
		n = (file[HDR + 1] | (size_t)file[HDR + 2] << 8) % HDR;
	ASSERT(ftruncate(ovl_fd, 0) == 0);
	ASSERT(n == 0 || pwrite(ovl_fd, file, n, 0) == (ssize_t)n);

	/* What overlay_check reads: the file's first 4 KiB (or all of a shorter one). */
	size_t hn = n < HDR ? n : HDR;
	uint8_t *hdr = malloc(hn ? hn : 1);
	ASSERT(hdr);
	if (hn)
		memcpy(hdr, file, hn);
	int pr = overlay_header_parse(hdr, hn, &h, errlen ? perr : NULL, errlen);
	free(hdr);
	/* Never a base the input chose: only the harness's own is ever opened. */
	if (pr == 0)
		ASSERT(strcmp(h.base_path, base_path) == 0);
	if (pr == 0 && ctrl & C_EXTEND)
		(void)!ftruncate(ovl_fd, (off_t)(h.data_offset + h.size));
	lock_base(ctrl & C_LOCK);
	ASSERT(fstat(ovl_fd, &st) == 0);

	if (pr)
		want = pr;
	else if ((uint64_t)st.st_size != h.data_offset + h.size)
		want = -EINVAL;
	else if (ctrl & C_LOCK)
		want = -EBUSY;
	else if ((uint64_t)bst.st_size != h.base_size || (uint64_t)bst.st_ino != h.base_ino ||
		 (int64_t)bst.st_mtim.tv_sec != h.base_mtime_sec ||
		 (uint32_t)bst.st_mtim.tv_nsec != h.base_mtime_nsec)
		want = -ESTALE;
	else
		want = 0;

	int fd = lowest_free_fd();
	memset(errbuf, 0x5a, 256);
	int r = overlay_check(ovl_path, err, errlen);
	ASSERT(lowest_free_fd() == fd);
	ASSERT(r == want);
	/* A bad header: the parser's own words. */
	if (pr && errlen)
		ASSERT(strcmp(err, perr) == 0);
	if (r && errlen)
		ASSERT(memchr(err, 0, errlen) != NULL);
	if (r && errlen > 1)
		ASSERT(err[0] != 0);
	if (ctrl & C_LOCK)
		lock_base(false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t errlens[4] = { 256, 1, 0, 13 };
	unsigned int ctrl = size > HDR ? data[HDR] : 0;
	size_t errlen = errlens[(ctrl >> 1) & 3];
	char errbuf[256];
	char *err = errlen ? errbuf : NULL;
	struct overlay_header h, h2;

	/* The header alone, in an exact-size block: the parser is given no more. */
	size_t n = size < HDR ? size : HDR;
	uint8_t *file = malloc(size ? size : 1);
	ASSERT(file);
	if (size)
		memcpy(file, data, size);
	if (n == HDR && !memcmp(file, OVERLAY_MAGIC, 8) && !(ctrl & C_KEEP_CRC))
		fix_crc(file);
	uint8_t *hdr = malloc(n ? n : 1);
	ASSERT(hdr);
	if (n)
		memcpy(hdr, file, n);

	raw_layout(hdr, n, err, errlen);

	memset(errbuf, 0x5a, sizeof(errbuf));
	bool valid = ref_valid(hdr, n);
	int r = overlay_header_parse(hdr, n, &h, err, errlen);
	ASSERT(valid == (r == 0));
	if (r) {
		check_err(r, err, errlen);
		if (ctrl & C_CHECK)
			check_file(file, size, ctrl, errbuf, errlen);
		free(hdr);
		free(file);
		return 0;
	}

	/* The invariants the request code relies on. */
	ASSERT(h.version == OVERLAY_VERSION);
	check_layout(&h);
	uint32_t plen = le_get32(hdr + PATH_LEN_OFF);
	ASSERT(strlen(h.base_path) > 0 && strlen(h.base_path) == plen);
	ASSERT(memcmp(h.base_path, hdr + OVERLAY_BASE_PATH_OFF, plen) == 0);
	ASSERT(h.base_size >= h.size && h.base_size - h.size < 512);
	ASSERT(h.base_mtime_nsec < 1000000000);

	/* overlay_layout gives a parsed header the layout it has. */
	h2 = h;
	h2.bitmap_offset = h2.bitmap_bytes = h2.data_offset = 0;
	ASSERT(overlay_layout(&h2, err, errlen) == 0);
	ASSERT(h2.bitmap_offset == h.bitmap_offset && h2.bitmap_bytes == h.bitmap_bytes);
	ASSERT(h2.data_offset == h.data_offset);

	/* Built again: the same bytes up to the end of the path, and it parses the same. */
	uint8_t *built = malloc(HDR);
	ASSERT(built);
	overlay_header_build(&h, built);
	ASSERT(memcmp(built, hdr, OVERLAY_BASE_PATH_OFF + plen) == 0);
	ASSERT(overlay_header_parse(built, HDR, &h2, err, errlen) == 0);
	ASSERT(h2.version == h.version && h2.cluster_bits == h.cluster_bits);
	ASSERT(h2.size == h.size && h2.bitmap_offset == h.bitmap_offset);
	ASSERT(h2.bitmap_bytes == h.bitmap_bytes && h2.data_offset == h.data_offset);
	ASSERT(h2.base_size == h.base_size && h2.base_ino == h.base_ino);
	ASSERT(h2.base_mtime_sec == h.base_mtime_sec && h2.base_mtime_nsec == h.base_mtime_nsec);
	ASSERT(strcmp(h2.base_path, h.base_path) == 0);
	free(built);

	if (ctrl & C_CHECK)
		check_file(file, size, ctrl, errbuf, errlen);
	free(hdr);
	free(file);
	return 0;
}
