/*
 * The formats a bzImage's payload comes in (CONFIG_KERNEL_*), each decoded with the
 * Debian library for it. The kernel's build appends the decompressed size (le32) after
 * every format but gzip, whose own trailer says the same: each decoder below stops at
 * its stream's end and ignores what follows, and never writes past max.
 */
#include "arch/x86/boot_decompress.h"
#include "arch/x86/boot_internal.h"

#include <bzlib.h>
#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* xz/lzma dictionaries: the kernel's xz uses 32 MiB; anything needing more is refused. */
#define LZMA_MEMLIMIT (256ULL << 20)
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20) /* each block decompresses to at most 8 MiB */
#define LZOP_MAX_BLOCK (256u << 10) /* lzop's block size, as the kernel's unlzo checks */

struct fmt {
	const char *name;
	const uint8_t *magic;
	size_t mlen;
	int (*decode)(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		      const char **why);
	bool slow; /* decodes slower than the cache reads back (see boot_compression_slow) */
};

static int un_gzip(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		   const char **why)
{
	z_stream z = { 0 };
	int r;

	if (len > UINT_MAX || max > UINT_MAX || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		*why = "gzip payload too large";
		return -EINVAL;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)max;
	r = inflate(&z, Z_FINISH);
	*n = z.total_out;
	inflateEnd(&z);
	if (r == Z_STREAM_END)
		return 0;
	*why = r == Z_BUF_ERROR && z.avail_out == 0 ? "gzip payload larger than the kernel says" :
						      "gzip payload corrupt or truncated";
	return -EINVAL;
}

static int un_lzma_common(lzma_stream *s, lzma_ret init, const uint8_t *in, size_t len,
			  uint8_t *out, size_t max, size_t *n, const char **why, const char *bad)
{
	lzma_ret r = init;

	if (r == LZMA_OK) {
		s->next_in = in;
		s->avail_in = len;
		s->next_out = out;
		s->avail_out = max;
		r = lzma_code(s, LZMA_FINISH);
	}
	*n = (size_t)s->total_out;
	lzma_end(s);
	if (r == LZMA_STREAM_END)
		return 0;
	*why = r == LZMA_BUF_ERROR && s->avail_out == 0 ? "payload larger than the kernel says" :
	       r == LZMA_MEMLIMIT_ERROR			? "xz/lzma dictionary too large" :
							  bad;
	return -EINVAL;
}

static int un_xz(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		 const char **why)
{
	lzma_stream s = LZMA_STREAM_INIT;

	return un_lzma_common(&s, lzma_stream_decoder(&s, LZMA_MEMLIMIT, 0), in, len, out, max, n,
			      why, "xz payload corrupt or truncated");
}

static int un_lzma(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		   const char **why)
{
	lzma_stream s = LZMA_STREAM_INIT;

	return un_lzma_common(&s, lzma_alone_decoder(&s, LZMA_MEMLIMIT), in, len, out, max, n, why,
			      "lzma payload corrupt or truncated");
}

static int un_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		   const char **why)
{
	/* One frame, decoded straight into the flat output: no window buffer is needed. */
	size_t frame = ZSTD_findFrameCompressedSize(in, len);

	if (ZSTD_isError(frame)) {
		*why = "zstd payload corrupt or truncated";
		return -EINVAL;
	}
	size_t r = ZSTD_decompress(out, max, in, frame);
	if (ZSTD_isError(r)) {
		*why = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ?
			       "zstd payload larger than the kernel says" :
			       "zstd payload corrupt";
		return -EINVAL;
	}
	*n = r;
	return 0;
}

