/*
 * Tests for the live-migration stream (src/vmstate/migration.c, the stream reader at the end
 * of src/vmstate/vmstate.c, mig_uri_parse in src/vmm/migrate_channel.c). The destination
 * takes every byte of it from the network, so the point of most cases is a refusal: a RAM
 * section with any bad run writes nothing at all into the guest's RAM, a hello or message
 * that is not what this tern-vmm reads is refused or replaced, and the reader stops at a
 * bad CRC, an oversized length, a closed peer or a silent one with an error that says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/migrate.h"
#include "vmstate/migration.h"
#include "vmstate/vmstate.h"
#include "unit.h"

#define PAGE ((size_t)MIG_PAGE)
#define OLD 0xaa /* what RAM holds before a section is applied */

static char err[256];

/* ---- payloads built byte by byte, independent of the writer ---- */

struct payload {
	uint8_t *p;
	size_t len, cap;
};

static void pl_bytes(struct payload *pl, const void *d, size_t n)
{
	if (pl->len + n > pl->cap) {
		size_t cap = pl->cap ? pl->cap : 256;
		while (cap < pl->len + n)
			cap *= 2;
		uint8_t *p = realloc(pl->p, cap);
		if (!p)
			abort(); /* a test machine out of memory: nothing sensible to report */
		pl->p = p;
		pl->cap = cap;
	}
	if (n)
		memcpy(pl->p + pl->len, d, n);
	pl->len += n;
}

static void pl_le(struct payload *pl, uint64_t v, int bytes)
{
	uint8_t b[8];

	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	pl_bytes(pl, b, (size_t)bytes);
}

/* A run header; a data run's bytes are added separately, so tests can get them wrong. */
static void pl_run(struct payload *pl, uint64_t first, uint32_t count, uint8_t kind)
{
	pl_le(pl, first, 8);
	pl_le(pl, count, 4);
	pl_le(pl, kind, 1);
}

static void pl_fill(struct payload *pl, uint8_t byte, size_t n)
{
	uint8_t page[4096];

	memset(page, byte, sizeof(page));
	while (n) {
		size_t k = n < sizeof(page) ? n : sizeof(page);
		pl_bytes(pl, page, k);
		n -= k;
	}
}

static struct vmstate_section pl_section(const struct payload *pl, uint32_t tag, uint32_t version)
{
	return (struct vmstate_section){
		.tag = tag, .version = version, .payload = pl->p, .len = pl->len
	};
}

static void pl_free(struct payload *pl)
{
	free(pl->p);
	*pl = (struct payload){ 0 };
}

/* ---- sections written by the writer and read back whole ---- */

struct written {
	uint8_t *buf;
	size_t len;
	struct vmstate_file f;
};

/* A writer over a fresh memfd (its header already written); -1 on failure. */
static int writer_open(struct vmstate_writer *w)
{
	int fd = memfd_create("migration-test", MFD_CLOEXEC);

	if (fd >= 0 && vmstate_writer_init(w, fd) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Finishes the writer, reads the file back and parses it. false on any failure. */
static bool writer_parse(struct vmstate_writer *w, int fd, struct written *out)
{
	struct stat st;
	char why[256];

	*out = (struct written){ 0 };
	bool ok = vmstate_writer_finish(w) == 0 && fstat(fd, &st) == 0;
	if (ok) {
		out->len = (size_t)st.st_size;
		out->buf = malloc(out->len);
		ok = out->buf && pread(fd, out->buf, out->len, 0) == st.st_size &&
		     vmstate_file_parse(&out->f, out->buf, out->len, why, sizeof(why)) == 0;
	}
	close(fd);
	return ok;
}

static void written_free(struct written *wr)
{
	vmstate_file_free(&wr->f);
	free(wr->buf);
	*wr = (struct written){ 0 };
}

/* ---- RAM ---- */

static uint8_t *ram_alloc(uint64_t pages)
{
	/* One byte at least: malloc(0) may be NULL, and a VM of 0 pages is a case. */
	uint8_t *ram = malloc(pages ? pages * PAGE : 1);

	if (ram)
		memset(ram, OLD, pages * PAGE);
	return ram;
}

/* Every byte of [off, off + len) is b. */
static bool all_bytes(const uint8_t *p, size_t len, uint8_t b)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != b)
			return false;
	return true;
}

/* A page-sized pattern that differs per page and per byte, so a misplaced copy shows. */
static void pattern_pages(uint8_t *p, uint32_t pages, uint8_t seed)
{
	for (size_t i = 0; i < pages * PAGE; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 12) * 13);
}

TEST(migration_ram_apply_data_and_zero)
{
	const uint64_t pages = 16;
	static uint8_t data[3 * 4096], last[4096];
	struct vmstate_writer w;
	struct written wr;
	uint64_t done = 5;
	uint8_t *ram = ram_alloc(pages);
	REQUIRE(ram);

	pattern_pages(data, 3, 1);
	pattern_pages(last, 1, 99);
	int fd = writer_open(&w);
	REQUIRE(fd >= 0);
	vmstate_begin(&w, VMSTATE_TAG_MIG_RAM, 0, MIG_SECTION_VERSION);
	mig_run_put(&w, 2, 3, MIG_RUN_DATA, data);
	mig_run_put(&w, 8, 4, MIG_RUN_ZERO, NULL);
	mig_run_put(&w, pages - 1, 1, MIG_RUN_DATA, last); /* the very last page is in range */
	vmstate_end(&w);
	REQUIRE(writer_parse(&w, fd, &wr));
	REQUIRE(wr.f.nsections == 1);
	/* 3 run headers of 13 bytes, 4 pages of data: the zero run carries no bytes. */
	CHECK(wr.f.sections[0].len == 3 * 13 + 4 * PAGE);

	err[0] = 0;
	CHECK(mig_ram_apply(&wr.f.sections[0], ram, false, pages, &done, err, sizeof(err)) == 0);
	CHECK(err[0] == 0);
	CHECK(done == 5 + 3 + 4 + 1);
	CHECK(all_bytes(ram, 2 * PAGE, OLD));
	CHECK(memcmp(ram + 2 * PAGE, data, sizeof(data)) == 0);
	CHECK(all_bytes(ram + 5 * PAGE, 3 * PAGE, OLD));
	CHECK(all_bytes(ram + 8 * PAGE, 4 * PAGE, 0));
	CHECK(all_bytes(ram + 12 * PAGE, 3 * PAGE, OLD));
	CHECK(memcmp(ram + 15 * PAGE, last, PAGE) == 0);

	written_free(&wr);
	free(ram);
}

