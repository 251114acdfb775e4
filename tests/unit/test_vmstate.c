/*
 * Tests for the state format (src/vmstate): the exact bytes the writer produces, round trips
 * of every type, the parser refusing every truncation, bit flip and malformed field with a
 * message that says where, the writer's errors (misuse, -EFBIG, -EBADF, -EPIPE, short writes,
 * EINTR), the cursors, and the --describe-snapshot listing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "vmstate/describe.h"
#include "vmstate/vmstate.h"
#include "unit.h"

#define HDR VMSTATE_HEADER_SIZE
#define SEC VMSTATE_SECTION_HEADER_SIZE

static char err[256];

static void le32_at(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64_at(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* zlib directly, so that the tests do not trust vmstate_crc32 to check the files it makes. */
static uint32_t crc(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32(0, p, (unsigned int)len);
}

/* What the writer put into fd, from its start. NULL on failure; free() it. */
static uint8_t *slurp(int fd, size_t *len)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return NULL;
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return NULL;
	}
	*len = (size_t)st.st_size;
	return buf;
}

/* Runs fill on a writer over a fresh memfd; returns the file, or NULL (r holds finish's). */
static uint8_t *write_file(void (*fill)(struct vmstate_writer *), size_t *len, int *r)
{
	struct vmstate_writer w;
	int fd = memfd_create("vmstate-test", MFD_CLOEXEC);

	if (fd < 0)
		return NULL;
	vmstate_writer_init(&w, fd);
	fill(&w);
	*r = vmstate_writer_finish(&w);
	uint8_t *buf = slurp(fd, len);
	if (buf && w.written != *len) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	return buf;
}

/* A small file of 4 sections (198 bytes): small enough to flip every bit of it. */
static void fill_sample(struct vmstate_writer *w)
{
	vmstate_begin(w, VMSTATE_TAG_MACHINE, 0, 1);
	vmstate_put_u32(w, 2);
	vmstate_put_u64(w, 256ULL << 20);
	vmstate_end(w);
	for (uint32_t i = 0; i < 2; i++) {
		vmstate_begin(w, VMSTATE_TAG_VCPU, i, 2);
		vmstate_put_u64(w, 0xfff0 + i);
		vmstate_put_bool(w, i);
		vmstate_end(w);
	}
	vmstate_begin(w, VMSTATE_TAG_SERIAL, 0, 1);
	vmstate_end(w);
}

#define SAMPLE_LEN (HDR + (SEC + 12 + 4) + 2 * (SEC + 9 + 4) + (SEC + 4) + (SEC + 4))

