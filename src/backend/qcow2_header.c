/*
 * The qcow2 header: parsing (every field checked against the file it came from), the
 * header extensions (backing format, feature names), the feature bits, and building a
 * header for qcow2_create. Layout: QEMU's docs/interop/qcow2.txt, all fields big-endian.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "backend/qcow2_impl.h"
#include "core/log.h"

void q2_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (!err || !n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

int q2_eio(const struct qcow2 *q, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("qcow2 %s: %s", q->path, msg);
	return -EIO;
}

int q2_pread(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			/* Past the end of the file: what a sparse tail would read as. */
			memset(p, 0, len);
			return 0;
		}
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

int q2_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

bool qcow2_probe(const uint8_t *buf, size_t len)
{
	return len >= 4 && memcmp(buf, QCOW2_MAGIC, 4) == 0;
}

/* Names QEMU gives the incompatible bits, for images without a feature-name table. */
static const char *const incompat_default[] = { "dirty bit", "corrupt bit", "external data file",
						"compression type", "extended L2 entries" };

/* A feature name from the table, made printable (it is hostile text going into a message). */
static void copy_name(char *dst, const uint8_t *src)
{
	size_t i;

	for (i = 0; i < 46 && src[i]; i++)
		dst[i] = isprint(src[i]) ? (char)src[i] : '?';
	dst[i] = 0;
}

static int parse_extensions(const uint8_t *buf, size_t start, size_t limit, struct q2_header *h,
			    char names[64][47], char *err, size_t n)
{
	size_t off = start;

	while (off + 8 <= limit) {
		uint32_t type = be_get32(buf + off), len = be_get32(buf + off + 4);
		off += 8;
		if (type == Q2_EXT_END)
			return 0;
		if (len > limit - off) {
			q2_err(err, n,
			       "header extension 0x%08x: length %u runs past the header cluster",
			       type, len);
			return -EINVAL;
		}
		if (type == Q2_EXT_BACKING_FMT) {
			if (len == 0 || len >= sizeof(h->backing_fmt) ||
			    memchr(buf + off, 0, len)) {
				q2_err(err, n, "backing format extension: bad length %u or name",
				       len);
				return -EINVAL;
			}
			memcpy(h->backing_fmt, buf + off, len);
			h->backing_fmt[len] = 0;
		} else if (type == Q2_EXT_FEATURES) {
			for (size_t i = 0; i + 48 <= len; i += 48) {
				const uint8_t *e = buf + off + i;
				if (e[0] == 0 && e[1] < 64)
					copy_name(names[e[1]], e + 2);
			}
		}
		/* Unknown extensions are skipped, as the specification asks. */
		size_t padded = ((size_t)len + 7) & ~(size_t)7;
		if (padded > limit - off)
			return 0; /* the last one, unpadded at the very end: nothing follows */
		off += padded;
	}
	return 0;
}

