/*
 * Host-side decompression of a bzImage (src/arch/x86/boot_decompress.h, boot_host.h,
 * boot_cache.h): a small fake vmlinux (ELF + relocation table) compressed in-process in
 * each format the kernel builds with, wrapped in a minimal bzImage header.
 */
#include <bzlib.h>
#include <elf.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "arch/x86/boot.h"
#include "arch/x86/boot_cache.h"
#include "arch/x86/boot_decompress.h"
#include "arch/x86/boot_host.h"
#include "unit.h"

#define PREF 0x1000000ULL
#define KMAP 0xffffffff80000000ULL
#define TEXT_OFF 0x1000 /* file offset of the text segment */
#define TEXT_SIZE 0x3000
#define DATA_OFF 0x4000
#define DATA_SIZE 0x1000
#define ENTRY_OFF 0x100
/* Relocation targets inside the text segment. */
#define R32_AT 0x10
#define RINV_AT 0x20
#define R64_AT 0x30
#define V32 0x81001234u
#define VINV 0x00400000u
#define V64 0xffffffff81002000ULL

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* An ELF with a text and a data segment, then (if relocs) the three relocation lists. */
static size_t make_vmlinux(uint8_t *e, uint64_t data_gpa, int relocs)
{
	Elf64_Ehdr h = { 0 };
	Elf64_Phdr ph[2] = { 0 };
	size_t len = DATA_OFF + DATA_SIZE;

	memset(e, 0, len + 64);
	memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS64;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_type = ET_EXEC;
	h.e_machine = EM_X86_64;
	h.e_entry = PREF + ENTRY_OFF;
	h.e_phoff = sizeof(h);
	h.e_phentsize = sizeof(Elf64_Phdr);
	h.e_phnum = 2;
	ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD,
			      .p_offset = TEXT_OFF,
			      .p_vaddr = KMAP + PREF,
			      .p_paddr = PREF,
			      .p_filesz = TEXT_SIZE,
			      .p_memsz = TEXT_SIZE };
	ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD,
			      .p_offset = DATA_OFF,
			      .p_vaddr = KMAP + data_gpa,
			      .p_paddr = data_gpa,
			      .p_filesz = DATA_SIZE,
			      .p_memsz = 2 * DATA_SIZE };
	memcpy(e, &h, sizeof(h));
	memcpy(e + sizeof(h), ph, sizeof(ph));
	for (size_t i = TEXT_OFF; i < DATA_OFF + DATA_SIZE; i++)
		e[i] = (uint8_t)(i * 7 + 3);
	put(e + TEXT_OFF + R32_AT, V32, 4);
	put(e + TEXT_OFF + RINV_AT, VINV, 4);
	put(e + TEXT_OFF + R64_AT, V64, 8);
	if (!relocs)
		return len;
	/* 0, 64-bit list, 0, inverse 32-bit list, 0, 32-bit list: read from the end. */
	uint32_t table[] = { 0, (uint32_t)(KMAP + PREF + R64_AT),
			     0, (uint32_t)(KMAP + PREF + RINV_AT),
			     0, (uint32_t)(KMAP + PREF + R32_AT) };
	for (size_t i = 0; i < sizeof(table) / 4; i++)
		put(e + len + 4 * i, table[i], 4);
	return len + sizeof(table);
}

enum fmt { GZIP, XZ, LZMA, ZSTD, LZ4, BZIP2, LZO, NFMT };
static const char *const names[] = { "gzip", "xz", "lzma", "zstd", "lz4", "bzip2", "lzo" };

