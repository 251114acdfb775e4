/*
 * libFuzzer harness for the live-migration stream as a destination receives it
 * (src/vmstate/vmstate.c's vmstate_read_section, src/vmstate/migration.c): everything after
 * the stream's header comes off the network from a peer that may be broken or hostile, and
 * RAM sections are written straight into the guest's memory.
 *
 * Input layout:
 *   0      control: bit 0 -> mig_ram_apply is told RAM is anonymous (zero runs give the
 *          pages back with MADV_DONTNEED), else not (zero runs are memset);
 *          bit 1 -> recompute every section CRC whose length fits, so that mutations reach
 *          the checks behind the CRCs;
 *          bits 2-3 -> max_payload: VMSTATE_MAX_SECTION (the RAM phase), 4096 (hello and
 *          report), MIG_RAM_SECTION_MAX, 64;
 *          bits 4-5 -> the VM's RAM: 256, 255, 17 or 1 pages (of the 1 MiB mapping)
 *   1..    the stream's sections (at most 60 KiB: it is written into a pipe whole, before
 *          the reader starts, and must fit the pipe's buffer)
 *
 * The sections are read one by one with vmstate_read_section from the pipe (the write end
 * closed, so the end of the input is the peer hanging up) until it fails; its verdict
 * (-EPIPE, -EINVAL or a section) must match a reference splitter written here. Every
 * section goes through mig_hello_get; RAM sections through mig_ram_apply, ERROR through
 * mig_message_get, REPORT through mig_report_get, COMPLETE and DEVICES as migrate_recv.c
 * reads them. Each verdict must match a reference checker written here from the layouts in
 * migration.h, and RAM must equal a shadow copy that the reference updates: a refused RAM
 * section must leave every byte as it was, an accepted one must land exactly where its runs
 * say, and no page at or above the VM's page count is ever written.
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
#include <unistd.h>
#include <zlib.h>

#include "vmstate/migration.h"
#include "vmstate/vmstate.h"
#include "fuzz.h"

#define MAX_STREAM (60 * 1024)
#define RAM_PAGES 256
#define RAM_BYTES (RAM_PAGES * MIG_PAGE)
#define PLACEHOLDER "(an unreadable error message)"

static uint8_t *ram;	/* the VM's RAM: private anonymous memory, as tern-vmm's */
static uint8_t *shadow; /* what RAM must hold */
static bool ram_dirty = true;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT(ram != MAP_FAILED);
	shadow = malloc(RAM_BYTES);
	ASSERT(shadow);
	return 0;
}

/* Every run starts from the same RAM (non-zero, different per page), so inputs replay. */
static void ram_reset(void)
{
	if (!ram_dirty)
		return;
	for (uint64_t i = 0; i < RAM_BYTES; i++)
		shadow[i] = (uint8_t)(0xa5 ^ (i >> 12) ^ (i & 0x3f));
	memcpy(ram, shadow, RAM_BYTES);
	ram_dirty = false;
}

static uint32_t zcrc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(0, p, (unsigned int)n);
}

/* Makes every section's CRC right that the lengths let us find. */
static void fix_crcs(uint8_t *p, size_t n)
{
	for (size_t off = 0; n - off >= 24;) {
		uint64_t plen = le_get64(p + off + 16);
		if (plen > n - off - 24 || n - off - 24 - plen < 4)
			return;
		le_put32(p + off + 24 + plen, zcrc(p + off, 24 + (size_t)plen));
		off += 28 + (size_t)plen;
	}
}

/*
 * The reference splitter: what vmstate_read_section must make of the bytes at *off. 0 (and
 * *off moves past the section), -EPIPE (the stream ends first) or -EINVAL.
 */
static int ref_section(const uint8_t *p, size_t n, size_t *off, uint64_t max)
{
	size_t left = n - *off;
	const uint8_t *h = p + *off;

	if (left < 24)
		return -EPIPE;
	if (le_get32(h + 12) != 0)
		return -EINVAL;
	uint64_t plen = le_get64(h + 16);
	if (plen > max || plen > VMSTATE_MAX_SECTION)
		return -EINVAL;
	if (plen + 4 > left - 24)
		return -EPIPE;
	if (le_get32(h + 24 + plen) != zcrc(h, 24 + (size_t)plen))
		return -EINVAL;
	*off += 28 + (size_t)plen;
	return 0;
}

/*
 * The reference for a RAM section: -1 when it is valid (and then, with apply, the shadow gets
 * its runs and *covered their pages), else the index of the first bad run, or -2 for a
 * section of the wrong version.
 */
