/* Writing and mapping snapshot memory files (see mem_file.h). */
#include "vmstate/mem_file.h"
#include "core/util.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "TERNMEM1"
#define CHUNK (64 * 1024ULL) /* zero detection and write granularity of full files */

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Trailer layout: magic 8, kind 4, size 8, id 16, base_id 16, path_len 4, path, crc 4 at end. */
static void encode_trailer(const struct mem_file_info *in, uint8_t *t)
{
	size_t plen = strlen(in->base_path);

	memset(t, 0, MEM_FILE_TRAILER);
	memcpy(t, MAGIC, 8);
	put_le(t + 8, in->kind, 4);
	put_le(t + 12, in->size, 8);
	memcpy(t + 20, in->id, 16);
	memcpy(t + 36, in->base_id, 16);
	put_le(t + 52, plen, 4);
	memcpy(t + 56, in->base_path, plen);
	put_le(t + MEM_FILE_TRAILER - 4, vmstate_crc32(0, t, MEM_FILE_TRAILER - 4), 4);
}

int mem_file_write(const struct guest_mem *m, int fd, const uint8_t *dirty,
		   const struct mem_file_info *base, struct mem_file_info *info)
{
	uint64_t size = m->size;
	int r;

	memset(info, 0, sizeof(*info));
	info->kind = dirty ? MEM_FILE_DIFF : MEM_FILE_FULL;
	info->size = size;
	if (getrandom(info->id, sizeof(info->id), 0) != sizeof(info->id))
		return -EIO;
	if (dirty) {
		memcpy(info->base_id, base->id, 16);
		snprintf(info->base_path, sizeof(info->base_path), "%s", base->base_path);
	}
	/* Sized first: whatever is not written below stays a hole (reads as zeros). */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)(size + MEM_FILE_TRAILER)) < 0)
		return -errno;
	if (!dirty) {
		for (uint64_t off = 0; off < size; off += CHUNK) {
			uint64_t len = size - off < CHUNK ? size - off : CHUNK;
			if (mem_is_zero(m->host + off, len))
				continue;
			if ((r = pwrite_all(fd, m->host + off, len, (off_t)off)))
				return r;
		}
	} else {
		uint64_t pages = size / MEM_FILE_PAGE;
		for (uint64_t p = 0; p < pages;) {
			if (!(dirty[p / 8] & (1u << (p % 8)))) {
				p++;
				continue;
			}
			uint64_t q = p;
			while (q < pages && (dirty[q / 8] & (1u << (q % 8))))
				q++;
			if ((r = pwrite_all(fd, m->host + p * MEM_FILE_PAGE,
					    (q - p) * MEM_FILE_PAGE, (off_t)(p * MEM_FILE_PAGE))))
				return r;
			p = q;
		}
		uint64_t bm = (pages + 7) / 8;
		if ((r = pwrite_all(fd, dirty, bm, (off_t)(size + MEM_FILE_TRAILER))))
			return r;
	}
	uint8_t *t = malloc(MEM_FILE_TRAILER);
	if (!t)
		return -ENOMEM;
	encode_trailer(info, t);
	r = pwrite_all(fd, t, MEM_FILE_TRAILER, (off_t)size);
	free(t);
	return r;
}

static int read_trailer(int fd, uint64_t size, struct mem_file_info *info, const char *path,
			char *err, size_t n)
{
	uint8_t *t = malloc(MEM_FILE_TRAILER);
	struct stat st;
	int r = 0;

	if (!t)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	if (fstat(fd, &st) < 0) {
		r = fail_msg(err, n, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size < size + MEM_FILE_TRAILER) {
		r = fail_msg(err, n, -EINVAL,
			     "%s: %llu bytes; a memory file for %llu MiB of RAM has "
			     "at least %llu",
			     path, (unsigned long long)st.st_size, (unsigned long long)(size >> 20),
			     (unsigned long long)(size + MEM_FILE_TRAILER));
		goto out;
	}
	if (pread(fd, t, MEM_FILE_TRAILER, (off_t)size) != (ssize_t)MEM_FILE_TRAILER) {
		r = fail_msg(err, n, -EIO, "%s: cannot read its trailer", path);
		goto out;
	}
	if (memcmp(t, MAGIC, 8) ||
	    get_le(t + MEM_FILE_TRAILER - 4, 4) != vmstate_crc32(0, t, MEM_FILE_TRAILER - 4)) {
		r = fail_msg(err, n, -EINVAL, "%s: not a tern memory file, or a damaged one", path);
		goto out;
	}
	memset(info, 0, sizeof(*info));
	info->kind = (enum mem_file_kind)get_le(t + 8, 4);
	info->size = get_le(t + 12, 8);
	memcpy(info->id, t + 20, 16);
	memcpy(info->base_id, t + 36, 16);
	uint64_t plen = get_le(t + 52, 4);
	if (info->kind > MEM_FILE_DIFF || info->size != size || plen > MEM_FILE_BASE_PATH_MAX ||
	    (info->kind == MEM_FILE_DIFF && plen == 0)) {
		r = fail_msg(err, n, -EINVAL, "%s: its trailer does not describe %llu MiB of RAM",
			     path, (unsigned long long)(size >> 20));
		goto out;
	}
	memcpy(info->base_path, t + 56, plen);
	info->base_path[plen] = 0;
out:
	free(t);
	return r;
}

int mem_file_read_info(int fd, struct mem_file_info *info, char *err, size_t n)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return fail_msg(err, n, -errno, "%s", strerror(errno));
	if ((uint64_t)st.st_size < MEM_FILE_TRAILER)
		return fail_msg(err, n, -EINVAL, "too small for a tern memory file");
	/* A full file is RAM + trailer; a diff adds its bitmap: try both sizes. */
	uint64_t size = (uint64_t)st.st_size - MEM_FILE_TRAILER;
	if (read_trailer(fd, size, info, "memory file", err, n) == 0)
		return 0;
	for (uint64_t pages = size / MEM_FILE_PAGE; pages; pages--) {
		uint64_t ram = pages * MEM_FILE_PAGE;
		if (ram + (pages + 7) / 8 == size)
			return read_trailer(fd, ram, info, "memory file", err, n);
		if (ram + (pages + 7) / 8 < size)
			break;
	}
	return fail_msg(err, n, -EINVAL, "not a tern memory file");
}