static size_t lzop(const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t magic[9] = { 0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n' };
	static uint8_t wrk[LZO1X_1_MEM_COMPRESS];
	size_t o = 0;

	memcpy(out, magic, 9);
	o = 9;
	/* version 0x1040, lib 0x2080, needed 0x0940, method 1, level 5, flags ADLER32_D */
	static const uint8_t hdr[] = { 0x10, 0x40, 0x20, 0x80, 0x09, 0x40, 1, 5, 0, 0, 0, 1, 0,
				       0,    0x81, 0xa4, 0,    0,    0,	   0, 0, 0, 0, 0, 0 };
	memcpy(out + o, hdr, sizeof(hdr));
	o += sizeof(hdr); /* ... mode, mtime low/high, empty name, then the header checksum */
	o += 4;
	for (size_t i = 0; i < len; i += 0x2000) {
		size_t n = len - i < 0x2000 ? len - i : 0x2000;
		lzo_uint c = 0;
		uint8_t *b = out + o;
		lzo1x_1_compress(in + i, n, b + 12, &c, wrk);
		if (c >= n) { /* lzop stores a block that does not shrink */
			memcpy(b + 12, in + i, n);
			c = n;
		}
		for (int k = 0; k < 4; k++)
			b[k] = (uint8_t)(n >> (24 - 8 * k)),
			b[4 + k] = (uint8_t)(c >> (24 - 8 * k));
		memset(b + 8, 0, 4); /* adler32 of the block: not checked */
		o += 12 + c;
	}
	memset(out + o, 0, 4); /* end marker */
	return o + 4;
}

/* Packs in as the kernel build does (size appended but for gzip). */
static size_t pack(enum fmt f, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t n = 0;

	switch (f) {
	case GZIP: {
		z_stream z = { 0 };
		deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)len;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		deflate(&z, Z_FINISH);
		n = z.total_out;
		deflateEnd(&z);
		return n;
	}
	case XZ:
		lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, len, out, &n, cap);
		break;
	case LZMA: {
		lzma_stream s = LZMA_STREAM_INIT;
		lzma_options_lzma o;
		lzma_lzma_preset(&o, 6);
		if (lzma_alone_encoder(&s, &o) != LZMA_OK)
			return 0;
		s.next_in = in;
		s.avail_in = len;
		s.next_out = out;
		s.avail_out = cap;
		if (lzma_code(&s, LZMA_FINISH) != LZMA_STREAM_END)
			n = 0;
		else
			n = (size_t)s.total_out;
		lzma_end(&s);
		break;
	}
	case ZSTD:
		n = ZSTD_compress(out, cap, in, len, 19);
		break;
	case LZ4:
		put(out, 0x184c2102, 4);
		n = 4;
		for (size_t i = 0; i < len; i += 0x1800) { /* several blocks */
			int k = LZ4_compress_default((const char *)in + i, (char *)out + n + 4,
						     (int)(len - i < 0x1800 ? len - i : 0x1800),
						     (int)(cap - n - 4));
			put(out + n, (uint32_t)k, 4);
			n += 4 + (size_t)k;
		}
		break;
	case BZIP2: {
		unsigned int c = (unsigned int)cap;
		BZ2_bzBuffToBuffCompress((char *)out, &c, (char *)in, (unsigned int)len, 9, 0, 0);
		n = c;
		break;
	}
	case LZO:
		n = lzop(in, len, out);
		break;
	case NFMT:
		break;
	}
	put(out + n, len, 4);
	return n + 4;
}

#define SETUP_SECTS 4
#define KOFF ((SETUP_SECTS + 1) * 512)
#define PAYLOAD_AT 0x200 /* payload_offset inside the protected-mode part */
#define BZ_MAX 0x10000