TEST(migration_ram_apply_empty_and_big_zero_run)
{
	/* Zero runs carry no bytes, so they are not held to MIG_RUN_MAX_PAGES. */
	const uint64_t pages = 2 * MIG_RUN_MAX_PAGES;
	struct payload pl = { 0 };
	uint64_t done = 0;
	uint8_t *ram = ram_alloc(pages);
	REQUIRE(ram);

	struct vmstate_section s = pl_section(&pl, VMSTATE_TAG_MIG_RAM, MIG_SECTION_VERSION);
	CHECK(mig_ram_apply(&s, ram, false, pages, &done, err, sizeof(err)) == 0);
	CHECK(done == 0);
	CHECK(all_bytes(ram, pages * PAGE, OLD));

	pl_run(&pl, 0, (uint32_t)pages, MIG_RUN_ZERO);
	s = pl_section(&pl, VMSTATE_TAG_MIG_RAM, MIG_SECTION_VERSION);
	CHECK(mig_ram_apply(&s, ram, false, pages, &done, err, sizeof(err)) == 0);
	CHECK(done == pages);
	CHECK(all_bytes(ram, pages * PAGE, 0));
	pl_free(&pl);
	free(ram);
}

/* How many of [p, p + pages) are resident (mincore). */
static long resident(uint8_t *p, uint64_t pages)
{
	unsigned char vec[64];
	long k = 0;

	if (pages > sizeof(vec) || mincore(p, pages * PAGE, vec))
		return -1;
	for (uint64_t i = 0; i < pages; i++)
		k += vec[i] & 1;
	return k;
}

TEST(migration_ram_apply_gives_anonymous_zero_pages_back)
{
	const uint64_t pages = 16;
	struct payload pl = { 0 };
	uint64_t done = 0;

	uint8_t *ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	REQUIRE(ram != MAP_FAILED);
	memset(ram, OLD, pages * PAGE); /* every page now resident */
	CHECK(resident(ram, pages) == (long)pages);

	/* A refused section must not drop anything either. */
	pl_run(&pl, 4, 4, MIG_RUN_ZERO);
	pl_run(&pl, 0, 1, 7);
	struct vmstate_section s = pl_section(&pl, VMSTATE_TAG_MIG_RAM, MIG_SECTION_VERSION);
	CHECK(mig_ram_apply(&s, ram, true, pages, &done, err, sizeof(err)) == -EINVAL);
	CHECK(resident(ram, pages) == (long)pages);
	CHECK(all_bytes(ram, pages * PAGE, OLD));
	pl_free(&pl);

	pl_run(&pl, 4, 4, MIG_RUN_ZERO);
	pl_run(&pl, 10, 1, MIG_RUN_DATA);
	pl_fill(&pl, 0x5c, PAGE);
	s = pl_section(&pl, VMSTATE_TAG_MIG_RAM, MIG_SECTION_VERSION);
	CHECK(mig_ram_apply(&s, ram, true, pages, &done, err, sizeof(err)) == 0);
	CHECK(done == 5);
	/* The zero run went back to the kernel, rather than being written with zeros. */
	CHECK(resident(ram + 4 * PAGE, 4) == 0);
	CHECK(resident(ram, 4) == 4 && resident(ram + 8 * PAGE, 8) == 8);
	/* ... and reads as zeros. */
	CHECK(all_bytes(ram + 4 * PAGE, 4 * PAGE, 0));
	CHECK(all_bytes(ram, 4 * PAGE, OLD));
	CHECK(all_bytes(ram + 8 * PAGE, 2 * PAGE, OLD));
	CHECK(all_bytes(ram + 10 * PAGE, PAGE, 0x5c));
	CHECK(all_bytes(ram + 11 * PAGE, 5 * PAGE, OLD));
	pl_free(&pl);

	/* Data sent later into a dropped page lands there. */
	pl_run(&pl, 5, 1, MIG_RUN_DATA);
	pl_fill(&pl, 0x77, PAGE);
	s = pl_section(&pl, VMSTATE_TAG_MIG_RAM, MIG_SECTION_VERSION);
	CHECK(mig_ram_apply(&s, ram, true, pages, &done, err, sizeof(err)) == 0);
	CHECK(all_bytes(ram + 5 * PAGE, PAGE, 0x77));
	CHECK(all_bytes(ram + 4 * PAGE, PAGE, 0));
	CHECK(all_bytes(ram + 6 * PAGE, 2 * PAGE, 0));
	pl_free(&pl);

	munmap(ram, pages * PAGE);
}

/*
 * Applies a section that must be refused: -EINVAL, an error containing want, *pages_done
 * and every byte of RAM as they were.
 */
static void refused(const struct payload *pl, uint32_t version, uint64_t pages, const char *want)
{
	uint64_t done = 7;
	uint8_t *ram = ram_alloc(pages);
	REQUIRE(ram);
	struct vmstate_section s = pl_section(pl, VMSTATE_TAG_MIG_RAM, version);

	err[0] = 0;
	CHECK(mig_ram_apply(&s, ram, false, pages, &done, err, sizeof(err)) == -EINVAL);
	CHECK(done == 7);
	CHECK(all_bytes(ram, pages * PAGE, OLD));
	if (!strstr(err, want)) {
		printf("  error \"%s\" does not contain \"%s\"\n", err, want);
		CHECK(strstr(err, want));
	}
	free(ram);
}