static long ref_ram(const struct vmstate_section *s, uint64_t pages, bool apply, uint64_t *covered)
{
	const uint8_t *p = s->payload;
	uint64_t off = 0;
	long run = 0;

	if (s->version != 1)
		return -2;
	*covered = 0;
	for (; off < s->len; run++) {
		if (s->len - off < 13)
			return run;
		uint64_t first = le_get64(p + off);
		uint32_t count = le_get32(p + off + 8);
		uint8_t kind = p[off + 12];
		off += 13;
		if (kind > 1 || count == 0 || first >= pages || pages - first < count)
			return run;
		if (kind == 0) {
			if (count > 256 || (uint64_t)count * 4096 > s->len - off)
				return run;
			if (apply)
				memcpy(shadow + first * 4096, p + off, (size_t)count * 4096);
			off += (uint64_t)count * 4096;
		} else if (apply) {
			memset(shadow + first * 4096, 0, (size_t)count * 4096);
		}
		*covered += count;
	}
	return -1;
}

static void check_ram(const struct vmstate_section *s, uint64_t pages, bool anon)
{
	uint64_t done = 1000, covered = 0;
	char err[256] = "";
	long bad = ref_ram(s, pages, false, &covered);

	if (bad == -1)
		ram_dirty = true;
	int r = mig_ram_apply(s, ram, anon, pages, &done, err, sizeof(err));
	if (bad == -1) {
		ASSERT(r == 0);
		ref_ram(s, pages, true, &covered);
		ASSERT(done == 1000 + covered);
	} else {
		char want[64];
		ASSERT(r == -EINVAL);
		ASSERT(done == 1000);
		/* The message names the run the peer got wrong. */
		if (bad == -2)
			snprintf(want, sizeof(want), "RAM section version %u;", s->version);
		else
			snprintf(want, sizeof(want), "RAM run %ld: ", bad);
		ASSERT(strncmp(err, want, strlen(want)) == 0);
	}
	/* Refused: nothing written. Accepted: exactly the runs. Never past the VM's pages. */
	ASSERT(memcmp(ram, shadow, RAM_BYTES) == 0);
}

/* The hello: u32 protocol, u32 page size, u64 RAM size, u32 flags. */
#define HELLO_LEN 20
#define HELLO_FLAGS(p) le_get32((p) + 16)
#define HELLO_KNOWN_FLAGS MIG_HELLO_COPY_STORAGE

static void check_hello(const struct vmstate_section *s)
{
	struct mig_hello h;
	char err[256] = "";
	const uint8_t *p = s->payload;
	bool ok = s->tag == VMSTATE_TAG_MIG_HELLO && s->version == 1 && s->len == HELLO_LEN &&
		  le_get32(p) == 1 && le_get32(p + 4) == 4096 && le_get64(p + 8) != 0 &&
		  le_get64(p + 8) % 4096 == 0 && !(HELLO_FLAGS(p) & ~HELLO_KNOWN_FLAGS);
	int r = mig_hello_get(s, &h, err, sizeof(err));

	if (ok) {
		ASSERT(r == 0);
		ASSERT(h.protocol == 1 && h.page_size == 4096 && h.ram_size == le_get64(p + 8));
		ASSERT(h.flags == HELLO_FLAGS(p));
	} else {
		ASSERT(r == -EINVAL && err[0]);
		/* Another protocol is reported as such, however the rest is laid out. */
		if (s->tag == VMSTATE_TAG_MIG_HELLO && s->len >= 4 && le_get32(p) != 1)
			ASSERT(strstr(err, "migration protocol version"));
	}
}