/* The kernel's lz4 is the legacy frame: magic, then blocks of [le32 size][data]. */
static int un_lz4(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		  const char **why)
{
	size_t pos = 4, o = 0;

	while (len - pos >= 4) {
		uint32_t c = (uint32_t)boot_le(in + pos, 4);

		/* The last 4 bytes are the size the build appended, not a block. */
		if (len - pos == 4)
			break;
		pos += 4;
		if (c == LZ4_LEGACY_MAGIC) /* concatenated streams */
			continue;
		if (c == 0 || c > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK) || c > len - pos) {
			*why = "lz4 payload corrupt or truncated (block size)";
			return -EINVAL;
		}
		size_t room = max - o < LZ4_LEGACY_BLOCK ? max - o : LZ4_LEGACY_BLOCK;
		int r = LZ4_decompress_safe((const char *)in + pos, (char *)out + o, (int)c,
					    (int)room);
		if (r < 0) {
			*why = room < LZ4_LEGACY_BLOCK ? "lz4 payload larger than the kernel says" :
							 "lz4 payload corrupt";
			return -EINVAL;
		}
		o += (size_t)r;
		pos += c;
	}
	if (pos != len - 4 && pos != len) {
		*why = "lz4 payload truncated";
		return -EINVAL;
	}
	*n = o;
	return 0;
}

static int un_bzip2(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		    const char **why)
{
	bz_stream s = { 0 };
	size_t o = 0, i = 0;
	int r;

	if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) {
		*why = "bzip2: out of memory";
		return -ENOMEM;
	}
	/* avail_in/avail_out are unsigned int: feed in pieces. */
	do {
		size_t in_n = len - i > UINT_MAX ? UINT_MAX : len - i;
		size_t out_n = max - o > UINT_MAX ? UINT_MAX : max - o;
		s.next_in = (char *)in + i;
		s.avail_in = (unsigned int)in_n;
		s.next_out = (char *)out + o;
		s.avail_out = (unsigned int)out_n;
		r = BZ2_bzDecompress(&s);
		i += in_n - s.avail_in;
		o += out_n - s.avail_out;
	} while (r == BZ_OK && o < max && i < len);
	BZ2_bzDecompressEnd(&s);
	*n = o;
	if (r == BZ_STREAM_END)
		return 0;
	*why = r == BZ_OK && o == max ? "bzip2 payload larger than the kernel says" :
					"bzip2 payload corrupt or truncated";
	return -EINVAL;
}

#define LZOP_F_ADLER32_D 0x001
#define LZOP_F_ADLER32_C 0x002
#define LZOP_F_H_EXTRA_FIELD 0x040
#define LZOP_F_CRC32_D 0x100
#define LZOP_F_CRC32_C 0x200
#define LZOP_F_H_FILTER 0x800

static uint32_t be(const uint8_t *p, size_t k)
{
	uint32_t v = 0;

	for (size_t i = 0; i < k; i++)
		v = v << 8 | p[i];
	return v;
}

/* Skips the lzop header (lzop's own layout, as the kernel's unlzo reads it). */
static int lzop_header(const uint8_t *in, size_t len, size_t *pos, uint32_t *flags)
{
	size_t p = 9;
	uint16_t ver;

	if (len < p + 4)
		return -1;
	ver = (uint16_t)be(in + p, 2);
	p += 4; /* version, library version */
	if (ver >= 0x0940)
		p += 2;						     /* version needed to extract */
	if (len < p + 1 || (in[p] != 1 && in[p] != 2 && in[p] != 3)) /* LZO1X methods */
		return -1;
	p += 1 + (ver >= 0x0940); /* method, level */
	if (len < p + 4)
		return -1;
	*flags = be(in + p, 4);
	p += 4;
	if (*flags & LZOP_F_H_FILTER)
		p += 4;
	p += 8 + (ver >= 0x0940 ? 4 : 0); /* mode, mtime (low, high) */
	if (len < p + 1)
		return -1;
	p += 1 + in[p] + 4; /* file name, header checksum */
	if ((*flags & LZOP_F_H_EXTRA_FIELD) || p > len)
		return -1;
	*pos = p;
	return 0;
}