int q2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct q2_header *h,
		    char *err, size_t n)
{
	char names[64][47];

	memset(h, 0, sizeof(*h));
	memset(names, 0, sizeof(names));
	if (len < Q2_HDR_V2_LEN) {
		q2_err(err, n, "file too short for a qcow2 header (%zu bytes)", len);
		return -EINVAL;
	}
	if (!qcow2_probe(buf, len)) {
		q2_err(err, n, "not a qcow2 image (bad magic)");
		return -EINVAL;
	}
	h->version = be_get32(buf + 4);
	if (h->version != 2 && h->version != 3) {
		q2_err(err, n, "version %u is not supported (only 2 and 3)", h->version);
		return -EINVAL;
	}
	h->backing_off = be_get64(buf + 8);
	h->backing_len = be_get32(buf + 16);
	h->cluster_bits = be_get32(buf + 20);
	h->size = be_get64(buf + 24);
	uint32_t crypt = be_get32(buf + 32);
	h->l1_size = be_get32(buf + 36);
	h->l1_off = be_get64(buf + 40);
	h->rt_off = be_get64(buf + 48);
	h->rt_clusters = be_get32(buf + 56);
	h->nb_snapshots = be_get32(buf + 60);
	h->snapshots_off = be_get64(buf + 64);
	h->refcount_order = 4;
	h->header_len = Q2_HDR_V2_LEN;

	if (h->cluster_bits < QCOW2_CLUSTER_BITS_MIN || h->cluster_bits > QCOW2_CLUSTER_BITS_MAX) {
		q2_err(err, n, "cluster_bits %u is out of range (%u..%u)", h->cluster_bits,
		       QCOW2_CLUSTER_BITS_MIN, QCOW2_CLUSTER_BITS_MAX);
		return -EINVAL;
	}
	uint64_t cs = 1ull << h->cluster_bits;
	size_t hlimit = len < cs ? len : (size_t)cs;

	if (h->version == 3) {
		if (len < Q2_HDR_V3_LEN) {
			q2_err(err, n, "file too short for a version 3 header (%zu bytes)", len);
			return -EINVAL;
		}
		h->incompat = be_get64(buf + 72);
		h->compat = be_get64(buf + 80);
		h->autoclear = be_get64(buf + 88);
		h->refcount_order = be_get32(buf + 96);
		h->header_len = be_get32(buf + 100);
		if (h->header_len < Q2_HDR_V3_LEN || h->header_len > cs) {
			q2_err(err, n, "header_length %u is out of range (104..cluster size)",
			       h->header_len);
			return -EINVAL;
		}
		if (h->header_len > len) {
			q2_err(err, n, "header_length %u runs past the end of the file",
			       h->header_len);
			return -EINVAL;
		}
		if (h->refcount_order > 6) {
			q2_err(err, n, "refcount_order %u is out of range (0..6)",
			       h->refcount_order);
			return -EINVAL;
		}
		h->compression = h->header_len > 104 ? buf[104] : Q2_COMP_ZLIB;
	}
	if (crypt != 0) {
		q2_err(err, n, "crypt_method %u: encrypted images are not supported", crypt);
		return -EINVAL;
	}

	/* The backing file name lives in the first cluster, after the extensions. */
	size_t ext_limit = hlimit;
	if (h->backing_off) {
		if (h->backing_len == 0 || h->backing_len > Q2_BACKING_NAME_MAX) {
			q2_err(err, n, "backing_file_size %u is out of range (1..%u)",
			       h->backing_len, Q2_BACKING_NAME_MAX);
			return -EINVAL;
		}
		if (h->backing_off < h->header_len || h->backing_off > hlimit ||
		    h->backing_len > hlimit - h->backing_off) {
			q2_err(err, n,
			       "backing_file_offset %llu: the name is not inside the header "
			       "cluster",
			       (unsigned long long)h->backing_off);
			return -EINVAL;
		}
		if (memchr(buf + h->backing_off, 0, h->backing_len)) {
			q2_err(err, n, "backing file name contains a NUL byte");
			return -EINVAL;
		}
		memcpy(h->backing, buf + h->backing_off, h->backing_len);
		h->backing[h->backing_len] = 0;
		ext_limit = (size_t)h->backing_off;
	}
	int r = parse_extensions(buf, h->header_len, ext_limit, h, names, err, n);
	if (r)
		return r;

	/* Feature bits: anything we cannot honour is refused by name. */
	const uint64_t known = Q2_INCOMPAT_DIRTY | Q2_INCOMPAT_CORRUPT | Q2_INCOMPAT_COMPRESSION;
	for (unsigned b = 0; b < 64; b++) {
		if (!(h->incompat & (1ull << b)) || (known & (1ull << b)))
			continue;
		const char *name = names[b][0] ? names[b] : b < 5 ? incompat_default[b] : NULL;
		if (name)
			q2_err(err, n, "incompatible feature '%s' (bit %u) is not supported", name,
			       b);
		else
			q2_err(err, n, "incompatible feature bit %u is not supported", b);
		return -ENOTSUP;
	}
	if (h->compression > Q2_COMP_ZSTD) {
		q2_err(err, n, "compression_type %u is not supported (0 zlib, 1 zstd)",
		       h->compression);
		return -ENOTSUP;
	}
	if ((h->compression != Q2_COMP_ZLIB) != !!(h->incompat & Q2_INCOMPAT_COMPRESSION)) {
		q2_err(err, n, "compression_type %u disagrees with incompatible bit 3",
		       h->compression);
		return -EINVAL;
	}

	/* Sizes and tables. */
	if (h->size > Q2_SIZE_MAX) {
		q2_err(err, n, "size %llu is larger than %llu", (unsigned long long)h->size,
		       (unsigned long long)Q2_SIZE_MAX);
		return -EINVAL;
	}
	unsigned l2_bits = h->cluster_bits - 3;
	uint64_t per_l1 = cs << l2_bits; /* guest bytes one L2 table maps */
	uint64_t need = (h->size + per_l1 - 1) / per_l1;
	if ((uint64_t)h->l1_size * 8 > Q2_L1_MAX_BYTES) {
		q2_err(err, n, "l1_size %u is larger than %u entries", h->l1_size,
		       Q2_L1_MAX_BYTES / 8);
		return -EINVAL;
	}
	if (h->l1_size < need) {
		q2_err(err, n, "l1_size %u is too small for size %llu (needs %llu)", h->l1_size,
		       (unsigned long long)h->size, (unsigned long long)need);
		return -EINVAL;
	}
	if (h->l1_size) {
		if (h->l1_off & (cs - 1)) {
			q2_err(err, n, "l1_table_offset %llu is not cluster-aligned",
			       (unsigned long long)h->l1_off);
			return -EINVAL;
		}
		if (h->l1_off == 0) {
			q2_err(err, n, "l1_table_offset 0 overlaps the header");
			return -EINVAL;
		}
		if (h->l1_off >= Q2_OFF_MAX || h->l1_off + (uint64_t)h->l1_size * 8 > file_size) {
			q2_err(err, n,
			       "l1_table_offset %llu: the L1 table runs past the end of the file",
			       (unsigned long long)h->l1_off);
			return -EINVAL;
		}
	}
	if (h->rt_off & (cs - 1)) {
		q2_err(err, n, "refcount_table_offset %llu is not cluster-aligned",
		       (unsigned long long)h->rt_off);
		return -EINVAL;
	}
	if (h->rt_off == 0) {
		q2_err(err, n, "refcount_table_offset 0 overlaps the header");
		return -EINVAL;
	}
	if (h->rt_clusters == 0 || (uint64_t)h->rt_clusters * cs > Q2_RT_MAX_BYTES) {
		q2_err(err, n, "refcount_table_clusters %u is out of range (1..%llu)",
		       h->rt_clusters, (unsigned long long)(Q2_RT_MAX_BYTES / cs));
		return -EINVAL;
	}
	uint64_t rt_bytes = (uint64_t)h->rt_clusters * cs;
	if (h->rt_off >= Q2_OFF_MAX || h->rt_off + rt_bytes > file_size) {
		q2_err(err, n,
		       "refcount_table_offset %llu: the table runs past the end of the file",
		       (unsigned long long)h->rt_off);
		return -EINVAL;
	}
	uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
	if (h->l1_size && h->l1_off < h->rt_off + rt_bytes && h->rt_off < h->l1_off + l1_bytes) {
		q2_err(err, n, "refcount_table_offset %llu overlaps the L1 table",
		       (unsigned long long)h->rt_off);
		return -EINVAL;
	}
	if (h->nb_snapshots) {
		if (h->nb_snapshots > 65536 || (h->snapshots_off & (cs - 1)) ||
		    h->snapshots_off == 0 || h->snapshots_off >= file_size) {
			q2_err(err, n, "snapshots_offset %llu / nb_snapshots %u are out of range",
			       (unsigned long long)h->snapshots_off, h->nb_snapshots);
			return -EINVAL;
		}
	}
	return 0;
}