/* A bzImage around payload. */
static size_t make_bz(uint8_t *bz, const uint8_t *payload, size_t plen, uint32_t init_size)
{
	memset(bz, 0, KOFF + PAYLOAD_AT);
	bz[0x1f1] = SETUP_SECTS;
	put(bz + 0x1fe, 0xaa55, 2);
	bz[0x200] = 0xeb;
	bz[0x201] = 0x26c - 0x202;
	memcpy(bz + 0x202, "HdrS", 4);
	put(bz + 0x206, 0x020f, 2);
	bz[0x211] = 0x01 | 0x02; /* LOADED_HIGH, and a stale KASLR_FLAG to be rewritten */
	put(bz + 0x22c, 0x7fffffff, 4);
	put(bz + 0x230, 0x200000, 4);
	bz[0x234] = 1;
	put(bz + 0x236, 0x0001 | 0x0002, 2);
	put(bz + 0x238, 2047, 4);
	put(bz + 0x248, PAYLOAD_AT, 4);
	put(bz + 0x24c, plen, 4);
	put(bz + 0x258, PREF, 8);
	put(bz + 0x260, init_size, 4);
	memcpy(bz + KOFF + PAYLOAD_AT, payload, plen);
	return KOFF + PAYLOAD_AT + plen;
}

static uint8_t vml[DATA_OFF + DATA_SIZE + 64], packed[BZ_MAX], bz[BZ_MAX];
static uint64_t seq[2] = { 5, 7 };
static int seq_i;

static uint64_t fixed_rnd(void)
{
	return seq[seq_i++ % 2];
}

static int host(size_t bzlen, const char *cmdline, uint64_t limit, struct boot_image *img,
		uint8_t **out, size_t *out_len, const char **why)
{
	struct boot_host_opts o = { .cmdline = cmdline, .limit = limit, .rnd = fixed_rnd };

	seq_i = 0;
	if (boot_image_parse(bz, bzlen, img, why))
		return -100;
	return boot_host_decompress(bz, bzlen, img, &o, out, out_len, why);
}

TEST(boot_decompress_every_format_round_trips)
{
	size_t vlen = make_vmlinux(vml, PREF + 0x200000, 1);

	for (int f = 0; f < NFMT; f++) {
		size_t plen = pack((enum fmt)f, vml, vlen, packed, sizeof(packed) - 4);
		uint8_t *out;
		size_t n = 0;
		const char *why = "";

		CHECK(plen > 8);
		CHECK(!strcmp(boot_compression_name(packed, plen), names[f]));
		int r = boot_decompress(packed, plen, vlen, 16, &out, &n, &why);
		if (r)
			fprintf(stderr, "%s: %s\n", names[f], why);
		REQUIRE(r == 0);
		CHECK(n == vlen);
		CHECK(!memcmp(out + 16, vml, vlen));
		free(out);
		/* One byte less room than the kernel needs: refused, never overrun. */
		r = boot_decompress(packed, plen, vlen - 1, 0, &out, &n, &why);
		CHECK(r == -EINVAL);
		CHECK(why && *why);
	}
}

TEST(boot_decompress_truncated_and_corrupt_refused)
{
	size_t vlen = make_vmlinux(vml, PREF + 0x200000, 1);

	for (int f = 0; f < NFMT; f++) {
		size_t plen = pack((enum fmt)f, vml, vlen, packed, sizeof(packed) - 4);
		uint8_t *out = NULL;
		size_t n = 0;
		const char *why = "";

		/* Cut in half (the appended size goes too): refused, or short of the size. */
		int r = boot_decompress(packed, plen / 2, vlen, 0, &out, &n, &why);
		CHECK(r == -EINVAL || n < vlen);
		if (r)
			CHECK(why && *why);
		else
			free(out);
		/* Garbage after the magic. */
		memset(packed + 12, 0xa5, plen / 2 > 12 ? plen / 2 - 12 : 0);
		r = boot_decompress(packed, plen, vlen, 0, &out, &n, &why);
		CHECK(r == -EINVAL || n != vlen || memcmp(out, vml, vlen));
		if (!r)
			free(out);
	}
	const char *why = "";
	uint8_t *out;
	size_t n;
	CHECK(boot_decompress((const uint8_t *)"nope", 4, 16, 0, &out, &n, &why) == -EINVAL);
	CHECK(boot_compression_name((const uint8_t *)"nope", 4) == NULL);
}