TEST(migration_ram_apply_refusals)
{
	struct payload pl = { 0 };

	/* Past the end of RAM: by one page, starting at the end, starting far beyond. */
	pl_run(&pl, 14, 3, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 14+3 outside the VM's 16 pages");
	pl_free(&pl);
	pl_run(&pl, 14, 3, MIG_RUN_DATA);
	pl_fill(&pl, 1, 3 * PAGE);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 14+3 outside");
	pl_free(&pl);
	pl_run(&pl, 16, 1, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 16+1 outside");
	pl_free(&pl);
	pl_run(&pl, 0, 1, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 0, "RAM run 0: pages 0+1 outside the VM's 0 pages");
	pl_free(&pl);

	/* first + count wraps around to 3: still refused, for both kinds. */
	pl_run(&pl, UINT64_MAX - 1, 5, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 18446744073709551614+5 outside");
	pl_free(&pl);
	pl_run(&pl, UINT64_MAX - 1, 5, MIG_RUN_DATA);
	pl_fill(&pl, 1, 5 * PAGE);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 18446744073709551614+5 outside");
	pl_free(&pl);
	/* first * MIG_PAGE wraps to a small offset. */
	pl_run(&pl, 1ULL << 52, 1, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 4503599627370496+1 outside");
	pl_free(&pl);
	pl_run(&pl, 0, UINT32_MAX, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 0+4294967295 outside");
	pl_free(&pl);

	pl_run(&pl, 3, 0, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 3+0");
	pl_free(&pl);
	pl_run(&pl, 3, 0, MIG_RUN_DATA);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: pages 3+0");
	pl_free(&pl);

	pl_run(&pl, 0, 1, 7);
	pl_fill(&pl, 1, PAGE);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: kind 7");
	pl_free(&pl);
	pl_run(&pl, 0, 1, 2);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: kind 2");
	pl_free(&pl);

	/* A data run one byte short of its pages, and one with no bytes at all. */
	pl_run(&pl, 1, 2, MIG_RUN_DATA);
	pl_fill(&pl, 1, 2 * PAGE - 1);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: 2 pages of data, 8191 bytes left");
	pl_free(&pl);
	pl_run(&pl, 1, 1, MIG_RUN_DATA);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: 1 pages of data, 0 bytes left");
	pl_free(&pl);

	/* One page over the limit of a data run, with every byte of it present. */
	pl_run(&pl, 0, MIG_RUN_MAX_PAGES + 1, MIG_RUN_DATA);
	pl_fill(&pl, 1, (MIG_RUN_MAX_PAGES + 1) * PAGE);
	refused(&pl, MIG_SECTION_VERSION, 2 * MIG_RUN_MAX_PAGES, "RAM run 0: 257 pages of data");
	pl_free(&pl);

	/* Headers cut short: alone, and after a valid run. */
	for (size_t cut = 1; cut < 13; cut++) {
		pl_run(&pl, 0, 1, MIG_RUN_ZERO);
		pl.len = cut;
		refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 0: truncated header");
		pl_free(&pl);
	}
	pl_run(&pl, 0, 2, MIG_RUN_DATA);
	pl_fill(&pl, 0x11, 2 * PAGE);
	pl_le(&pl, 0, 8);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 1: truncated header");
	pl_free(&pl);

	/* A valid data run and a valid zero run, then a bad one: none of it is applied. */
	pl_run(&pl, 0, 2, MIG_RUN_DATA);
	pl_fill(&pl, 0x11, 2 * PAGE);
	pl_run(&pl, 4, 2, MIG_RUN_ZERO);
	pl_run(&pl, 15, 2, MIG_RUN_ZERO);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 2: pages 15+2 outside");
	pl_free(&pl);
	pl_run(&pl, 0, 2, MIG_RUN_DATA);
	pl_fill(&pl, 0x11, 2 * PAGE);
	pl_run(&pl, 9, 1, 7);
	refused(&pl, MIG_SECTION_VERSION, 16, "RAM run 1: kind 7");
	pl_free(&pl);

	/* A section of another version, however valid its runs look. */
	pl_run(&pl, 0, 1, MIG_RUN_DATA);
	pl_fill(&pl, 0x11, PAGE);
	refused(&pl, MIG_SECTION_VERSION + 1, 16, "RAM section version 2; this tern-vmm reads 1");
	refused(&pl, 0, 16, "RAM section version 0");
	pl_free(&pl);
}

/* ---- hello ---- */

/* The hello: u32 protocol, u32 page size, u64 RAM size, u32 flags. */
#define HELLO_LEN 20

static struct vmstate_section hello_flags(struct payload *pl, uint32_t protocol, uint32_t page_size,
					  uint64_t ram_size, uint32_t flags)
{
	pl_free(pl);
	pl_le(pl, protocol, 4);
	pl_le(pl, page_size, 4);
	pl_le(pl, ram_size, 8);
	if (HELLO_LEN == 20)
		pl_le(pl, flags, 4);
	return pl_section(pl, VMSTATE_TAG_MIG_HELLO, MIG_SECTION_VERSION);
}

static struct vmstate_section hello_payload(struct payload *pl, uint32_t protocol,
					    uint32_t page_size, uint64_t ram_size)
{
	return hello_flags(pl, protocol, page_size, ram_size, 0);
}

static void hello_refused(const struct vmstate_section *s, const char *want)
{
	struct mig_hello h;

	err[0] = 0;
	CHECK(mig_hello_get(s, &h, err, sizeof(err)) == -EINVAL);
	if (!strstr(err, want)) {
		printf("  error \"%s\" does not contain \"%s\"\n", err, want);
		CHECK(strstr(err, want));
	}
}

TEST(migration_hello)
{
	struct vmstate_writer w;
	struct written wr;
	struct mig_hello h = { 0 };
	struct payload pl = { 0 };

	int fd = writer_open(&w);
	REQUIRE(fd >= 0);
	mig_hello_put(&w, &(struct mig_hello){ .protocol = MIG_PROTOCOL_VERSION,
					       .page_size = MIG_PAGE,
					       .ram_size = 512ULL << 20 });
	REQUIRE(writer_parse(&w, fd, &wr));
	REQUIRE(wr.f.nsections == 1);
	CHECK(wr.f.sections[0].tag == VMSTATE_TAG_MIG_HELLO);
	CHECK(wr.f.sections[0].len == HELLO_LEN);
	CHECK(mig_hello_get(&wr.f.sections[0], &h, err, sizeof(err)) == 0);
	CHECK(h.protocol == MIG_PROTOCOL_VERSION && h.page_size == MIG_PAGE &&
	      h.ram_size == 512ULL << 20);
	written_free(&wr);

	/* The smallest RAM there is: one page. */
	struct vmstate_section s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, MIG_PAGE);
	CHECK(mig_hello_get(&s, &h, err, sizeof(err)) == 0 && h.ram_size == MIG_PAGE);

	s = hello_payload(&pl, 2, MIG_PAGE, 1 << 20);
	hello_refused(&s, "migration protocol version 2; this tern-vmm speaks version 1");
	/* The version is what a newer source needs to hear, even if the rest is laid out anew. */
	pl.len = 4;
	s.len = 4;
	hello_refused(&s, "migration protocol version 2");

	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, 8192, 1 << 20);
	hello_refused(&s, "page size 8192; this tern-vmm uses 4096");
	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 0);
	hello_refused(&s, "RAM size 0 is not a whole number of pages");
	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, (1 << 20) + 1);
	hello_refused(&s, "RAM size 1048577 is not a whole number of pages");
	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 2048);
	hello_refused(&s, "RAM size 2048");

	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20);
	s.tag = VMSTATE_TAG_MIG_RAM;
	hello_refused(&s, "the stream does not start with a hello (migration RAM)");
	s.tag = VMSTATE_TAG_MACHINE;
	hello_refused(&s, "does not start with a hello (machine)");
	s.tag = VMSTATE_TAG_MIG_HELLO;
	s.version = MIG_SECTION_VERSION + 1;
	hello_refused(&s, "a hello this tern-vmm does not read");

	/* Every length but the right one. */
	for (uint64_t len = 0; len < HELLO_LEN; len++) {
		s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20);
		s.len = len;
		hello_refused(&s, "a hello this tern-vmm does not read");
	}
	s = hello_payload(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20);
	pl_le(&pl, 0, 1);
	s = pl_section(&pl, VMSTATE_TAG_MIG_HELLO, MIG_SECTION_VERSION);
	hello_refused(&s, "a hello this tern-vmm does not read");

	s = hello_flags(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20, MIG_HELLO_COPY_STORAGE);
	CHECK(mig_hello_get(&s, &h, err, sizeof(err)) == 0 && h.flags == MIG_HELLO_COPY_STORAGE);
	/* A flag from a newer source changes what follows: refused, not ignored. */
	s = hello_flags(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20, 2);
	hello_refused(&s, "hello flags 0x2");
	s = hello_flags(&pl, MIG_PROTOCOL_VERSION, MIG_PAGE, 1 << 20, 0x80000001u);
	hello_refused(&s, "hello flags 0x80000001");
	pl_free(&pl);
}