/* The feature names QEMU writes, so that other tools can name what they find. */
static const struct {
	uint8_t type, bit;
	const char *name;
} feature_names[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

static size_t put_ext(uint8_t *buf, size_t off, uint32_t type, const void *data, uint32_t len)
{
	be_put32(buf + off, type);
	be_put32(buf + off + 4, len);
	memcpy(buf + off + 8, data, len);
	return off + 8 + ((len + 7u) & ~7u);
}

size_t q2_header_build(const struct q2_header *h, uint8_t *buf, size_t cs)
{
	size_t nf = sizeof(feature_names) / sizeof(feature_names[0]);
	size_t blen = strlen(h->backing), flen = strlen(h->backing_fmt);
	size_t fixed = 112 + (flen ? 8 + ((flen + 7) & ~(size_t)7) : 0) + 8 + blen;
	/* The feature-name table is optional: left out when a small cluster has no room. */
	bool with_names = fixed + 8 + nf * 48 <= cs;

	if (fixed > cs)
		return 0;
	memset(buf, 0, cs);
	memcpy(buf, QCOW2_MAGIC, 4);
	be_put32(buf + 4, h->version);
	be_put32(buf + 20, h->cluster_bits);
	be_put64(buf + 24, h->size);
	be_put32(buf + 36, h->l1_size);
	be_put64(buf + 40, h->l1_off);
	be_put64(buf + 48, h->rt_off);
	be_put32(buf + 56, h->rt_clusters);
	be_put64(buf + 72, h->incompat);
	be_put64(buf + 80, h->compat);
	be_put64(buf + 88, h->autoclear);
	be_put32(buf + 96, h->refcount_order);
	be_put32(buf + 100, 112);
	buf[104] = h->compression;

	size_t off = 112;
	if (flen)
		off = put_ext(buf, off, Q2_EXT_BACKING_FMT, h->backing_fmt, (uint32_t)flen);
	if (with_names) {
		uint8_t t[sizeof(feature_names) / sizeof(feature_names[0]) * 48];
		memset(t, 0, sizeof(t));
		for (size_t i = 0; i < nf; i++) {
			t[i * 48] = feature_names[i].type;
			t[i * 48 + 1] = feature_names[i].bit;
			memcpy(t + i * 48 + 2, feature_names[i].name,
			       strlen(feature_names[i].name));
		}
		off = put_ext(buf, off, Q2_EXT_FEATURES, t, (uint32_t)sizeof(t));
	}
	off += 8; /* the end marker: zeros */
	if (blen) {
		be_put64(buf + 8, off);
		be_put32(buf + 16, (uint32_t)blen);
		memcpy(buf + off, h->backing, blen);
		off += blen;
	}
	return off;
}

int q2_write_features(struct qcow2 *q)
{
	uint8_t b[24];

	if (q->h.version < 3)
		return 0;
	be_put64(b, q->h.incompat);
	be_put64(b + 8, q->h.compat);
	be_put64(b + 16, q->h.autoclear);
	int r = q2_pwrite(q->fd, b, sizeof(b), 72);
	if (!r && fdatasync(q->fd))
		r = -errno;
	return r;
}
