/*
 * libFuzzer harness for the state format (src/vmstate/vmstate.c, describe.c): a snapshot
 * state file is user input (and, with migration, comes off the network), so the parser must
 * refuse anything malformed without reading a byte outside it.
 *
 * Input layout:
 *   0      control: bit 0 -> recompute the header CRC and every section CRC whose length
 *          fits before parsing, so that mutations reach the checks behind the CRCs;
 *          bits 1-2 -> err buffer of 256, 1, 0 (NULL) or 13 bytes
 *   1..8   u64 (little-endian): how the cursors read each payload, 4 bits per step
 *   9..    the state file (an input under 9 bytes is parsed whole, with no cursor pattern)
 *
 * The file is copied into an exact-size heap block so that ASan sees any stray read. The
 * verdict of vmstate_file_parse must match a second, deliberately simple checker written
 * here from the layout in vmstate.h. A parsed file must be indexed exactly (every payload
 * where the layout puts it), must come out byte for byte the same when its sections are
 * written again with the writer, and every payload is walked with a cursor whose results
 * are checked against a model (values, offset, sticky error, cursor_done).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "vmstate/describe.h"
#include "vmstate/vmstate.h"
#include "fuzz.h"

#define CTRL 9u

static uint32_t zcrc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(0, p, (unsigned int)n);
}

/* Makes every CRC right that the lengths let us find. */
static void fix_crcs(uint8_t *p, size_t n)
{
	if (n < 28)
		return;
	le_put32(p + 24, zcrc(p, 24));
	for (size_t off = 28; n - off >= 24;) {
		uint64_t plen = le_get64(p + off + 16);
		if (plen > n - off - 24 || n - off - 24 - plen < 4)
			return;
		le_put32(p + off + 24 + plen, zcrc(p + off, 24 + (size_t)plen));
		off += 28 + (size_t)plen;
	}
}

/* The reference checker: the rules of vmstate.h, one after the other, nothing clever. */
static uint64_t keys[VMSTATE_MAX_SECTIONS];

static bool ref_valid(const uint8_t *p, size_t n, unsigned int *count)
{
	if (n < 28 || memcmp(p, "TERNSTAT", 8) != 0 || le_get32(p + 8) != 1 ||
	    le_get32(p + 12) != 1 || le_get64(p + 16) != 0 || le_get32(p + 24) != zcrc(p, 24))
		return false;
	unsigned int k = 0;
	for (size_t off = 28;;) {
		if (n - off < 24 || le_get32(p + off + 12) != 0)
			return false;
		uint64_t plen = le_get64(p + off + 16);
		if (plen > VMSTATE_MAX_SECTION || plen > n - off - 24 || n - off - 24 - plen < 4)
			return false;
		if (le_get32(p + off + 24 + plen) != zcrc(p + off, 24 + (size_t)plen))
			return false;
		uint32_t tag = le_get32(p + off), instance = le_get32(p + off + 4);
		uint32_t version = le_get32(p + off + 8);
		off += 28 + (size_t)plen;
		if (tag == VMSTATE_TAG_END) {
			*count = k;
			return plen == 0 && instance == 0 && version == 0 && off == n;
		}
		if (k == VMSTATE_MAX_SECTIONS)
			return false;
		uint64_t key = (uint64_t)tag << 32 | instance;
		for (unsigned int j = 0; j < k; j++) {
			if (keys[j] == key)
				return false;
		}
		keys[k++] = key;
	}
}