/* Every path through the layout: in place over the ELF (data right after the text) and copied. */
static void check_direct(uint64_t data_gpa)
{
	size_t vlen = make_vmlinux(vml, data_gpa, 1);
	size_t plen = pack(GZIP, vml, vlen, packed, sizeof(packed) - 4);
	size_t bzlen = make_bz(bz, packed, plen, 0x400000);
	struct boot_image img;
	uint8_t *out;
	size_t out_len;
	const char *why = "";

	int r = host(bzlen, "console=ttyS0", 0x8000000, &img, &out, &out_len, &why);
	if (r)
		fprintf(stderr, "%s\n", why);
	REQUIRE(r == 0);
	/*
	 * init_size 4 MiB, align 2 MiB, limit 128 MiB: (128 - 4 - 16) / 2 + 1 = 55 physical
	 * slots, the 5th is 26 MiB; the virtual offset is the 7th 2 MiB step.
	 */
	uint64_t phys = 0x1a00000, delta = 7 * 0x200000;
	uint64_t span = data_gpa + 2 * DATA_SIZE - PREF;
	CHECK(img.kind == BOOT_BZIMAGE);
	CHECK(img.has_entry64);
	CHECK(img.entry64 == phys + ENTRY_OFF);
	REQUIRE(img.nseg == 1);
	CHECK(img.seg[0].gpa == phys);
	CHECK(img.seg[0].file_off == KOFF);
	CHECK(img.seg[0].file_size == data_gpa + DATA_SIZE - PREF);
	CHECK(img.seg[0].mem_size == span);
	CHECK(img.end == phys + (span > 0x400000 ? span : 0x400000));
	CHECK(out_len == KOFF + img.seg[0].file_size);
	/* The same setup header, with KASLR_FLAG set since it randomized. */
	CHECK(!memcmp(out + 0x1f1, bz + 0x1f1, 0x211 - 0x1f1));
	CHECK(out[0x211] == (0x01 | 0x02));
	const uint8_t *flat = out + KOFF;
	CHECK(get(flat + R32_AT, 4) == (uint32_t)(V32 + delta));
	CHECK(get(flat + RINV_AT, 4) == (uint32_t)(VINV - delta));
	CHECK(get(flat + R64_AT, 8) == V64 + delta);
	CHECK(!memcmp(flat + 0x40, vml + TEXT_OFF + 0x40, TEXT_SIZE - 0x40));
	CHECK(!memcmp(flat + (data_gpa - PREF), vml + DATA_OFF, DATA_SIZE));
	for (uint64_t i = TEXT_SIZE; i < data_gpa - PREF; i++)
		if (flat[i]) {
			CHECK(!"gap between segments not zeroed");
			break;
		}
	free(out);
}

TEST(boot_host_kaslr_layout_and_relocations)
{
	check_direct(PREF + TEXT_SIZE); /* laid out in place */
	check_direct(PREF + 0x200000);	/* copied: the data segment lies past its file offset */
}

TEST(boot_host_nokaslr_and_no_room)
{
	size_t vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 1);
	size_t plen = pack(LZ4, vml, vlen, packed, sizeof(packed) - 4);
	size_t bzlen = make_bz(bz, packed, plen, 0x400000);
	struct boot_image img;
	uint8_t *out;
	size_t out_len;
	const char *why = "";

	REQUIRE(host(bzlen, "console=ttyS0 nokaslr quiet", 0x8000000, &img, &out, &out_len, &why) ==
		0);
	CHECK(img.seg[0].gpa == PREF);
	CHECK(img.entry64 == PREF + ENTRY_OFF);
	CHECK(out[0x211] == 0x01);
	CHECK(get(out + KOFF + R32_AT, 4) == V32);
	CHECK(get(out + KOFF + R64_AT, 8) == V64);
	free(out);

	/* No room above 16 MiB for a random slot: stays there, the virtual offset still moves. */
	REQUIRE(host(bzlen, "console=ttyS0", PREF + 0x400000, &img, &out, &out_len, &why) == 0);
	CHECK(img.seg[0].gpa == PREF);
	CHECK(get(out + KOFF + R64_AT, 8) == V64 + 7 * 0x200000);
	free(out);

	/* Without a relocation table the kernel is not randomized (no CONFIG_RANDOMIZE_BASE). */
	vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 0);
	plen = pack(LZ4, vml, vlen, packed, sizeof(packed) - 4);
	bzlen = make_bz(bz, packed, plen, 0x400000);
	REQUIRE(host(bzlen, "console=ttyS0", 0x8000000, &img, &out, &out_len, &why) == 0);
	CHECK(img.seg[0].gpa == PREF);
	CHECK(out[0x211] == 0x01);
	CHECK(get(out + KOFF + R64_AT, 8) == V64);
	free(out);
}