/* Maps one file of a chain over [host, host + size): the whole of it, or its pages. */
static int map_level(uint8_t *host, uint64_t size, const char *path, const uint8_t id[16],
		     unsigned int depth, char *err, size_t n)
{
	struct mem_file_info info;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return fail_msg(err, n, -errno, "memory file '%s': %s", path, strerror(errno));
	if ((r = read_trailer(fd, size, &info, path, err, n)))
		goto out;
	if (memcmp(info.id, id, 16)) {
		r = fail_msg(err, n, -EINVAL,
			     "memory file '%s' belongs to another snapshot than its state file",
			     path);
		goto out;
	}
	if (info.kind == MEM_FILE_FULL) {
		if (mmap(host, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0) == MAP_FAILED)
			r = fail_msg(err, n, -errno, "cannot map '%s': %s", path, strerror(errno));
		goto out;
	}
	if (depth >= MEM_FILE_MAX_CHAIN) {
		r = fail_msg(err, n, -EINVAL, "'%s': more than %d diff snapshots on one full one",
			     path, MEM_FILE_MAX_CHAIN);
		goto out;
	}
	if ((r = map_level(host, size, info.base_path, info.base_id, depth + 1, err, n)))
		goto out;
	uint64_t pages = size / MEM_FILE_PAGE, bm_len = (pages + 7) / 8;
	uint8_t *bm = malloc(bm_len);
	if (!bm) {
		r = fail_msg(err, n, -ENOMEM, "out of memory");
		goto out;
	}
	if (pread(fd, bm, bm_len, (off_t)(size + MEM_FILE_TRAILER)) != (ssize_t)bm_len) {
		r = fail_msg(err, n, -EIO, "'%s': cannot read its page bitmap", path);
		free(bm);
		goto out;
	}
	for (uint64_t p = 0; p < pages && !r;) {
		if (!(bm[p / 8] & (1u << (p % 8)))) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < pages && (bm[q / 8] & (1u << (q % 8))))
			q++;
		if (mmap(host + p * MEM_FILE_PAGE, (q - p) * MEM_FILE_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
			 (off_t)(p * MEM_FILE_PAGE)) == MAP_FAILED)
			r = fail_msg(err, n, -errno, "cannot map pages of '%s': %s", path,
				     strerror(errno));
		p = q;
	}
	free(bm);
out:
	close(fd);
	return r;
}

int mem_file_check_chain(const char *path, uint64_t size, const uint8_t id[16], const char *avoid,
			 char *err, size_t n)
{
	char cur[MEM_FILE_BASE_PATH_MAX + 1];
	uint8_t want[16];
	int r = 0;

	snprintf(cur, sizeof(cur), "%s", path);
	memcpy(want, id, 16);
	for (unsigned int depth = 0;; depth++) {
		struct mem_file_info info;
		char abs[PATH_MAX];
		int fd = open(cur, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail_msg(err, n, -errno, "%smemory file '%s': %s",
					depth ? "base " : "", cur, strerror(errno));
		r = read_trailer(fd, size, &info, cur, err, n);
		close(fd);
		if (r)
			return r;
		if (memcmp(info.id, want, 16))
			return fail_msg(err, n, -EINVAL,
					"%smemory file '%s' belongs to another snapshot",
					depth ? "base " : "", cur);
		if (avoid && realpath(cur, abs) && !strcmp(abs, avoid))
			return fail_msg(
				err, n, -EINVAL,
				"'%s' is a memory file this snapshot builds on; a diff cannot "
				"replace it",
				avoid);
		if (info.kind == MEM_FILE_FULL)
			return 0;
		if (depth + 1 >= MEM_FILE_MAX_CHAIN)
			return fail_msg(err, n, -EINVAL,
					"more than %d diff snapshots on one full one",
					MEM_FILE_MAX_CHAIN);
		snprintf(cur, sizeof(cur), "%s", info.base_path);
		memcpy(want, info.base_id, 16);
	}
}

int mem_file_map(struct guest_mem *m, const char *path, uint64_t size, const uint8_t id[16],
		 char *err, size_t n)
{
	/* Reserve the range first; each level of the chain is then mapped over it. */
	void *host =
		mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int r;

	if (host == MAP_FAILED)
		return fail_msg(err, n, -errno, "cannot reserve %llu MiB: %s",
				(unsigned long long)(size >> 20), strerror(errno));
	if ((r = map_level(host, size, path, id, 0, err, n))) {
		munmap(host, size);
		return r;
	}
	guest_mem_layout(m, size);
	m->host = host;
	return 0;
}

int mem_file_load(struct guest_mem *m, const char *path, const uint8_t id[16], char *err, size_t n)
{
	uint64_t size = m->size;
	struct guest_mem file;
	int r;

	if ((r = mem_file_map(&file, path, size, id, err, n)))
		return r;
	/* Holes read as zeros without a disk read, and the pages of m under them stay untouched. */
	for (uint64_t off = 0; off < size; off += MEM_FILE_PAGE)
		if (!mem_is_zero(file.host + off, MEM_FILE_PAGE))
			memcpy(m->host + off, file.host + off, MEM_FILE_PAGE);
	munmap(file.host, size);
	return 0;
}