static uint64_t le_n(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Reads one payload in the input's pattern and checks every step against a model. */
static void walk(const struct vmstate_section *s, uint64_t pattern)
{
	struct vmstate_cursor c;
	uint64_t off = 0;
	bool error = false;
	uint8_t buf[64];

	vmstate_cursor_init(&c, s);
	ASSERT(!c.error && c.off == 0 && c.len == s->len && c.p == s->payload);
	for (uint64_t step = 0; step < 2 * s->len + 16; step++) {
		unsigned int op = (pattern >> (4 * (step % 16))) & 15;
		unsigned int n;
		uint64_t got;

		switch (op & 7) {
		case 0:
			n = 1;
			got = vmstate_get_u8(&c);
			break;
		case 1:
			n = 2;
			got = vmstate_get_u16(&c);
			break;
		case 2:
			n = 4;
			got = vmstate_get_u32(&c);
			break;
		case 3:
			n = 8;
			got = vmstate_get_u64(&c);
			break;
		case 4: {
			bool was_error = error;
			uint8_t b = !error && off < s->len ? s->payload[off] : 0;
			got = vmstate_get_bool(&c);
			if (!error && off + 1 <= s->len)
				off++;
			else
				error = true;
			if (!was_error && b > 1)
				error = true;
			ASSERT(got == (!error && b == 1));
			ASSERT(c.error == error && c.off == off);
			continue;
		}
		case 5:
			n = (unsigned int)(step * 7 % sizeof(buf));
			memset(buf, 0xa5, sizeof(buf));
			vmstate_get(&c, buf, n);
			got = n ? le_n(buf, n < 8 ? n : 8) : 0;
			ASSERT(n == sizeof(buf) || buf[n] == 0xa5);
			break;
		case 6:
			/* Whatever is left: reaching the end exactly. */
			n = s->len - off < sizeof(buf) ? (unsigned int)(s->len - off) : sizeof(buf);
			memset(buf, 0xa5, sizeof(buf));
			vmstate_get(&c, buf, n);
			got = n ? le_n(buf, n < 8 ? n : 8) : 0;
			break;
		default:
			ASSERT(vmstate_cursor_done(&c) == (!error && off == s->len ? 0 : -EINVAL));
			continue;
		}
		uint64_t want = 0;
		if (!error && n <= s->len - off) {
			want = le_n(s->payload + off, n < 8 ? n : 8);
			off += n;
		} else {
			error = true;
		}
		ASSERT(got == want);
		ASSERT(c.error == error && c.off == off);
		if (op & 8 && error)
			break;
	}
	ASSERT(vmstate_cursor_done(&c) == (!error && off == s->len ? 0 : -EINVAL));
}

/* Writes the parsed sections again: the format has one encoding, so it must be the input. */
static void rewrite(const struct vmstate_file *f, const uint8_t *file, size_t len)
{
	static int fd = -1;
	static uint8_t *back;
	static size_t back_cap;
	struct vmstate_writer w;

	if (fd < 0)
		fd = memfd_create("fuzz-vmstate", MFD_CLOEXEC);
	ASSERT(fd >= 0);
	ASSERT(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	ASSERT(vmstate_writer_init(&w, fd) == 0);
	for (unsigned int i = 0; i < f->nsections; i++) {
		const struct vmstate_section *s = &f->sections[i];
		vmstate_begin(&w, s->tag, s->instance, s->version);
		vmstate_put(&w, s->payload, s->len);
		vmstate_end(&w);
	}
	ASSERT(vmstate_writer_finish(&w) == 0);
	ASSERT(w.written == len);
	if (back_cap < len) {
		free(back);
		back = malloc(len);
		back_cap = len;
		ASSERT(back);
	}
	ASSERT(pread(fd, back, len, 0) == (ssize_t)len);
	ASSERT(memcmp(back, file, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	static const size_t errlens[4] = { 256, 1, 0, 13 };
	uint8_t ctrl = 0;
	uint64_t pattern = 0x0123456789abcdefULL;

	if (!devnull)
		devnull = fopen("/dev/null", "w");
	ASSERT(devnull);
	if (size >= CTRL) {
		ctrl = data[0];
		pattern = le_get64(data + 1);
		data += CTRL;
		size -= CTRL;
	}
	uint8_t *file = malloc(size ? size : 1);
	ASSERT(file);
	if (size)
		memcpy(file, data, size);
	if (ctrl & 1)
		fix_crcs(file, size);

	size_t errlen = errlens[(ctrl >> 1) & 3];
	char errbuf[256];
	char *err = errlen ? errbuf : NULL;
	memset(errbuf, 0x5a, sizeof(errbuf));

	struct vmstate_file f;
	unsigned int count = 0;
	bool valid = ref_valid(file, size, &count);
	int r = vmstate_file_parse(&f, file, size, err, errlen);
	ASSERT(r == 0 || r == -EINVAL);
	ASSERT(valid == (r == 0));

	char derr[256];
	ASSERT(vmstate_describe_buf(file, size, devnull, derr, sizeof(derr)) == r);
	if (r) {
		ASSERT(!f.sections && f.nsections == 0);
		/* A message, cut to fit, always terminated. */
		if (errlen)
			ASSERT(memchr(errbuf, 0, errlen) != NULL);
		if (errlen > 1)
			ASSERT(errbuf[0] != 0);
		ASSERT(derr[0] != 0 && strlen(derr) < sizeof(derr));
		vmstate_file_free(&f);
		free(file);
		return 0;
	}

	ASSERT(f.version == VMSTATE_VERSION && f.arch == VMSTATE_ARCH_X86_64);
	ASSERT(f.nsections == count);
	/* Each payload exactly where the layout puts it, inside the file. */
	size_t off = VMSTATE_HEADER_SIZE;
	for (unsigned int i = 0; i < f.nsections; i++) {
		const struct vmstate_section *s = &f.sections[i];
		ASSERT(s->tag != VMSTATE_TAG_END);
		ASSERT(s->payload == file + off + VMSTATE_SECTION_HEADER_SIZE);
		ASSERT(s->len <= VMSTATE_MAX_SECTION);
		ASSERT(s->len <=
		       size - off - VMSTATE_SECTION_HEADER_SIZE - VMSTATE_SECTION_CRC_SIZE);
		ASSERT(le_get32(file + off) == s->tag && le_get32(file + off + 4) == s->instance);
		ASSERT(le_get32(file + off + 8) == s->version &&
		       le_get64(file + off + 16) == s->len);
		ASSERT(vmstate_find(&f, s->tag, s->instance) == s);
		const char *name = vmstate_tag_name(s->tag);
		/*
		 * Errors name a section as "NAME INSTANCE" in a 64-byte buffer (label() in
		 * vmstate.c): the name must leave room for a space and 10 digits. (The listing's
		 * 14-wide column is cosmetic: the migration tags' names are longer.)
		 */
		ASSERT(name && strlen(name) + 1 + 10 < 64);
		off += VMSTATE_SECTION_HEADER_SIZE + s->len + VMSTATE_SECTION_CRC_SIZE;
		walk(s, pattern);
		pattern = pattern >> 3 | pattern << 61;
	}
	ASSERT(off + VMSTATE_SECTION_HEADER_SIZE + VMSTATE_SECTION_CRC_SIZE == size);
	rewrite(&f, file, size);
	vmstate_file_free(&f);
	free(file);
	return 0;
}