TEST(boot_host_bad_relocation_refused)
{
	size_t vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 1);

	/* The 32-bit entry (the last word) points past the kernel. */
	put(vml + vlen - 4, (uint32_t)(KMAP + PREF + 0x100000), 4);
	size_t plen = pack(ZSTD, vml, vlen, packed, sizeof(packed) - 4);
	size_t bzlen = make_bz(bz, packed, plen, 0x400000);
	struct boot_image img;
	uint8_t *out;
	size_t out_len;
	const char *why = "";

	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -EINVAL);
	CHECK(strstr(why, "relocation") != NULL);

	/* A table missing its leading 0 is no table: booted unrandomized. */
	vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 1);
	put(vml + DATA_OFF + DATA_SIZE, 0x81000000u, 4);
	plen = pack(ZSTD, vml, vlen, packed, sizeof(packed) - 4);
	bzlen = make_bz(bz, packed, plen, 0x400000);
	REQUIRE(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == 0);
	CHECK(img.seg[0].gpa == PREF);
	free(out);
}

TEST(boot_host_old_path_kept)
{
	size_t vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 1);
	size_t plen = pack(XZ, vml, vlen, packed, sizeof(packed) - 4);
	size_t bzlen = make_bz(bz, packed, plen, 0x400000);
	struct boot_image img;
	uint8_t *out;
	size_t out_len;
	const char *why = "";

	/* No XLF_KERNEL_64: the guest's decompressor runs, as before. */
	put(bz + 0x236, 0x0002, 2);
	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -ENOENT);
	put(bz + 0x236, 0x0003, 2);
	/* Not enough guest RAM for init_size: left to the old path and its message. */
	CHECK(host(bzlen, "", PREF + 0x400000 - 1, &img, &out, &out_len, &why) == -ENOENT);
	/* An unknown compression. */
	bz[KOFF + PAYLOAD_AT] ^= 0xff;
	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -ENOENT);
	bz[KOFF + PAYLOAD_AT] ^= 0xff;
	/* payload_length past the file. */
	put(bz + 0x24c, plen + 1, 4);
	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -ENOENT);
	put(bz + 0x24c, plen, 4);
	/* A payload shorter than the size the build appended: refused. */
	put(bz + bzlen - 4, vlen + 1, 4);
	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -EINVAL);
	/* Decompressed, but not an ELF. */
	memset(vml, 0, 4);
	plen = pack(XZ, vml, vlen, packed, sizeof(packed) - 4);
	bzlen = make_bz(bz, packed, plen, 0x400000);
	CHECK(host(bzlen, "", 0x8000000, &img, &out, &out_len, &why) == -EINVAL);
	CHECK(strstr(why, "ELF") != NULL);
}

TEST(boot_cmdline_nokaslr_words)
{
	CHECK(boot_cmdline_nokaslr("nokaslr"));
	CHECK(boot_cmdline_nokaslr("console=ttyS0 nokaslr"));
	CHECK(boot_cmdline_nokaslr("  nokaslr\tquiet"));
	CHECK(!boot_cmdline_nokaslr("console=ttyS0"));
	CHECK(!boot_cmdline_nokaslr("nokaslrx"));
	CHECK(!boot_cmdline_nokaslr("foo=nokaslr"));
	CHECK(!boot_cmdline_nokaslr("quiet -- nokaslr")); /* init's argument */
	CHECK(!boot_cmdline_nokaslr(""));
	CHECK(!boot_cmdline_nokaslr(NULL));
}