static int un_lzo(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *n,
		  const char **why)
{
	size_t pos, o = 0;
	uint32_t flags;

	if (lzo_init() != LZO_E_OK || lzop_header(in, len, &pos, &flags)) {
		*why = "lzo payload header invalid";
		return -EINVAL;
	}
	for (;;) {
		if (len - pos < 4)
			goto trunc;
		uint32_t dlen = be(in + pos, 4);
		pos += 4;
		if (dlen == 0)
			break;
		if (len - pos < 4)
			goto trunc;
		uint32_t clen = be(in + pos, 4);
		pos += 4;
		size_t sums = !!(flags & LZOP_F_ADLER32_D) + !!(flags & LZOP_F_CRC32_D);
		if (clen < dlen)
			sums += !!(flags & LZOP_F_ADLER32_C) + !!(flags & LZOP_F_CRC32_C);
		if (dlen > LZOP_MAX_BLOCK || clen == 0 || clen > dlen) {
			*why = "lzo payload corrupt (block size)";
			return -EINVAL;
		}
		if (dlen > max - o) {
			*why = "lzo payload larger than the kernel says";
			return -EINVAL;
		}
		if (len - pos < sums * 4 + clen)
			goto trunc;
		pos += sums * 4;
		if (clen == dlen) {
			memcpy(out + o, in + pos, dlen); /* stored */
		} else {
			lzo_uint got = dlen;
			if (lzo1x_decompress_safe(in + pos, clen, out + o, &got, NULL) !=
				    LZO_E_OK ||
			    got != dlen) {
				*why = "lzo payload corrupt";
				return -EINVAL;
			}
		}
		o += dlen;
		pos += clen;
	}
	*n = o;
	return 0;
trunc:
	*why = "lzo payload truncated";
	return -EINVAL;
}

static const struct fmt fmts[] = {
	{ "gzip", (const uint8_t *)"\x1f\x8b", 2, un_gzip, true },
	{ "xz", (const uint8_t *)"\xfd\x37\x7a\x58\x5a\x00", 6, un_xz, true },
	{ "zstd", (const uint8_t *)"\x28\xb5\x2f\xfd", 4, un_zstd, false },
	{ "lz4", (const uint8_t *)"\x02\x21\x4c\x18", 4, un_lz4, false },
	{ "bzip2", (const uint8_t *)"BZh", 3, un_bzip2, true },
	{ "lzma", (const uint8_t *)"\x5d\x00\x00", 3, un_lzma, true },
	{ "lzo", (const uint8_t *)"\x89\x4c\x5a\x4f\x00\x0d\x0a\x1a\x0a", 9, un_lzo, false },
};

static const struct fmt *find(const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++)
		if (len >= fmts[i].mlen && !memcmp(data, fmts[i].magic, fmts[i].mlen))
			return &fmts[i];
	return NULL;
}

const char *boot_compression_name(const uint8_t *data, size_t len)
{
	const struct fmt *f = find(data, len);

	return f ? f->name : NULL;
}

void *boot_alloc_populated(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095,
		  e = ((uintptr_t)p + n) & ~(uintptr_t)4095;

	/* Best effort: older kernels say EINVAL, and the pages then fault in one by one. */
	if (p && e > a)
		madvise((void *)a, e - a, MADV_POPULATE_WRITE);
	return p;
}

bool boot_compression_slow(const uint8_t *data, size_t len)
{
	const struct fmt *f = find(data, len);

	return f && f->slow;
}

int boot_decompress(const uint8_t *data, size_t len, size_t max, size_t headroom, uint8_t **out,
		    size_t *out_len, const char **why)
{
	const struct fmt *f = find(data, len);
	size_t n = 0;

	if (!f) {
		*why = "payload compression not recognised";
		return -EINVAL;
	}
	uint8_t *buf = boot_alloc_populated(headroom + max);
	if (!buf) {
		*why = "out of memory for the decompressed kernel";
		return -ENOMEM;
	}
	int r = f->decode(data, len, buf + headroom, max, &n, why);
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*out_len = n;
	return 0;
}