/* ---- error message ---- */

#define UNREADABLE "(an unreadable error message)"

static void message(const void *text, uint32_t len, size_t payload_len, char *out, size_t n)
{
	struct payload pl = { 0 };

	pl_le(&pl, len, 4);
	pl_bytes(&pl, text, payload_len);
	struct vmstate_section s = pl_section(&pl, VMSTATE_TAG_MIG_ERROR, MIG_SECTION_VERSION);
	memset(out, 'Z', n);
	mig_message_get(&s, out, n);
	pl_free(&pl);
}

/* msg through mig_message_put, alone in a state file (a file holds one section per tag). */
static bool message_written(const char *msg, struct written *wr)
{
	struct vmstate_writer w;
	int fd = writer_open(&w);

	if (fd < 0)
		return false;
	mig_message_put(&w, msg);
	return writer_parse(&w, fd, wr) && wr->f.nsections == 1;
}

TEST(migration_message)
{
	static char big[MIG_MESSAGE_MAX + 2], out[2 * MIG_MESSAGE_MAX];
	struct written wr;

	/* The writer's round trip, and a message over the limit cut to MIG_MESSAGE_MAX. */
	memset(big, 'x', MIG_MESSAGE_MAX + 1);
	REQUIRE(message_written("disk 'root' cannot be opened here: No such file", &wr));
	CHECK(wr.f.sections[0].tag == VMSTATE_TAG_MIG_ERROR);
	mig_message_get(&wr.f.sections[0], out, sizeof(out));
	CHECK(strcmp(out, "disk 'root' cannot be opened here: No such file") == 0);
	/* A small buffer gets the start of it, terminated. */
	mig_message_get(&wr.f.sections[0], out, 5);
	CHECK(strcmp(out, "disk") == 0);
	written_free(&wr);
	REQUIRE(message_written(big, &wr));
	CHECK(wr.f.sections[0].len == 4 + MIG_MESSAGE_MAX);
	mig_message_get(&wr.f.sections[0], out, sizeof(out));
	CHECK(strlen(out) == MIG_MESSAGE_MAX && strspn(out, "x") == MIG_MESSAGE_MAX);
	written_free(&wr);
	REQUIRE(message_written("", &wr));
	CHECK(wr.f.sections[0].len == 4);
	mig_message_get(&wr.f.sections[0], out, sizeof(out));
	CHECK(strcmp(out, "") == 0);
	written_free(&wr);

	/* Control characters (terminal escapes, newlines that forge log lines) become '?'. */
	const char ctl[] = "a\tb\nc\x1b[31md\x7f\x01\r\xc3\xa9";
	message(ctl, sizeof(ctl) - 1, sizeof(ctl) - 1, out, sizeof(out));
	CHECK(strcmp(out, "a?b?c?[31md???\xc3\xa9") == 0);

	message(big, MIG_MESSAGE_MAX, MIG_MESSAGE_MAX, out, sizeof(out));
	CHECK(strlen(out) == MIG_MESSAGE_MAX);
	message(big, MIG_MESSAGE_MAX + 1, MIG_MESSAGE_MAX + 1, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);
	message(big, UINT32_MAX, MIG_MESSAGE_MAX + 1, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);

	/* Longer than the payload, shorter than it, and no length at all. */
	message("hello", 10, 5, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);
	message("hello", 4, 5, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);
	struct vmstate_section s = { .tag = VMSTATE_TAG_MIG_ERROR,
				     .payload = (const uint8_t *)"ab",
				     .len = 2 };
	mig_message_get(&s, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);

	/* A NUL inside would hide what follows it from the log. */
	message("ab\0cd", 5, 5, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);
	message("abcd\0", 5, 5, out, sizeof(out));
	CHECK(strcmp(out, UNREADABLE) == 0);
}