static uint8_t *sample(size_t *len)
{
	int r = -1;
	uint8_t *buf = write_file(fill_sample, len, &r);

	if (r != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Parses a copy in an exact-size heap block, so that ASan sees any read past the end. */
static int parse_copy(struct vmstate_file *f, const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (len)
		memcpy(copy, buf, len);
	err[0] = 0;
	int r = vmstate_file_parse(f, copy, len, err, sizeof(err));
	/* The index points into the buffer: only a refused file lets the copy go now. */
	if (r == 0)
		vmstate_file_free(f);
	free(copy);
	return r;
}

/* Parses buf and expects a refusal whose message contains want. */
static int refused_with(const uint8_t *buf, size_t len, const char *want)
{
	struct vmstate_file f;
	int r = parse_copy(&f, buf, len);

	if (r != -EINVAL || f.sections || f.nsections || !strstr(err, want)) {
		printf("  parse: %d, \"%s\"; wanted \"%s\"\n", r, err, want);
		return 0;
	}
	return 1;
}

static void fix_header_crc(uint8_t *buf)
{
	le32_at(buf + 24, crc(buf, 24));
}

TEST(vmstate_crc32)
{
	const char *s = "123456789";

	CHECK(vmstate_crc32(0, s, 9) == 0xcbf43926); /* the standard check value */
	CHECK(vmstate_crc32(vmstate_crc32(0, s, 4), s + 4, 5) == 0xcbf43926);
	CHECK(vmstate_crc32(0x1234, NULL, 0) == 0x1234);
}

TEST(vmstate_tag_names)
{
	static const struct {
		uint32_t tag;
		const char *name;
	} names[] = {
		{ VMSTATE_TAG_END, "end" },
		{ VMSTATE_TAG_MACHINE, "machine" },
		{ VMSTATE_TAG_MEMORY, "memory" },
		{ VMSTATE_TAG_VCPU, "vcpu" },
		{ VMSTATE_TAG_IRQCHIP, "irqchip" },
		{ VMSTATE_TAG_PIT, "pit" },
		{ VMSTATE_TAG_CLOCK, "clock" },
		{ VMSTATE_TAG_SERIAL, "serial" },
		{ VMSTATE_TAG_I8042, "i8042" },
		{ VMSTATE_TAG_RTC, "rtc" },
		{ VMSTATE_TAG_PCI, "pci" },
		{ VMSTATE_TAG_GED, "ged" },
		{ VMSTATE_TAG_VIRTIO, "virtio" },
		{ VMSTATE_TAG_VIRTIO_BLK, "virtio-blk" },
		{ VMSTATE_TAG_VIRTIO_NET, "virtio-net" },
		{ VMSTATE_TAG_VIRTIO_VSOCK, "virtio-vsock" },
		{ VMSTATE_TAG_VIRTIO_RNG, "virtio-rng" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(strcmp(vmstate_tag_name(names[i].tag), names[i].name) == 0);
	CHECK(strcmp(vmstate_tag_name(7), "unknown") == 0);
	CHECK(strcmp(vmstate_tag_name(37), "unknown") == 0);
	CHECK(strcmp(vmstate_tag_name(UINT32_MAX), "unknown") == 0);
}

static void fill_golden(struct vmstate_writer *w)
{
	vmstate_begin(w, VMSTATE_TAG_SERIAL, 1, 2);
	vmstate_put_u16(w, 0x1234);
	vmstate_put_u32(w, 0xa1b2c3d4);
	vmstate_end(w);
}

/* The layout of vmstate.h, written out byte by byte. */
TEST(vmstate_golden_bytes)
{
	uint8_t want[HDR + SEC + 6 + 4 + SEC + 4] = { 0 };
	uint8_t *p = want;

	memcpy(p, "TERNSTAT", 8);
	le32_at(p + 8, 1);
	le32_at(p + 12, 1);
	fix_header_crc(p);
	p += HDR;
	le32_at(p, 16);
	le32_at(p + 4, 1);
	le32_at(p + 8, 2);
	le64_at(p + 16, 6);
	memcpy(p + SEC, "\x34\x12\xd4\xc3\xb2\xa1", 6);
	le32_at(p + SEC + 6, crc(p, SEC + 6));
	p += SEC + 6 + 4;
	le32_at(p + SEC, crc(p, SEC)); /* the end marker: all zero but its CRC */

	size_t len;
	int r = -1;
	uint8_t *got = write_file(fill_golden, &len, &r);
	REQUIRE(got);
	CHECK(r == 0);
	CHECK(len == sizeof(want) && memcmp(got, want, sizeof(want)) == 0);
	free(got);
}

static uint8_t blob[5000];

static void fill_types(struct vmstate_writer *w)
{
	vmstate_begin(w, VMSTATE_TAG_MACHINE, 0, 1);
	vmstate_put_u8(w, 0);
	vmstate_put_u8(w, 0xff);
	vmstate_put_u16(w, 0);
	vmstate_put_u16(w, 0xbeef);
	vmstate_put_u16(w, UINT16_MAX);
	vmstate_put_u32(w, 0xdeadbeef);
	vmstate_put_u32(w, UINT32_MAX);
	vmstate_put_u64(w, 0x0123456789abcdefULL);
	vmstate_put_u64(w, UINT64_MAX);
	vmstate_put_bool(w, true);
	vmstate_put_bool(w, false);
	vmstate_put(w, "hello", 5);
	vmstate_put(w, NULL, 0);
	vmstate_end(w);
	for (uint32_t i = 0; i < 2; i++) {
		vmstate_begin(w, VMSTATE_TAG_VCPU, i, 3);
		vmstate_put_u64(w, 100 + i);
		vmstate_end(w);
	}
	/* Larger than the first buffer the writer allocates. */
	vmstate_begin(w, VMSTATE_TAG_VIRTIO_BLK, 2, 1);
	vmstate_put(w, blob, sizeof(blob));
	vmstate_end(w);
	/* A tag this build does not know still goes through. */
	vmstate_begin(w, 200, 7, 9);
	vmstate_put_u32(w, 42);
	vmstate_end(w);
}

TEST(vmstate_roundtrip)
{
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + 3);
	size_t len;
	int r = -1;
	uint8_t *buf = write_file(fill_types, &len, &r);
	REQUIRE(buf);
	CHECK(r == 0);

	/* Little-endian on disk, whatever the host: look at the first payload's bytes. */
	static const uint8_t head[] = { 0,    0xff, 0,	  0,	0xef, 0xbe, 0xff, 0xff,
					0xef, 0xbe, 0xad, 0xde, 0xff, 0xff, 0xff, 0xff,
					0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01 };
	REQUIRE(len > HDR + SEC + sizeof(head));
	CHECK(memcmp(buf, "TERNSTAT\1\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0", 24) == 0);
	CHECK(memcmp(buf + HDR, "\1\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\x27\0\0\0\0\0\0\0", SEC) == 0);
	CHECK(memcmp(buf + HDR + SEC, head, sizeof(head)) == 0);

	struct vmstate_file f;
	err[0] = 0;
	REQUIRE(vmstate_file_parse(&f, buf, len, err, sizeof(err)) == 0);
	CHECK(err[0] == 0);
	CHECK(f.version == VMSTATE_VERSION && f.arch == VMSTATE_ARCH_X86_64);
	REQUIRE(f.nsections == 5);

	struct vmstate_cursor c;
	const struct vmstate_section *s = vmstate_find(&f, VMSTATE_TAG_MACHINE, 0);
	REQUIRE(s == &f.sections[0]);
	CHECK(s->version == 1 && s->len == 39);
	vmstate_cursor_init(&c, s);
	CHECK(vmstate_get_u8(&c) == 0);
	CHECK(vmstate_get_u8(&c) == 0xff);
	CHECK(vmstate_get_u16(&c) == 0);
	CHECK(vmstate_get_u16(&c) == 0xbeef);
	CHECK(vmstate_get_u16(&c) == UINT16_MAX);
	CHECK(vmstate_get_u32(&c) == 0xdeadbeef);
	CHECK(vmstate_get_u32(&c) == UINT32_MAX);
	CHECK(vmstate_get_u64(&c) == 0x0123456789abcdefULL);
	CHECK(vmstate_get_u64(&c) == UINT64_MAX);
	CHECK(vmstate_get_bool(&c) == true);
	CHECK(vmstate_get_bool(&c) == false);
	CHECK(vmstate_cursor_done(&c) == -EINVAL); /* "hello" is left */
	char hello[5];
	vmstate_get(&c, hello, 5);
	vmstate_get(&c, NULL, 0);
	CHECK(memcmp(hello, "hello", 5) == 0);
	CHECK(vmstate_cursor_done(&c) == 0);

	for (uint32_t i = 0; i < 2; i++) {
		s = vmstate_find(&f, VMSTATE_TAG_VCPU, i);
		REQUIRE(s == &f.sections[1 + i]);
		CHECK(s->version == 3 && s->len == 8);
		vmstate_cursor_init(&c, s);
		CHECK(vmstate_get_u64(&c) == 100 + i);
		CHECK(vmstate_cursor_done(&c) == 0);
	}
	CHECK(!vmstate_find(&f, VMSTATE_TAG_VCPU, 2));
	CHECK(!vmstate_find(&f, VMSTATE_TAG_SERIAL, 0));
	CHECK(!vmstate_find(&f, VMSTATE_TAG_END, 0));

	s = vmstate_find(&f, VMSTATE_TAG_VIRTIO_BLK, 2);
	REQUIRE(s && s->len == sizeof(blob));
	CHECK(memcmp(s->payload, blob, sizeof(blob)) == 0);
	s = vmstate_find(&f, 200, 7);
	REQUIRE(s && s->version == 9);
	vmstate_cursor_init(&c, s);
	CHECK(vmstate_get_u32(&c) == 42);
	CHECK(vmstate_cursor_done(&c) == 0);

	vmstate_file_free(&f);
	CHECK(f.sections == NULL && f.nsections == 0);
	vmstate_file_free(&f); /* twice is harmless */
	free(buf);
}

static void fill_nothing(struct vmstate_writer *w)
{
}

static void fill_empty_sections(struct vmstate_writer *w)
{
	vmstate_begin(w, VMSTATE_TAG_RTC, 0, 1);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_I8042, 0, 1);
	vmstate_end(w);
}

TEST(vmstate_empty_sections)
{
	size_t len;
	int r = -1;
	struct vmstate_file f;
	uint8_t *buf = write_file(fill_nothing, &len, &r);

	REQUIRE(buf);
	CHECK(r == 0 && len == HDR + SEC + 4);
	REQUIRE(vmstate_file_parse(&f, buf, len, err, sizeof(err)) == 0);
	CHECK(f.nsections == 0);
	CHECK(!vmstate_find(&f, VMSTATE_TAG_RTC, 0));
	vmstate_file_free(&f);
	free(buf);

	buf = write_file(fill_empty_sections, &len, &r);
	REQUIRE(buf);
	CHECK(r == 0 && len == HDR + 3 * (SEC + 4));
	REQUIRE(vmstate_file_parse(&f, buf, len, err, sizeof(err)) == 0);
	REQUIRE(f.nsections == 2);
	struct vmstate_cursor c;
	vmstate_cursor_init(&c, vmstate_find(&f, VMSTATE_TAG_I8042, 0));
	CHECK(f.sections[1].len == 0);
	CHECK(vmstate_cursor_done(&c) == 0);
	CHECK(vmstate_get_u8(&c) == 0);
	CHECK(c.error && vmstate_cursor_done(&c) == -EINVAL);
	vmstate_file_free(&f);
	free(buf);
}

TEST(vmstate_truncated_every_offset)
{
	size_t len;
	uint8_t *buf = sample(&len);
	struct vmstate_file f;

	REQUIRE(buf);
	REQUIRE(len == SAMPLE_LEN);
	CHECK(parse_copy(&f, buf, len) == 0);
	for (size_t cut = 0; cut < len; cut++) {
		int r = parse_copy(&f, buf, cut);
		if (r != -EINVAL || !err[0] || f.sections || f.nsections) {
			printf("  cut at %zu: %d \"%s\"\n", cut, r, err);
			CHECK(!"a truncated file is refused with a message");
		}
	}
	CHECK(refused_with(buf, 0, "not a tern state file: 0 bytes, the header alone needs 28"));
	CHECK(refused_with(buf, HDR - 1, "not a tern state file: 27 bytes"));
	CHECK(refused_with(buf, HDR, "no end marker: the file is truncated"));
	CHECK(refused_with(buf, len - (SEC + 4), "no end marker: the file is truncated"));
	CHECK(refused_with(buf, HDR + 10,
			   "truncated: section 0 needs a 24-byte header, 10 bytes left"));
	/* Section 2 (vcpu 1) starts at 28 + 40 + 37; 3 bytes of its payload are there. */
	CHECK(refused_with(buf, HDR + 40 + 37 + SEC + 3,
			   "truncated: section 2 (vcpu 1) needs 13 bytes, 3 left"));
	CHECK(refused_with(buf, len - 1,
			   "truncated: section 4 (end marker) needs 4 bytes, 3 left"));
	free(buf);
}

TEST(vmstate_every_bit_flip_refused)
{
	size_t len;
	uint8_t *buf = sample(&len);
	struct vmstate_file f;
	unsigned int accepted = 0;

	REQUIRE(buf);
	for (size_t bit = 0; bit < len * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = parse_copy(&f, buf, len);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (r != -EINVAL || !err[0]) {
			printf("  bit %zu flipped: %d \"%s\"\n", bit, r, err);
			accepted++;
		}
	}
	CHECK(accepted == 0);
	/* What the flips hit: the header, a section header, a payload, the end marker. */
	buf[3] ^= 1;
	CHECK(refused_with(buf, len, "not a tern state file (no TERNSTAT magic)"));
	buf[3] ^= 1;
	buf[20] ^= 0x80;
	CHECK(refused_with(buf, len, "header CRC mismatch"));
	buf[20] ^= 0x80;
	buf[HDR + 40 + SEC + 2] ^= 4;
	CHECK(refused_with(buf, len, "CRC mismatch in section 1 (vcpu 0)"));
	buf[HDR + 40 + SEC + 2] ^= 4;
	buf[len - 20] ^= 1; /* the end marker's version */
	CHECK(refused_with(buf, len, "CRC mismatch in section 4 (end marker)"));
	buf[len - 20] ^= 1;
	buf[len - 8] ^= 1; /* bit 32 of its length */
	CHECK(refused_with(buf, len, "section 4 (end marker): payload of 4294967296 bytes, above"));
	buf[len - 8] ^= 1;
	CHECK(parse_copy(&f, buf, len) == 0);
	free(buf);
}

TEST(vmstate_wrong_version_arch_flags)
{
	size_t len;
	uint8_t *buf = sample(&len);

	REQUIRE(buf);
	/* The version is read before the CRC, whose layout a later version may change. */
	le32_at(buf + 8, 7);
	CHECK(refused_with(buf, len, "format version 7; this tern-vmm reads version 1"));
	fix_header_crc(buf);
	CHECK(refused_with(buf, len, "format version 7; this tern-vmm reads version 1"));
	le32_at(buf + 8, 0);
	fix_header_crc(buf);
	CHECK(refused_with(buf, len, "format version 0; this tern-vmm reads version 1"));
	le32_at(buf + 8, 1);

	le32_at(buf + 12, 2);
	CHECK(refused_with(buf, len, "header CRC mismatch"));
	fix_header_crc(buf);
	CHECK(refused_with(buf, len, "architecture 2; this tern-vmm restores x86-64 (1)"));
	le32_at(buf + 12, 1);

	le64_at(buf + 16, 1ULL << 40);
	fix_header_crc(buf);
	CHECK(refused_with(buf, len, "header flags 0x10000000000: this tern-vmm knows none"));
	le64_at(buf + 16, 0);
	fix_header_crc(buf);

	memcpy(buf, "TERNSTAX", 8);
	CHECK(refused_with(buf, len, "not a tern state file (no TERNSTAT magic)"));
	memcpy(buf, "TERNSTAT", 8);
	struct vmstate_file f;
	CHECK(parse_copy(&f, buf, len) == 0);
	free(buf);
}

static void fill_dup_simple(struct vmstate_writer *w)
{
	static const uint32_t tags[] = { VMSTATE_TAG_VCPU, VMSTATE_TAG_VCPU, VMSTATE_TAG_SERIAL,
					 VMSTATE_TAG_VCPU };
	static const uint32_t inst[] = { 0, 1, 0, 1 };

	for (int i = 0; i < 4; i++) {
		vmstate_begin(w, tags[i], inst[i], 1);
		vmstate_put_u8(w, (uint8_t)i);
		vmstate_end(w);
	}
}

/* serial 0 repeats first (at 2), though vcpu 0 sorts first and repeats too (at 3). */
static void fill_dup_order(struct vmstate_writer *w)
{
	static const uint32_t tags[] = { VMSTATE_TAG_VCPU, VMSTATE_TAG_SERIAL, VMSTATE_TAG_SERIAL,
					 VMSTATE_TAG_VCPU, VMSTATE_TAG_SERIAL };

	for (int i = 0; i < 5; i++) {
		vmstate_begin(w, tags[i], 0, 1);
		vmstate_end(w);
	}
}

static void fill_dup_unknown(struct vmstate_writer *w)
{
	for (int i = 0; i < 2; i++) {
		vmstate_begin(w, 99, 5, 1);
		vmstate_end(w);
	}
}

TEST(vmstate_duplicate_section)
{
	size_t len;
	int r = -1;
	uint8_t *buf = write_file(fill_dup_simple, &len, &r);

	/* The writer does not look for repeats; the reader must. */
	REQUIRE(buf);
	CHECK(r == 0);
	CHECK(refused_with(
		buf, len, "duplicate section 3 (vcpu 1): section 1 has the same tag and instance"));
	free(buf);

	buf = write_file(fill_dup_order, &len, &r);
	REQUIRE(buf);
	CHECK(refused_with(
		buf, len,
		"duplicate section 2 (serial 0): section 1 has the same tag and instance"));
	free(buf);

	buf = write_file(fill_dup_unknown, &len, &r);
	REQUIRE(buf);
	CHECK(refused_with(buf, len, "duplicate section 1 (tag 99 instance 5): section 0"));
	free(buf);
}

TEST(vmstate_trailing_data)
{
	size_t len;
	uint8_t *buf = sample(&len);

	REQUIRE(buf);
	uint8_t *more = realloc(buf, len + 2 * (SEC + 4));
	REQUIRE(more);
	buf = more;
	buf[len] = 0;
	CHECK(refused_with(buf, len + 1, "trailing data: 1 byte after the end marker"));
	/* A second end marker is trailing data too. */
	memcpy(buf + len, buf + len - (SEC + 4), SEC + 4);
	CHECK(refused_with(buf, len + SEC + 4, "trailing data: 28 bytes after the end marker"));
	/* An end marker with anything in it, or anything but zeros around it, is no end marker. */
	uint8_t *end = buf + len - (SEC + 4);
	le64_at(end + 16, 1);
	memset(end + SEC, 0, 1);
	le32_at(end + SEC + 1, crc(end, SEC + 1));
	CHECK(refused_with(buf, len + 1, "end marker: instance 0, version 0, 1 payload bytes"));
	le64_at(end + 16, 0);
	le32_at(end + 4, 3);
	le32_at(end + SEC, crc(end, SEC));
	CHECK(refused_with(buf, len, "end marker: instance 3, version 0, 0 payload bytes"));
	le32_at(end + 4, 0);
	le32_at(end + 8, 1);
	le32_at(end + SEC, crc(end, SEC));
	CHECK(refused_with(buf, len, "end marker: instance 0, version 1"));
	free(buf);
}

/* A header and one section header (vcpu 0) claiming plen bytes, then have bytes of zeros. */
static size_t lone_section(uint8_t *buf, uint64_t plen, size_t have)
{
	memset(buf, 0, HDR + SEC + have);
	memcpy(buf, "TERNSTAT", 8);
	le32_at(buf + 8, 1);
	le32_at(buf + 12, 1);
	fix_header_crc(buf);
	le32_at(buf + HDR, VMSTATE_TAG_VCPU);
	le64_at(buf + HDR + 16, plen);
	return HDR + SEC + have;
}

TEST(vmstate_oversized_and_reserved)
{
	static uint8_t buf[HDR + SEC + 256];

	CHECK(refused_with(
		buf, lone_section(buf, VMSTATE_MAX_SECTION + 1, 100),
		"section 0 (vcpu 0): payload of 67108865 bytes, above the limit of 67108864"));
	CHECK(refused_with(buf, lone_section(buf, UINT64_MAX, 100),
			   "payload of 18446744073709551615 bytes, above the limit"));
	/* Would wrap around with the CRC's 4 bytes added, if the limit came second. */
	CHECK(refused_with(buf, lone_section(buf, UINT64_MAX - 3, 100), "above the limit"));
	CHECK(refused_with(buf, lone_section(buf, VMSTATE_MAX_SECTION, 100),
			   "truncated: section 0 (vcpu 0) needs 67108868 bytes, 100 left"));
	CHECK(refused_with(buf, lone_section(buf, 4096, 100),
			   "truncated: section 0 (vcpu 0) needs 4100 bytes, 100 left"));
	/* The CRC is missing by one byte. */
	CHECK(refused_with(buf, lone_section(buf, 97, 100),
			   "truncated: section 0 (vcpu 0) needs 101 bytes, 100 left"));

	size_t len = lone_section(buf, 0, 4);
	le32_at(buf + HDR + 12, 0x10);
	le32_at(buf + HDR + SEC, crc(buf + HDR, SEC));
	CHECK(refused_with(buf, len, "section 0 (vcpu 0): reserved field is 0x10, not 0"));
	le32_at(buf + HDR + 12, 0);
	le32_at(buf + HDR + SEC, crc(buf + HDR, SEC));
	CHECK(refused_with(buf, len, "no end marker"));
}

static uint32_t nfill;

static void fill_many(struct vmstate_writer *w)
{
	for (uint32_t i = 0; i < nfill; i++) {
		vmstate_begin(w, VMSTATE_TAG_VIRTIO, i, 1);
		vmstate_end(w);
	}
}

TEST(vmstate_section_count_limit)
{
	size_t len;
	int r = -1;
	struct vmstate_file f;

	nfill = VMSTATE_MAX_SECTIONS;
	uint8_t *buf = write_file(fill_many, &len, &r);
	REQUIRE(buf);
	CHECK(r == 0);
	REQUIRE(vmstate_file_parse(&f, buf, len, err, sizeof(err)) == 0);
	CHECK(f.nsections == VMSTATE_MAX_SECTIONS);
	CHECK(vmstate_find(&f, VMSTATE_TAG_VIRTIO, 4095) == &f.sections[4095]);
	vmstate_file_free(&f);
	free(buf);

	nfill = VMSTATE_MAX_SECTIONS + 1;
	buf = write_file(fill_many, &len, &r);
	REQUIRE(buf);
	CHECK(refused_with(buf, len, "more than 4096 sections (section 4096 is virtio 4096)"));
	free(buf);
}

TEST(vmstate_cursor)
{
	static const uint8_t bytes[] = { 1, 2, 3 };
	struct vmstate_section s = { .tag = VMSTATE_TAG_RTC, .payload = bytes, .len = 3 };
	struct vmstate_cursor c;
	uint8_t out[4];

	/* A boolean that is neither 0 nor 1: error, false, and every later read gives 0. */
	vmstate_cursor_init(&c, &s);
	CHECK(vmstate_get_bool(&c) == true);
	CHECK(!c.error);
	CHECK(vmstate_get_bool(&c) == false);
	CHECK(c.error);
	CHECK(vmstate_get_u8(&c) == 0);
	CHECK(vmstate_cursor_done(&c) == -EINVAL);

	/* Reading past the end: zeros, and sticky even for a read that would now fit. */
	vmstate_cursor_init(&c, &s);
	CHECK(vmstate_get_u32(&c) == 0);
	CHECK(c.error && c.off == 0);
	CHECK(vmstate_get_u8(&c) == 0);
	memset(out, 0xaa, sizeof(out));
	vmstate_get(&c, out, 2);
	CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0xaa);
	CHECK(vmstate_cursor_done(&c) == -EINVAL);

	vmstate_cursor_init(&c, &s);
	CHECK(vmstate_get_u16(&c) == 0x0201);
	CHECK(vmstate_get_u16(&c) == 0);
	CHECK(vmstate_get_u64(&c) == 0);
	CHECK(vmstate_cursor_done(&c) == -EINVAL);

	/* Bytes left over: the payload is larger than this reader expects. */
	vmstate_cursor_init(&c, &s);
	CHECK(vmstate_get_u16(&c) == 0x0201);
	CHECK(vmstate_cursor_done(&c) == -EINVAL);
	CHECK(vmstate_get_u8(&c) == 3);
	vmstate_get(&c, NULL, 0);
	CHECK(vmstate_cursor_done(&c) == 0);

	/* A section that is not in the file. */
	vmstate_cursor_init(&c, NULL);
	CHECK(c.error);
	CHECK(vmstate_get_u64(&c) == 0);
	CHECK(vmstate_cursor_done(&c) == -EINVAL);
}

static int devnull(void)
{
	return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

TEST(vmstate_writer_misuse)
{
	struct vmstate_writer w;
	int fd = devnull();

	REQUIRE(fd >= 0);
	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_end(&w);
	CHECK(w.err == -EINVAL);
	CHECK(vmstate_writer_finish(&w) == -EINVAL);
	CHECK(w.written == HDR); /* no end marker after an error */

	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_begin(&w, VMSTATE_TAG_VCPU, 0, 1);
	vmstate_begin(&w, VMSTATE_TAG_VCPU, 1, 1);
	CHECK(w.err == -EINVAL);
	vmstate_put_u32(&w, 1);
	vmstate_end(&w);
	CHECK(vmstate_writer_finish(&w) == -EINVAL);
	CHECK(w.written == HDR && !w.buf);

	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_put_u8(&w, 1);
	CHECK(vmstate_writer_finish(&w) == -EINVAL);

	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_begin(&w, VMSTATE_TAG_END, 0, 0);
	CHECK(vmstate_writer_finish(&w) == -EINVAL);

	/* A section left open: the device's save stopped half-way. */
	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_begin(&w, VMSTATE_TAG_PIT, 0, 1);
	vmstate_put_u64(&w, 1);
	CHECK(vmstate_writer_finish(&w) == -EINVAL);
	CHECK(w.written == HDR && !w.buf);

	/* The first error is the one reported. */
	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_begin(&w, VMSTATE_TAG_PIT, 0, 1);
	vmstate_put(&w, blob, VMSTATE_MAX_SECTION + 1);
	CHECK(w.err == -EFBIG);
	vmstate_begin(&w, VMSTATE_TAG_PIT, 0, 1);
	CHECK(vmstate_writer_finish(&w) == -EFBIG);
	close(fd);
}

TEST(vmstate_writer_efbig)
{
	struct vmstate_writer w;
	int fd = devnull();
	static uint8_t mib[1 << 20];

	REQUIRE(fd >= 0);
	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	/* Exactly the limit is allowed... */
	vmstate_begin(&w, VMSTATE_TAG_VIRTIO_NET, 0, 1);
	for (int i = 0; i < 64; i++)
		vmstate_put(&w, mib, sizeof(mib));
	vmstate_end(&w);
	CHECK(w.err == 0);
	CHECK(w.written == HDR + SEC + VMSTATE_MAX_SECTION + 4);
	/* ...one byte more is not. */
	vmstate_begin(&w, VMSTATE_TAG_VIRTIO_NET, 1, 1);
	for (int i = 0; i < 64; i++)
		vmstate_put(&w, mib, sizeof(mib));
	CHECK(w.err == 0);
	vmstate_put_u8(&w, 1);
	CHECK(w.err == -EFBIG);
	vmstate_end(&w);
	CHECK(vmstate_writer_finish(&w) == -EFBIG);
	CHECK(w.written == HDR + SEC + VMSTATE_MAX_SECTION + 4);
	close(fd);
}

TEST(vmstate_writer_ebadf)
{
	struct vmstate_writer w;
	int fd = devnull();

	REQUIRE(fd >= 0);
	close(fd);
	CHECK(vmstate_writer_init(&w, fd) == -EBADF);
	fill_sample(&w);
	CHECK(vmstate_writer_finish(&w) == -EBADF);
	CHECK(w.written == 0);

	/* The fd going away later: the error surfaces from finish. */
	fd = devnull();
	REQUIRE(fd >= 0);
	REQUIRE(vmstate_writer_init(&w, fd) == 0);
	vmstate_begin(&w, VMSTATE_TAG_RTC, 0, 1);
	vmstate_put_u32(&w, 5);
	close(fd);
	vmstate_end(&w);
	fill_sample(&w);
	CHECK(vmstate_writer_finish(&w) == -EBADF);
	CHECK(w.written == HDR);
}

TEST(vmstate_writer_epipe)
{
	struct vmstate_writer w;
	int p[2];
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	REQUIRE(sigaction(SIGPIPE, &ign, &old) == 0);
	close(p[0]);
	CHECK(vmstate_writer_init(&w, p[1]) == -EPIPE);
	fill_sample(&w);
	CHECK(vmstate_writer_finish(&w) == -EPIPE);
	close(p[1]);
	sigaction(SIGPIPE, &old, NULL);
}

/* The other end of a pipe: collects everything until EOF, optionally slowly. */
struct drain {
	int fd;
	bool slow;
	uint8_t *buf;
	size_t len, cap;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;

	for (;;) {
		if (d->cap - d->len < 4096) {
			d->cap = d->cap ? d->cap * 2 : 1 << 16;
			d->buf = realloc(d->buf, d->cap);
			if (!d->buf)
				return NULL;
		}
		ssize_t r = read(d->fd, d->buf + d->len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		d->len += (size_t)r;
		if (d->slow)
			usleep(50);
	}
}

static void fill_big(struct vmstate_writer *w)
{
	static uint8_t big[300 * 1024];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	for (uint32_t i = 0; i < 8; i++) {
		vmstate_begin(w, VMSTATE_TAG_VIRTIO_BLK, i, 1);
		vmstate_put(w, big, sizeof(big) - i * 1000);
		vmstate_end(w);
	}
}

/* Writes fill_big through a pipe and compares it with what a plain file receives. */
static void through_pipe(bool nonblocking, bool slow)
{
	size_t want_len;
	int r = -1;
	uint8_t *want = write_file(fill_big, &want_len, &r);
	REQUIRE(want && r == 0);

	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) == 0);
	if (nonblocking) /* only the writer's end: the reader blocks */
		fcntl(p[0], F_SETFL, 0);
	struct drain d = { .fd = p[0], .slow = slow };
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, drain_thread, &d) == 0);

	struct vmstate_writer w;
	vmstate_writer_init(&w, p[1]);
	fill_big(&w);
	CHECK(vmstate_writer_finish(&w) == 0);
	CHECK(w.written == want_len);
	close(p[1]);
	pthread_join(t, NULL);
	close(p[0]);
	CHECK(d.len == want_len && d.buf && memcmp(d.buf, want, want_len) == 0);
	free(d.buf);
	free(want);
}

