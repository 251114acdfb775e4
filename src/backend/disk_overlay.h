/*
 * Copy-on-write overlays: a sparse file in front of a read-only base image. Clones get
 * one per writable disk where the file system has no reflinks; docs/overlay.md has the
 * format. In short (little-endian): a 4 KiB header naming the base and how it looked
 * when the overlay was made, a bitmap with one bit per cluster (set: the cluster's data
 * is in this file), and the data area, where cluster i sits at data_offset + i * cluster
 * size. That identity mapping keeps the file sparse: it holds only what was written.
 */
#ifndef TERN_BACKEND_DISK_OVERLAY_H
#define TERN_BACKEND_DISK_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OVERLAY_MAGIC "TERNOVL1"
#define OVERLAY_VERSION 1
#define OVERLAY_HEADER_SIZE 4096
#define OVERLAY_BITMAP_CHUNK 4096 /* the bitmap is written back in pieces of this size */
#define OVERLAY_CLUSTER_BITS_DEFAULT 16
#define OVERLAY_CLUSTER_BITS_MIN 12
#define OVERLAY_CLUSTER_BITS_MAX 21
#define OVERLAY_BITMAP_MAX (64ULL << 20) /* 32 TiB of 64 KiB clusters */
#define OVERLAY_BASE_PATH_OFF 88
#define OVERLAY_BASE_PATH_MAX (OVERLAY_HEADER_SIZE - 4 - OVERLAY_BASE_PATH_OFF)

struct overlay_header {
	uint32_t version, cluster_bits;
	uint64_t size; /* what the guest sees, bytes, a multiple of 512 */
	uint64_t bitmap_offset, bitmap_bytes, data_offset;
	/* The base as it was when the overlay was made: any change makes the overlay stale. */
	uint64_t base_size, base_ino;
	int64_t base_mtime_sec;
	uint32_t base_mtime_nsec;
	char base_path[OVERLAY_BASE_PATH_MAX + 1];
};

/*
 * Fills bitmap_offset, bitmap_bytes and data_offset from size and cluster_bits (the only
 * layout an overlay may have). 0, or -EINVAL and why when they are out of range.
 */
int overlay_layout(struct overlay_header *h, char *err, size_t n);
/* Checks a header, its CRC and its layout. 0, or -EINVAL and the reason in err. */
int overlay_header_parse(const uint8_t *buf, size_t len, struct overlay_header *h, char *err,
			 size_t n);
void overlay_header_build(const struct overlay_header *h, uint8_t buf[OVERLAY_HEADER_SIZE]);
/* The base path the overlay file at path names (n: at least OVERLAY_BASE_PATH_MAX + 1).
 * 0, or -errno (-EINVAL: not a sound overlay). */
int overlay_base_of(const char *path, char *base, size_t n);

/*
 * Makes a new overlay file at path (which must not exist) in front of base, as large as
 * base. 0, or -errno and the reason in err; nothing is left behind on failure.
 */
int overlay_create(const char *path, const char *base, char *err, size_t n);
/*
 * What disk_open would find wrong with the overlay at path, for refusing a start or a
 * restore before anything is built: a bad header, a base that changed, is missing or
 * another process holds for writing. 0, or -errno and the reason in err.
 */
int overlay_check(const char *path, char *err, size_t n);

struct disk;
struct disk_req;
/*
 * For disk_open: d->fd is the locked overlay file. Reads and checks the header and the
 * bitmap, opens and read-locks the base, and sets d->size. 0, or -errno and why.
 */
int overlay_attach(struct disk *d, const char **why);
void overlay_detach(struct disk *d);
/* One request, synchronously, on any thread (disk_do_sync for overlays). */
int overlay_do_sync(struct disk *d, const struct disk_req *r);

#endif