/* ---- report ---- */

TEST(migration_report)
{
	struct vmstate_writer w;
	struct written wr;
	struct mig_report in = { .downtime_us = 123456,
				 .total_ms = 1ULL << 40,
				 .bytes_sent = UINT64_MAX - 3,
				 .rounds = 0xdeadbeef },
			  out;

	int fd = writer_open(&w);
	REQUIRE(fd >= 0);
	mig_report_put(&w, &in);
	REQUIRE(writer_parse(&w, fd, &wr));
	REQUIRE(wr.f.nsections == 1);
	struct vmstate_section s = wr.f.sections[0];
	CHECK(s.tag == VMSTATE_TAG_MIG_REPORT && s.len == 28);
	memset(&out, 0, sizeof(out));
	CHECK(mig_report_get(&s, &out) == 0);
	CHECK(out.downtime_us == in.downtime_us && out.total_ms == in.total_ms &&
	      out.bytes_sent == in.bytes_sent && out.rounds == in.rounds);

	s.len = 27;
	CHECK(mig_report_get(&s, &out) == -EINVAL);
	s.len = 0;
	CHECK(mig_report_get(&s, &out) == -EINVAL);
	s = wr.f.sections[0];
	s.version = MIG_SECTION_VERSION + 1;
	CHECK(mig_report_get(&s, &out) == -EINVAL);
	written_free(&wr);
}

/* ---- the stream reader ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A stream header, with the CRC zlib gives (not vmstate_crc32, which is under test). */
static void raw_header(uint8_t h[VMSTATE_HEADER_SIZE], uint32_t version)
{
	memcpy(h, VMSTATE_MAGIC, 8);
	put_le(h + 8, version, 4);
	put_le(h + 12, VMSTATE_ARCH_X86_64, 4);
	put_le(h + 16, 0, 8);
	put_le(h + 24, crc32(0, h, 24), 4);
}

/* A whole section into out (which must hold 28 + len bytes); returns its size. */
static size_t raw_section(uint8_t *out, uint32_t tag, uint32_t instance, uint32_t version,
			  const void *payload, size_t len)
{
	put_le(out, tag, 4);
	put_le(out + 4, instance, 4);
	put_le(out + 8, version, 4);
	put_le(out + 12, 0, 4);
	put_le(out + 16, len, 8);
	if (len)
		memcpy(out + 24, payload, len);
	put_le(out + 24 + len, crc32(0, out, (unsigned int)(24 + len)), 4);
	return 28 + len;
}

static bool write_exact(int fd, const void *p, size_t len)
{
	return write(fd, p, len) == (ssize_t)len;
}

/* Reads one section; checks the tag, version and payload length. */
static bool next_section(int fd, struct vmstate_section *s, uint8_t **buf, size_t *cap,
			 uint32_t tag, uint64_t len)
{
	err[0] = 0;
	int r = vmstate_read_section(fd, s, buf, cap, VMSTATE_MAX_SECTION, 1000, err, sizeof(err));
	if (r)
		printf("  vmstate_read_section: %d %s\n", r, err);
	return r == 0 && s->tag == tag && s->version == (tag ? MIG_SECTION_VERSION : 0) &&
	       s->len == len && s->payload == *buf;
}

/*
 * Runs a stream test under a watchdog: a reader that lost its timeout or missed an EOF would
 * block the whole unit tier; SIGALRM's default action ends it instead, and the runner reports
 * the crash. A function, so that a REQUIRE's early return still disarms it.
 */
static void guarded(void (*fn)(void))
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old;

	sigaction(SIGALRM, &dfl, &old);
	alarm(30);
	fn();
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
}

/* The source's side of a short stream, then the destination reading it back. */
static void stream_roundtrip(int rfd, int wfd)
{
	static uint8_t data[2 * 4096];
	const uint64_t pages = 8;
	struct vmstate_writer w;
	struct vmstate_section s;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t done = 0;
	struct mig_hello h;
	struct mig_report rep;
	char msg[64];
	uint8_t *ram = ram_alloc(pages);
	REQUIRE(ram);

	pattern_pages(data, 2, 3);
	/* Well under a pipe's 64 KiB, so it all fits before anyone reads. */
	REQUIRE(vmstate_writer_init(&w, wfd) == 0);
	mig_hello_put(&w, &(struct mig_hello){ .protocol = MIG_PROTOCOL_VERSION,
					       .page_size = MIG_PAGE,
					       .ram_size = pages * MIG_PAGE });
	vmstate_begin(&w, VMSTATE_TAG_MIG_RAM, 0, MIG_SECTION_VERSION);
	mig_run_put(&w, 1, 2, MIG_RUN_DATA, data);
	mig_run_put(&w, 5, 3, MIG_RUN_ZERO, NULL);
	vmstate_end(&w);
	mig_signal_put(&w, VMSTATE_TAG_MIG_COMPLETE);
	mig_message_put(&w, "bye\n");
	mig_report_put(&w, &(struct mig_report){ 1, 2, 3, 4 });
	CHECK(vmstate_writer_finish(&w) == 0);

	CHECK(vmstate_read_header(rfd, 1000, err, sizeof(err)) == 0);
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_MIG_HELLO, HELLO_LEN));
	CHECK(mig_hello_get(&s, &h, err, sizeof(err)) == 0 && h.ram_size == pages * MIG_PAGE);
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_MIG_RAM, 2 * 13 + 2 * PAGE));
	CHECK(cap >= 2 * 13 + 2 * PAGE);
	CHECK(mig_ram_apply(&s, ram, false, pages, &done, err, sizeof(err)) == 0 && done == 5);
	CHECK(all_bytes(ram, PAGE, OLD) && memcmp(ram + PAGE, data, sizeof(data)) == 0 &&
	      all_bytes(ram + 3 * PAGE, 2 * PAGE, OLD) && all_bytes(ram + 5 * PAGE, 3 * PAGE, 0));
	/* An empty section after a big one: the buffer stays, nothing is read into it. */
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_MIG_COMPLETE, 0));
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_MIG_ERROR, 8));
	mig_message_get(&s, msg, sizeof(msg));
	CHECK(strcmp(msg, "bye?") == 0);
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_MIG_REPORT, 28));
	CHECK(mig_report_get(&s, &rep) == 0 && rep.downtime_us == 1 && rep.total_ms == 2 &&
	      rep.bytes_sent == 3 && rep.rounds == 4);
	CHECK(next_section(rfd, &s, &buf, &cap, VMSTATE_TAG_END, 0));

	/* The source hangs up after its end marker. */
	close(wfd);
	CHECK(vmstate_read_section(rfd, &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EPIPE);
	CHECK(strstr(err, "closed"));
	free(buf);
	free(ram);
}