TEST(vmstate_writer_nonblocking_short_writes)
{
	/* A non-blocking pipe takes at most 64 KiB at a time, then says EAGAIN. */
	through_pipe(true, false);
	through_pipe(true, true);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

TEST(vmstate_writer_eintr)
{
	/* No SA_RESTART: a blocked write returns short or with EINTR at each alarm. */
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval tv = { { 0, 200 }, { 0, 200 } }, off = { { 0, 0 }, { 0, 0 } };
	sigset_t set, prev;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	REQUIRE(sigaction(SIGALRM, &sa, &old) == 0);
	/* The reader thread inherits SIGALRM blocked, so the alarms land on the writer. */
	pthread_sigmask(SIG_BLOCK, &set, &prev);
	alarms = 0;
	setitimer(ITIMER_REAL, &tv, NULL);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	through_pipe(false, true);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	CHECK(alarms > 0);
}

static void fill_describe(struct vmstate_writer *w)
{
	vmstate_begin(w, VMSTATE_TAG_MACHINE, 0, 1);
	vmstate_put_u32(w, 2);
	vmstate_put_u64(w, 512ULL << 20);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_MEMORY, 0, 1);
	vmstate_put_u64(w, 4096);
	vmstate_end(w);
	for (uint32_t i = 0; i < 2; i++) {
		vmstate_begin(w, VMSTATE_TAG_VCPU, i, 2);
		vmstate_put(w, blob, 1500);
		vmstate_end(w);
	}
	vmstate_begin(w, VMSTATE_TAG_SERIAL, 0, 1);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_VIRTIO_BLK, 1, 3);
	vmstate_put_u16(w, 256);
	vmstate_end(w);
	vmstate_begin(w, 1000, 4, 1);
	vmstate_put_u8(w, 1);
	vmstate_end(w);
}