TEST(boot_cache_round_trip_and_checks)
{
	char dir[] = "/tmp/tern-kcache-XXXXXX", sub[64], path[200];
	uint8_t key[BOOT_CACHE_KEY], other[BOOT_CACHE_KEY], *buf;
	size_t len;

	REQUIRE(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	boot_cache_key("kernel", 6, key);
	boot_cache_key("kernel2", 7, other);
	CHECK(memcmp(key, other, sizeof(key)));
	CHECK(boot_cache_get(sub, key, 0, &buf, &len) == -ENOENT);
	REQUIRE(boot_cache_put(sub, key, (const uint8_t *)"payload!", 8) == 0);
	REQUIRE(boot_cache_get(sub, key, 3, &buf, &len) == 0);
	CHECK(len == 8 && !memcmp(buf + 3, "payload!", 8));
	free(buf);
	CHECK(boot_cache_get(sub, other, 0, &buf, &len) == -ENOENT);

	/* A flipped payload byte fails the CRC. */
	char hex[2 * BOOT_CACHE_KEY + 1];
	for (int i = 0; i < BOOT_CACHE_KEY; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	snprintf(path, sizeof(path), "%s/%s.vmlinux", sub, hex);
	FILE *f = fopen(path, "r+b");
	REQUIRE(f);
	fseek(f, -1, SEEK_END);
	fputc('?', f);
	fclose(f);
	CHECK(boot_cache_get(sub, key, 0, &buf, &len) == -EBADMSG);
	/* Truncated: the length in the header no longer matches. */
	REQUIRE(truncate(path, 60) == 0);
	CHECK(boot_cache_get(sub, key, 0, &buf, &len) == -EBADMSG);
	/* Not writable: an error, never a crash (the caller goes on without the cache). */
	CHECK(boot_cache_put("/proc/tern-no-such-dir", key, (const uint8_t *)"x", 1) != 0);

	unlink(path);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/a", dir);
	rmdir(sub);
	rmdir(dir);
}

TEST(boot_host_cache_hit_gives_the_same_kernel)
{
	char dir[] = "/tmp/tern-kcache-XXXXXX";
	size_t vlen = make_vmlinux(vml, PREF + TEXT_SIZE, 1);
	size_t plen = pack(BZIP2, vml, vlen, packed, sizeof(packed) - 4);
	size_t bzlen = make_bz(bz, packed, plen, 0x400000);
	struct boot_host_opts o = {
		.cmdline = "", .limit = 0x8000000, .rnd = fixed_rnd, .cache = true, .cache_dir = dir
	};
	struct boot_image img[2];
	uint8_t *out[2], key[BOOT_CACHE_KEY], *c;
	size_t out_len[2], clen;
	const char *why = "";

	REQUIRE(mkdtemp(dir));
	for (int i = 0; i < 2; i++) {
		seq_i = 0;
		REQUIRE(boot_image_parse(bz, bzlen, &img[i], &why) == 0);
		REQUIRE(boot_host_decompress(bz, bzlen, &img[i], &o, &out[i], &out_len[i], &why) ==
			0);
	}
	CHECK(out_len[0] == out_len[1] && !memcmp(out[0], out[1], out_len[0]));
	CHECK(img[0].entry64 == img[1].entry64);
	/* What the cache holds is the pristine payload, not the relocated layout. */
	boot_cache_key(bz, bzlen, key);
	REQUIRE(boot_cache_get(dir, key, 0, &c, &clen) == 0);
	CHECK(clen == vlen && !memcmp(c, vml, vlen));
	free(c);
	free(out[0]);
	free(out[1]);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}