static void stream_roundtrip_pipe(void)
{
	int p[2];

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	stream_roundtrip(p[0], p[1]);
	close(p[0]);
}

TEST(migration_stream_roundtrip_pipe)
{
	guarded(stream_roundtrip_pipe);
}

static void stream_roundtrip_nonblocking_socket(void)
{
	int sv[2];

	/* What tern-vmm may be handed: a non-blocking socket, where a read can say EAGAIN. */
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	stream_roundtrip(sv[0], sv[1]);
	close(sv[0]);
}

TEST(migration_stream_roundtrip_nonblocking_socket)
{
	guarded(stream_roundtrip_nonblocking_socket);
}

static void stream_crc(void)
{
	uint8_t hdr[VMSTATE_HEADER_SIZE], sec[28 + 16], *buf = NULL;
	uint8_t payload[16] = "0123456789abcdef";
	struct vmstate_section s;
	size_t cap = 0;
	int p[2];

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	raw_header(hdr, VMSTATE_VERSION);
	size_t n = raw_section(sec, VMSTATE_TAG_MIG_HELLO, 0, 1, payload, sizeof(payload));
	/* The intact section reads; then a flipped payload byte, then a flipped CRC byte. */
	REQUIRE(write_exact(p[1], hdr, sizeof(hdr)) && write_exact(p[1], sec, n));
	sec[24 + 5] ^= 0x10;
	REQUIRE(write_exact(p[1], sec, n));
	sec[24 + 5] ^= 0x10;
	sec[n - 1] ^= 0x80;
	REQUIRE(write_exact(p[1], sec, n));

	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == 0);
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == 0);
	CHECK(s.len == 16 && memcmp(s.payload, payload, 16) == 0);
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "CRC mismatch in migration hello 0"));
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "CRC mismatch"));

	/* A non-zero reserved field is refused like in a file. */
	n = raw_section(sec, VMSTATE_TAG_MIG_HELLO, 0, 1, payload, sizeof(payload));
	put_le(sec + 12, 1, 4);
	REQUIRE(write_exact(p[1], sec, n));
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "migration hello 0: reserved field is 0x1, not 0"));
	free(buf);
	close(p[0]);
	close(p[1]);
}

TEST(migration_stream_crc)
{
	guarded(stream_crc);
}

static void stream_oversized_refused_unread(void)
{
	uint8_t sec[24], rest[8] = "AFTERHDR", got[sizeof(rest)];
	struct vmstate_section s;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int p[2];

	/* Non-blocking, so that a reader that took the bytes after the header makes the check
	 * below fail instead of hanging. */
	REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	/* Only the header: a reader that tried to read 5000 bytes would time out instead. */
	put_le(sec, VMSTATE_TAG_MIG_RAM, 4);
	put_le(sec + 4, 0, 4);
	put_le(sec + 8, 1, 4);
	put_le(sec + 12, 0, 4);
	put_le(sec + 16, 5000, 8);
	REQUIRE(write_exact(p[1], sec, sizeof(sec)) && write_exact(p[1], rest, sizeof(rest)));
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "migration RAM 0: payload of 5000 bytes, above the limit of 4096"));
	/* Nothing allocated for it, and nothing read past its header. */
	CHECK(buf == NULL && cap == 0);
	CHECK(read(p[0], got, sizeof(got)) == (ssize_t)sizeof(got) &&
	      memcmp(got, rest, sizeof(rest)) == 0);

	/* A limit above VMSTATE_MAX_SECTION is held to it; a length near 2^64 cannot wrap. */
	put_le(sec + 16, VMSTATE_MAX_SECTION + 1, 8);
	REQUIRE(write_exact(p[1], sec, sizeof(sec)));
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, UINT64_MAX, 1000, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "above the limit of 67108864"));
	put_le(sec + 16, UINT64_MAX, 8);
	REQUIRE(write_exact(p[1], sec, sizeof(sec)));
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, UINT64_MAX, 1000, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(buf == NULL && cap == 0);
	close(p[0]);
	close(p[1]);
}

TEST(migration_stream_oversized_refused_unread)
{
	guarded(stream_oversized_refused_unread);
}

/* Writes the first len bytes of a 100-byte-payload section, then closes: -EPIPE. */
static void closed_after(size_t len)
{
	uint8_t sec[128], payload[100], *buf = NULL;
	struct vmstate_section s;
	size_t cap = 0;
	int p[2];

	memset(payload, 0x42, sizeof(payload));
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	raw_section(sec, VMSTATE_TAG_MIG_DEVICES, 0, 1, payload, sizeof(payload));
	REQUIRE(write_exact(p[1], sec, len));
	close(p[1]);
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 1000, err, sizeof(err)) == -EPIPE);
	if (!strstr(err, "the peer closed the stream")) {
		printf("  after %zu bytes: \"%s\"\n", len, err);
		CHECK(strstr(err, "the peer closed the stream"));
	}
	free(buf);
	close(p[0]);
}