static const char describe_want[] = "tern state file: format version 1, architecture x86-64 (1)\n"
				    "7 sections, 3275 bytes\n"
				    "section  tag            instance  version      bytes\n"
				    "      0  machine               0        1         12\n"
				    "      1  memory                0        1          8\n"
				    "      2  vcpu                  0        2       1500\n"
				    "      3  vcpu                  1        2       1500\n"
				    "      4  serial                0        1          0\n"
				    "      5  virtio-blk            1        3          2\n"
				    "      6  unknown(1000)         4        1          1\n";

/* Describes path into a string; returns describe's result. */
static int describe(const char *path, char **text)
{
	size_t size;
	FILE *out = open_memstream(text, &size);

	if (!out)
		return -ENOMEM;
	err[0] = 0;
	int r = vmstate_describe(path, out, err, sizeof(err));
	fclose(out);
	return r;
}

TEST(vmstate_describe)
{
	const char *dir = getenv("TMPDIR");
	char path[256];
	char *text = NULL;
	size_t len;
	int r = -1;

	snprintf(path, sizeof(path), "%s/tern-vmstate-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	uint8_t *buf = write_file(fill_describe, &len, &r);
	REQUIRE(buf && r == 0);
	CHECK(len == 3275);
	CHECK(write(fd, buf, len) == (ssize_t)len);

	CHECK(describe(path, &text) == 0);
	CHECK(text && strcmp(text, describe_want) == 0);
	if (text && strcmp(text, describe_want) != 0)
		printf("%s", text);
	free(text);

	/* A file that does not parse: an error naming it, and nothing printed. */
	CHECK(ftruncate(fd, (off_t)len - 1) == 0);
	CHECK(describe(path, &text) == -EINVAL);
	CHECK(text && text[0] == 0);
	CHECK(strncmp(err, path, strlen(path)) == 0);
	CHECK(strstr(err, ": truncated: section 7 (end marker) needs 4 bytes, 3 left") != NULL);
	free(text);
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(describe(path, &text) == -EINVAL);
	CHECK(strstr(err, "not a tern state file") != NULL);
	free(text);
	close(fd);
	unlink(path);

	CHECK(describe(path, &text) == -ENOENT);
	CHECK(strstr(err, "No such file") != NULL);
	free(text);
	CHECK(describe("/", &text) == -EISDIR);
	free(text);

	/* From memory, as the fuzz harness uses it. */
	FILE *out = fopen("/dev/null", "w");
	REQUIRE(out);
	CHECK(vmstate_describe_buf(buf, len, out, err, sizeof(err)) == 0);
	CHECK(vmstate_describe_buf(buf, len - 1, out, err, sizeof(err)) == -EINVAL);
	fclose(out);
	free(buf);
}