static void check_message(const struct vmstate_section *s, size_t outlen)
{
	char want[MIG_MESSAGE_MAX + 1];
	const uint8_t *p = s->payload;
	char *out = malloc(outlen); /* exact size: ASan sees a write past it */

	ASSERT(out);
	uint32_t mlen = s->len >= 4 ? le_get32(p) : 0;
	if (s->len >= 4 && mlen <= MIG_MESSAGE_MAX && s->len - 4 == mlen &&
	    !memchr(p + 4, 0, mlen)) {
		for (uint32_t i = 0; i < mlen; i++)
			want[i] = p[4 + i] < 0x20 || p[4 + i] == 0x7f ? '?' : (char)p[4 + i];
		want[mlen] = 0;
	} else {
		snprintf(want, sizeof(want), "%s", PLACEHOLDER);
	}
	memset(out, 0x5a, outlen);
	mig_message_get(s, out, outlen);
	/* What it wrote is want, cut to fit and terminated. */
	size_t k = strlen(want) < outlen - 1 ? strlen(want) : outlen - 1;
	ASSERT(memcmp(out, want, k) == 0 && out[k] == 0);
	for (size_t i = 0; i < k; i++)
		ASSERT((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	free(out);
}

static void check_report(const struct vmstate_section *s)
{
	struct mig_report rep;
	const uint8_t *p = s->payload;
	int r = mig_report_get(s, &rep);

	if (s->version == 1 && s->len == 28) {
		ASSERT(r == 0);
		ASSERT(rep.downtime_us == le_get64(p) && rep.total_ms == le_get64(p + 8) &&
		       rep.bytes_sent == le_get64(p + 16) && rep.rounds == le_get32(p + 24));
	} else {
		ASSERT(r == -EINVAL);
	}
}

/* COMPLETE carries whether the VM ran (migrate_recv.c's receive()). */
static void check_complete(const struct vmstate_section *s)
{
	struct vmstate_cursor c;

	vmstate_cursor_init(&c, s);
	bool running = vmstate_get_bool(&c);
	bool ok = s->len == 1 && s->payload[0] <= 1;
	ASSERT((vmstate_cursor_done(&c) == 0) == ok);
	if (ok)
		ASSERT(running == s->payload[0]);
}

/* DEVICES is a whole state file, parsed once the stream completes. */
static void check_devices(const struct vmstate_section *s)
{
	struct vmstate_file f;
	char err[256];
	int r = vmstate_file_parse(&f, s->payload, (size_t)s->len, err, sizeof(err));

	ASSERT(r == 0 || r == -EINVAL);
	vmstate_file_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[4] = { VMSTATE_MAX_SECTION, 4096, MIG_RAM_SECTION_MAX, 64 };
	static const uint64_t pages_of[4] = { RAM_PAGES, RAM_PAGES - 1, 17, 1 };
	static const size_t outlens[3] = { MIG_MESSAGE_MAX + 1, 16, 1 };
	static uint8_t stream[MAX_STREAM];

	if (size < 1)
		return 0;
	uint8_t ctrl = data[0];
	size_t n = size - 1 < MAX_STREAM ? size - 1 : MAX_STREAM;
	memcpy(stream, data + 1, n);
	if (ctrl & 2)
		fix_crcs(stream, n);
	bool anon = ctrl & 1;
	uint64_t max = maxes[(ctrl >> 2) & 3], pages = pages_of[(ctrl >> 4) & 3];
	ram_reset();

	/* The whole input into the pipe, then the write end closed: the peer hung up. */
	int p[2];
	ASSERT(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	ASSERT(fcntl(p[1], F_GETPIPE_SZ) >= MAX_STREAM);
	ASSERT(n == 0 || write(p[1], stream, n) == (ssize_t)n);
	close(p[1]);

	uint8_t *buf = NULL;
	size_t cap = 0, off = 0;
	for (unsigned int i = 0;; i++) {
		struct vmstate_section s;
		char err[256] = "";
		size_t at = off;
		int want = ref_section(stream, n, &off, max);
		int r = vmstate_read_section(p[0], &s, &buf, &cap, max, 1000, err, sizeof(err));

		ASSERT(r == want);
		if (r) {
			ASSERT(err[0]);
			if (r == -EPIPE)
				ASSERT(strstr(err, "closed"));
			break;
		}
		ASSERT(s.tag == le_get32(stream + at) && s.instance == le_get32(stream + at + 4));
		ASSERT(s.version == le_get32(stream + at + 8));
		ASSERT(s.len == off - at - 28 && s.len <= cap && s.payload == buf);
		ASSERT(s.len == 0 || memcmp(s.payload, stream + at + 24, (size_t)s.len) == 0);

		/* Each payload in an exact-size heap block, so that ASan sees any stray read. */
		uint8_t *exact = malloc(s.len ? (size_t)s.len : 1);
		ASSERT(exact);
		if (s.len)
			memcpy(exact, s.payload, (size_t)s.len);
		s.payload = exact;
		check_hello(&s);
		switch (s.tag) {
		case VMSTATE_TAG_MIG_RAM:
			check_ram(&s, pages, anon);
			break;
		case VMSTATE_TAG_MIG_ERROR:
			check_message(&s, outlens[i % 3]);
			break;
		case VMSTATE_TAG_MIG_REPORT:
			check_report(&s);
			break;
		case VMSTATE_TAG_MIG_COMPLETE:
			check_complete(&s);
			break;
		case VMSTATE_TAG_MIG_DEVICES:
			check_devices(&s);
			break;
		}
		free(exact);
	}
	free(buf);
	close(p[0]);
	return 0;
}