static void stream_peer_closed(void)
{
	int p[2];

	closed_after(0);
	closed_after(10);				/* mid-header */
	closed_after(24);				/* header, no payload */
	closed_after(24 + 40);				/* mid-payload */
	closed_after(24 + 100);				/* payload, no CRC */
	closed_after(24 + 100 + 3);			/* CRC cut short */
	CHECK(strstr(err, "migration device state 0")); /* names the section it was in */

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	REQUIRE(write_exact(p[1], "TERNSTAT", 8));
	close(p[1]);
	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == -EPIPE);
	CHECK(strstr(err, "closed") && strstr(err, "header"));
	close(p[0]);
}

TEST(migration_stream_peer_closed)
{
	guarded(stream_peer_closed);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stream_timeout(void)
{
	uint8_t sec[28 + 16], payload[16] = { 0 }, *buf = NULL;
	struct vmstate_section s;
	size_t cap = 0;
	int p[2];

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	long long t0 = now_ms();
	err[0] = 0;
	CHECK(vmstate_read_header(p[0], 50, err, sizeof(err)) == -ETIMEDOUT);
	long long waited = now_ms() - t0;
	CHECK(waited >= 40 && waited < 5000);
	CHECK(strstr(err, "the peer sent nothing in time (header)"));

	/* Half a section, then silence. */
	raw_section(sec, VMSTATE_TAG_MIG_HELLO, 0, 1, payload, sizeof(payload));
	REQUIRE(write_exact(p[1], sec, 30));
	t0 = now_ms();
	err[0] = 0;
	CHECK(vmstate_read_section(p[0], &s, &buf, &cap, 4096, 50, err, sizeof(err)) == -ETIMEDOUT);
	waited = now_ms() - t0;
	CHECK(waited >= 40 && waited < 5000);
	CHECK(strstr(err, "the peer sent nothing in time (migration hello 0)"));
	free(buf);
	close(p[0]);
	close(p[1]);
}

TEST(migration_stream_timeout)
{
	guarded(stream_timeout);
}

static void stream_header_refused(void)
{
	uint8_t hdr[VMSTATE_HEADER_SIZE];
	int p[2];

	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	raw_header(hdr, 2);
	REQUIRE(write_exact(p[1], hdr, sizeof(hdr)));
	err[0] = 0;
	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "format version 2; this tern-vmm reads version 1"));

	raw_header(hdr, VMSTATE_VERSION);
	hdr[0] = 'X';
	REQUIRE(write_exact(p[1], hdr, sizeof(hdr)));
	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "no TERNSTAT magic"));

	raw_header(hdr, VMSTATE_VERSION);
	hdr[20] = 1; /* flags, with the CRC left as it was */
	REQUIRE(write_exact(p[1], hdr, sizeof(hdr)));
	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "header CRC mismatch"));

	raw_header(hdr, VMSTATE_VERSION);
	REQUIRE(write_exact(p[1], hdr, sizeof(hdr)));
	CHECK(vmstate_read_header(p[0], 1000, err, sizeof(err)) == 0);
	close(p[0]);
	close(p[1]);
}

TEST(migration_stream_header_refused)
{
	guarded(stream_header_refused);
}

/* ---- URIs ---- */

static void uri_refused(const char *uri, const char *want)
{
	struct mig_uri u;
	char e[1024] = ""; /* the error quotes the URI, which may be long, before the reason */

	CHECK(mig_uri_parse(uri, &u, e, sizeof(e)) == -EINVAL);
	if (!strstr(e, want)) {
		printf("  %s: error \"%s\" does not contain \"%s\"\n", uri, e, want);
		CHECK(strstr(e, want));
	}
}

TEST(migration_uri_parse)
{
	struct mig_uri u;
	char uri[300];

	CHECK(mig_uri_parse("tcp:127.0.0.1:4444", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == MIG_TCP && strcmp(u.host, "127.0.0.1") == 0 &&
	      strcmp(u.port, "4444") == 0 && u.fd == -1);
	CHECK(mig_uri_parse("tcp:[::1]:4444", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == MIG_TCP && strcmp(u.host, "::1") == 0 && strcmp(u.port, "4444") == 0);
	CHECK(mig_uri_parse("tcp:dest.example:65535", &u, err, sizeof(err)) == 0);
	CHECK(strcmp(u.host, "dest.example") == 0 && strcmp(u.port, "65535") == 0);
	CHECK(mig_uri_parse("tcp:host:1", &u, err, sizeof(err)) == 0 && strcmp(u.port, "1") == 0);

	uri_refused("tcp:host:0", "tcp:HOST:PORT with a port of 1 to 65535");
	uri_refused("tcp:host:65536", "a port of 1 to 65535");
	uri_refused("tcp:host:99999999999999999999999", "a port of 1 to 65535");
	uri_refused("tcp:nohostport", "'tcp:nohostport': tcp:HOST:PORT");
	uri_refused("tcp:host:", "a port of 1 to 65535");
	uri_refused("tcp:host:+80", "a port of 1 to 65535");
	uri_refused("tcp:host:80x", "a port of 1 to 65535");
	uri_refused("tcp:[::1]", "a port of 1 to 65535");

	/* A host name fills host[] to its last byte, and not one more. */
	memcpy(uri, "tcp:", 4);
	memset(uri + 4, 'h', 255);
	strcpy(uri + 4 + 255, ":80");
	CHECK(mig_uri_parse(uri, &u, err, sizeof(err)) == 0 && strlen(u.host) == 255);
	memset(uri + 4, 'h', 256);
	strcpy(uri + 4 + 256, ":80");
	uri_refused(uri, "the host name is too long");

	CHECK(mig_uri_parse("unix:/run/tern/mig.sock", &u, err, sizeof(err)) == 0);
	CHECK(u.kind == MIG_UNIX && strcmp(u.path, "/run/tern/mig.sock") == 0 && u.fd == -1);
	uri_refused("unix:", "'unix:': a unix: path of 1 to 107 bytes is needed");
	/* sun_path holds 107 bytes and the NUL. */
	memcpy(uri, "unix:/", 6);
	memset(uri + 6, 'p', 106);
	uri[6 + 106] = 0;
	CHECK(mig_uri_parse(uri, &u, err, sizeof(err)) == 0 && strlen(u.path) == 107);
	strcpy(uri + 6 + 106, "p");
	uri_refused(uri, "a unix: path of 1 to 107 bytes is needed");

	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	snprintf(uri, sizeof(uri), "fd:%d", fd);
	CHECK(mig_uri_parse(uri, &u, err, sizeof(err)) == 0);
	CHECK(u.kind == MIG_FD && u.fd == fd);
	close(fd);
	/* The same number, now closed. */
	uri_refused(uri, "fd: takes an open file descriptor");
	uri_refused("fd:", "fd: takes an open file descriptor");
	uri_refused("fd:-1", "fd: takes an open file descriptor");
	uri_refused("fd:3x", "fd: takes an open file descriptor");
	uri_refused("fd:65536", "fd: takes an open file descriptor");

	uri_refused("ftp:x", "'ftp:x': the stream's address is one of tcp:HOST:PORT, unix:PATH or "
			     "fd:N");
	uri_refused("", "tcp:HOST:PORT, unix:PATH or fd:N");
	uri_refused("TCP:host:80", "tcp:HOST:PORT, unix:PATH or fd:N");
	uri_refused("/tmp/sock", "tcp:HOST:PORT, unix:PATH or fd:N");
}

/* ---- copy_storage: a DISK section's runs against the destination's copy ---- */

static void disk_run(struct payload *pl, uint64_t off, uint32_t len, uint8_t kind)
{
	pl_le(pl, off, 8);
	pl_le(pl, len, 4);
	pl_le(pl, kind, 1);
}

static uint64_t file_bytes_differing(int fd, uint8_t byte, uint64_t off, uint64_t len)
{
	uint8_t b[512];
	uint64_t bad = 0;

	for (uint64_t o = off; o < off + len; o += sizeof(b)) {
		if (pread(fd, b, sizeof(b), (off_t)o) != (ssize_t)sizeof(b))
			return UINT64_MAX;
		for (size_t i = 0; i < sizeof(b); i++)
			bad += b[i] != byte;
	}
	return bad;
}

TEST(migration_disk_apply)
{
	int fd = memfd_create("disk-copy", MFD_CLOEXEC);
	struct payload pl = { 0 };
	struct mig_disk_target t[2] = { { -1, 0 }, { fd, 64 * 1024 } };
	uint64_t bytes = 0;
	struct vmstate_section s;

	CHECK(fd >= 0 && ftruncate(fd, 64 * 1024) == 0);
	/* disk 1: 4 KiB of 0xab at 8 KiB, then a zero run over what was written before */
	pl_le(&pl, 1, 4);
	disk_run(&pl, 8192, 4096, MIG_RUN_DATA);
	pl_fill(&pl, 0xab, 4096);
	s = pl_section(&pl, VMSTATE_TAG_MIG_DISK, MIG_SECTION_VERSION);
	CHECK(mig_disk_apply(&s, t, 2, &bytes, err, sizeof(err)) == 0 && bytes == 4096);
	CHECK(file_bytes_differing(fd, 0xab, 8192, 4096) == 0);
	pl_free(&pl);
	pl_le(&pl, 1, 4);
	disk_run(&pl, 8192, 1024, MIG_RUN_ZERO);
	s = pl_section(&pl, VMSTATE_TAG_MIG_DISK, MIG_SECTION_VERSION);
	CHECK(mig_disk_apply(&s, t, 2, &bytes, err, sizeof(err)) == 0 && bytes == 5120);
	CHECK(file_bytes_differing(fd, 0, 8192, 1024) == 0);
	CHECK(file_bytes_differing(fd, 0xab, 9216, 3072) == 0);

	/* refusals: nothing written, the reason named */
	struct {
		uint32_t disk;
		uint64_t off;
		uint32_t len;
		uint8_t kind;
		size_t data;
		const char *words;
	} bad[] = {
		{ 0, 0, 512, MIG_RUN_DATA, 512, "not copied" },		  /* disk without a copy */
		{ 2, 0, 512, MIG_RUN_DATA, 512, "not copied" },		  /* index past the list */
		{ 1, 65024, 1024, MIG_RUN_DATA, 1024, "outside" },	  /* past the end */
		{ 1, UINT64_MAX - 511, 512, MIG_RUN_ZERO, 0, "outside" }, /* overflow */
		{ 1, 100, 512, MIG_RUN_DATA, 512, "whole sectors" },	  /* unaligned */
		{ 1, 0, 0, MIG_RUN_ZERO, 0, "outside" },		  /* empty */
		{ 1, 0, 512, 7, 0, "kind 7" },				  /* unknown kind */
		{ 1, 0, 4096, MIG_RUN_DATA, 100, "bytes of data" },	  /* data short */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pl_free(&pl);
		pl_le(&pl, bad[i].disk, 4);
		/* a valid run first: it must not be written either */
		disk_run(&pl, 0, 512, MIG_RUN_DATA);
		pl_fill(&pl, 0x11, 512);
		disk_run(&pl, bad[i].off, bad[i].len, bad[i].kind);
		pl_fill(&pl, 0x22, bad[i].data);
		s = pl_section(&pl, VMSTATE_TAG_MIG_DISK, MIG_SECTION_VERSION);
		bytes = 0;
		err[0] = 0;
		CHECK(mig_disk_apply(&s, t, 2, &bytes, err, sizeof(err)) < 0);
		CHECK(strstr(err, bad[i].words) != NULL);
		CHECK(bytes == 0 && file_bytes_differing(fd, 0, 0, 512) == 0);
	}
	pl_free(&pl);
	close(fd);
}
