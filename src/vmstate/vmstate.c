/*
 * The state format (layout in vmstate.h): a writer that streams sections to an fd, a parser
 * that checks a whole file before anyone restores from it, and bounds-checked cursors over
 * the payloads. Every integer is encoded byte by byte, little-endian, so the file does not
 * depend on the host's byte order or struct layout.
 */
#include "vmstate/vmstate.h"
#include "core/le.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC_LEN 8

_Static_assert(sizeof(VMSTATE_MAGIC) - 1 == MAGIC_LEN, "the magic is 8 bytes");
_Static_assert(VMSTATE_MAX_SECTION <= SIZE_MAX / 2, "a section's buffer can double");

uint32_t vmstate_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	/*
	 * zlib takes an unsigned int length, so longer buffers go in pieces. An empty buffer
	 * never reaches zlib: crc32(crc, NULL, 0) would return 0, not crc.
	 */
	while (len) {
		unsigned int n = len > (1u << 30) ? 1u << 30 : (unsigned int)len;

		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

const char *vmstate_tag_name(uint32_t tag)
{
	switch (tag) {
	case VMSTATE_TAG_END:
		return "end";
	case VMSTATE_TAG_MACHINE:
		return "machine";
	case VMSTATE_TAG_MEMORY:
		return "memory";
	case VMSTATE_TAG_VCPU:
		return "vcpu";
	case VMSTATE_TAG_IRQCHIP:
		return "irqchip";
	case VMSTATE_TAG_PIT:
		return "pit";
	case VMSTATE_TAG_CLOCK:
		return "clock";
	case VMSTATE_TAG_SERIAL:
		return "serial";
	case VMSTATE_TAG_I8042:
		return "i8042";
	case VMSTATE_TAG_RTC:
		return "rtc";
	case VMSTATE_TAG_PCI:
		return "pci";
	case VMSTATE_TAG_GED:
		return "ged";
	case VMSTATE_TAG_VIRTIO:
		return "virtio";
	case VMSTATE_TAG_VIRTIO_BLK:
		return "virtio-blk";
	case VMSTATE_TAG_VIRTIO_NET:
		return "virtio-net";
	case VMSTATE_TAG_VIRTIO_VSOCK:
		return "virtio-vsock";
	case VMSTATE_TAG_VIRTIO_RNG:
		return "virtio-rng";
	case VMSTATE_TAG_MIG_HELLO:
		return "migration hello";
	case VMSTATE_TAG_MIG_RAM:
		return "migration RAM";
	case VMSTATE_TAG_MIG_DEVICES:
		return "migration device state";
	case VMSTATE_TAG_MIG_COMPLETE:
		return "migration complete";
	case VMSTATE_TAG_MIG_READY:
		return "migration ready";
	case VMSTATE_TAG_MIG_ERROR:
		return "migration error";
	case VMSTATE_TAG_MIG_PREPARED:
		return "migration prepared";
	case VMSTATE_TAG_MIG_RESUMED:
		return "migration resumed";
	case VMSTATE_TAG_MIG_REPORT:
		return "migration report";
	case VMSTATE_TAG_MIG_DISKS:
		return "migration disk list";
	case VMSTATE_TAG_MIG_DISK:
		return "migration disk data";
	case VMSTATE_TAG_MIG_POSTCOPY:
		return "migration post-copy";
	case VMSTATE_TAG_MIG_PAGE_REQ:
		return "migration page request";
	}
	return "unknown";
}

/* ---- writing ---- */

static void set_err(struct vmstate_writer *w, int err)
{
	if (!w->err)
		w->err = err;
}

/*
 * Blocks until fd takes more bytes. The migration stream may hand us a non-blocking
 * socket; spinning on EAGAIN would burn a CPU while the peer catches up.
 */
static void wait_writable(struct vmstate_writer *w)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLOUT };
	int r;

	while ((r = poll(&pfd, 1, w->timeout_ms > 0 ? w->timeout_ms : -1)) < 0) {
		if (errno != EINTR) {
			set_err(w, -errno);
			return;
		}
	}
	if (r == 0)
		set_err(w, -ETIMEDOUT);
	/* POLLERR/POLLHUP: the next write reports the real error (EPIPE, ...). */
}

/* Writes all of iov[0..n) (which it consumes), whatever the fd hands back in pieces. */
static void write_all(struct vmstate_writer *w, struct iovec *iov, int n)
{
	for (;;) {
		while (n > 0 && iov->iov_len == 0) {
			iov++;
			n--;
		}
		if (n == 0 || w->err)
			return;
		ssize_t r = writev(w->fd, iov, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				wait_writable(w);
				continue;
			}
			set_err(w, -errno);
			return;
		}
		if (r == 0) {
			/* Nothing taken and no error: retrying could loop forever. */
			set_err(w, -EIO);
			return;
		}
		w->written += (uint64_t)r;
		size_t done = (size_t)r;
		while (done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
			if (n == 0)
				return;
		}
		iov->iov_base = (uint8_t *)iov->iov_base + done;
		iov->iov_len -= done;
	}
}

static void write_section(struct vmstate_writer *w, uint32_t tag, uint32_t instance,
			  uint32_t version, const uint8_t *payload, size_t len)
{
	uint8_t hdr[VMSTATE_SECTION_HEADER_SIZE], tail[VMSTATE_SECTION_CRC_SIZE];

	le_put32(hdr, tag);
	le_put32(hdr + 4, instance);
	le_put32(hdr + 8, version);
	le_put32(hdr + 12, 0);
	le_put64(hdr + 16, len);
	uint32_t crc = vmstate_crc32(0, hdr, sizeof(hdr));
	le_put32(tail, vmstate_crc32(crc, payload, len));

	struct iovec iov[3] = {
		{ hdr, sizeof(hdr) },
		{ (void *)payload, len },
		{ tail, sizeof(tail) },
	};
	write_all(w, iov, 3);
}

int vmstate_writer_init(struct vmstate_writer *w, int fd)
{
	uint8_t hdr[VMSTATE_HEADER_SIZE];

	*w = (struct vmstate_writer){ .fd = fd };
	memcpy(hdr, VMSTATE_MAGIC, MAGIC_LEN);
	le_put32(hdr + 8, VMSTATE_VERSION);
	le_put32(hdr + 12, VMSTATE_ARCH_X86_64);
	le_put64(hdr + 16, 0);
	le_put32(hdr + 24, vmstate_crc32(0, hdr, 24));

	struct iovec iov = { hdr, sizeof(hdr) };
	write_all(w, &iov, 1);
	return w->err;
}

void vmstate_begin(struct vmstate_writer *w, uint32_t tag, uint32_t instance, uint32_t version)
{
	if (w->err)
		return;
	/* An END section in the middle would make the reader refuse everything after it. */
	if (w->in_section || tag == VMSTATE_TAG_END) {
		set_err(w, -EINVAL);
		return;
	}
	w->in_section = true;
	w->tag = tag;
	w->instance = instance;
	w->version = version;
	w->len = 0;
}

void vmstate_put(struct vmstate_writer *w, const void *data, size_t len)
{
	if (w->err)
		return;
	if (!w->in_section) {
		set_err(w, -EINVAL);
		return;
	}
	/* Checked before growing, so a runaway payload fails without a huge allocation. */
	if (len > VMSTATE_MAX_SECTION - w->len) {
		set_err(w, -EFBIG);
		return;
	}
	size_t need = w->len + len;
	if (need > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > VMSTATE_MAX_SECTION)
			cap = VMSTATE_MAX_SECTION;
		uint8_t *buf = realloc(w->buf, cap);
		if (!buf) {
			set_err(w, -ENOMEM);
			return;
		}
		w->buf = buf;
		w->cap = cap;
	}
	if (len)
		memcpy(w->buf + w->len, data, len);
	w->len = need;
}

void vmstate_put_u8(struct vmstate_writer *w, uint8_t v)
{
	vmstate_put(w, &v, 1);
}

void vmstate_put_u16(struct vmstate_writer *w, uint16_t v)
{
	uint8_t b[2];

	le_put16(b, v);
	vmstate_put(w, b, sizeof(b));
}

void vmstate_put_u32(struct vmstate_writer *w, uint32_t v)
{
	uint8_t b[4];

	le_put32(b, v);
	vmstate_put(w, b, sizeof(b));
}

void vmstate_put_u64(struct vmstate_writer *w, uint64_t v)
{
	uint8_t b[8];

	le_put64(b, v);
	vmstate_put(w, b, sizeof(b));
}

void vmstate_put_bool(struct vmstate_writer *w, bool v)
{
	vmstate_put_u8(w, v ? 1 : 0);
}

void vmstate_end(struct vmstate_writer *w)
{
	if (w->err)
		return;
	if (!w->in_section) {
		set_err(w, -EINVAL);
		return;
	}
	write_section(w, w->tag, w->instance, w->version, w->buf, w->len);
	w->in_section = false;
	w->len = 0;
}

int vmstate_writer_finish(struct vmstate_writer *w)
{
	/* A section left open means a device's save stopped half-way: not a valid state. */
	if (!w->err && w->in_section)
		set_err(w, -EINVAL);
	if (!w->err)
		write_section(w, VMSTATE_TAG_END, 0, 0, NULL, 0);
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
	w->in_section = false;
	return w->err;
}

/* ---- reading ---- */

/* "vcpu 1", "end marker" or, for a tag this build does not know, "tag 77 instance 1". */
static const char *label(char *buf, size_t len, uint32_t tag, uint32_t instance)
{
	const char *name = vmstate_tag_name(tag);

	if (tag == VMSTATE_TAG_END && instance == 0)
		snprintf(buf, len, "end marker");
	else if (strcmp(name, "unknown") == 0)
		snprintf(buf, len, "tag %u instance %u", tag, instance);
	else
		snprintf(buf, len, "%s %u", name, instance);
	return buf;
}

static int parse_header(struct vmstate_file *f, const uint8_t *buf, size_t len, char *err,
			size_t errlen)
{
	if (len < VMSTATE_HEADER_SIZE)
		return fail_msg(err, errlen, -EINVAL,
				"not a tern state file: %zu bytes, the header alone needs %d", len,
				VMSTATE_HEADER_SIZE);
	if (memcmp(buf, VMSTATE_MAGIC, MAGIC_LEN) != 0)
		return fail_msg(err, errlen, -EINVAL, "not a tern state file (no %s magic)",
				VMSTATE_MAGIC);
	/*
	 * The version comes before the CRC: another version may lay out the rest of its header
	 * differently, and "format version 2" is what its user needs to hear, not "bad CRC".
	 */
	f->version = le_get32(buf + 8);
	if (f->version != VMSTATE_VERSION)
		return fail_msg(err, errlen, -EINVAL,
				"format version %u; this tern-vmm reads version %d", f->version,
				VMSTATE_VERSION);
	if (le_get32(buf + 24) != vmstate_crc32(0, buf, 24))
		return fail_msg(err, errlen, -EINVAL, "header CRC mismatch: the file is corrupted");
	f->arch = le_get32(buf + 12);
	if (f->arch != VMSTATE_ARCH_X86_64)
		return fail_msg(err, errlen, -EINVAL,
				"architecture %u; this tern-vmm restores x86-64 (%d)", f->arch,
				VMSTATE_ARCH_X86_64);
	uint64_t flags = le_get64(buf + 16);
	if (flags)
		return fail_msg(err, errlen, -EINVAL,
				"header flags 0x%llx: this tern-vmm knows none",
				(unsigned long long)flags);
	return 0;
}

/* Orders sections by (tag, instance), then by position, to find duplicates in n log n. */
static int cmp_key(const void *a, const void *b)
{
	const struct vmstate_section *x = *(const struct vmstate_section *const *)a;
	const struct vmstate_section *y = *(const struct vmstate_section *const *)b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	if (x->instance != y->instance)
		return x->instance < y->instance ? -1 : 1;
	return x->payload < y->payload ? -1 : x->payload > y->payload;
}

static int check_duplicates(const struct vmstate_file *f, char *err, size_t errlen)
{
	unsigned int n = f->nsections;

	if (n < 2)
		return 0;
	const struct vmstate_section **v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		v[i] = &f->sections[i];
	qsort(v, n, sizeof(*v), cmp_key);

	/*
	 * Within a run of equal keys the first is the original and the second its earliest
	 * repeat; of all runs, name the repeat that comes first in the file.
	 */
	const struct vmstate_section *first = NULL, *later = NULL;
	unsigned int start = 0;
	for (unsigned int i = 1; i < n; i++) {
		if (v[i]->tag != v[i - 1]->tag || v[i]->instance != v[i - 1]->instance) {
			start = i;
			continue;
		}
		if (i == start + 1 && (!later || v[i] < later)) {
			first = v[start];
			later = v[i];
		}
	}
	free(v);
	if (!later)
		return 0;
	char name[64];
	return fail_msg(err, errlen, -EINVAL,
			"duplicate section %td (%s): section %td has the same tag and instance",
			later - f->sections, label(name, sizeof(name), later->tag, later->instance),
			first - f->sections);
}

/*
 * The end marker is exact (instance, version and length 0), so that any file this reader
 * accepts is byte for byte what the writer makes of its sections, and it is the last thing.
 */
static int check_end(uint32_t instance, uint32_t version, uint64_t plen, size_t trailing, char *err,
		     size_t errlen)
{
	if (plen || instance || version)
		return fail_msg(
			err, errlen, -EINVAL,
			"end marker: instance %u, version %u, %llu payload bytes; all must be 0",
			instance, version, (unsigned long long)plen);
	if (trailing)
		return fail_msg(err, errlen, -EINVAL,
				"trailing data: %zu byte%s after the end marker", trailing,
				trailing == 1 ? "" : "s");
	return 0;
}

static int parse_sections(struct vmstate_file *f, const uint8_t *buf, size_t len, char *err,
			  size_t errlen)
{
	size_t off = VMSTATE_HEADER_SIZE;
	unsigned int cap = 0;
	char name[64];

	for (unsigned int i = 0;; i++) {
		size_t left = len - off;

		if (left == 0)
			return fail_msg(err, errlen, -EINVAL,
					"no end marker: the file is truncated");
		if (left < VMSTATE_SECTION_HEADER_SIZE)
			return fail_msg(
				err, errlen, -EINVAL,
				"truncated: section %u needs a %d-byte header, %zu bytes left", i,
				VMSTATE_SECTION_HEADER_SIZE, left);
		const uint8_t *h = buf + off;
		uint32_t tag = le_get32(h), instance = le_get32(h + 4), version = le_get32(h + 8);
		uint64_t plen = le_get64(h + 16);
		label(name, sizeof(name), tag, instance);
		left -= VMSTATE_SECTION_HEADER_SIZE;

		if (le_get32(h + 12) != 0)
			return fail_msg(err, errlen, -EINVAL,
					"section %u (%s): reserved field is 0x%x, not 0", i, name,
					le_get32(h + 12));
		if (plen > VMSTATE_MAX_SECTION)
			return fail_msg(
				err, errlen, -EINVAL,
				"section %u (%s): payload of %llu bytes, above the limit of %llu",
				i, name, (unsigned long long)plen, VMSTATE_MAX_SECTION);
		/* plen is at most 64 MiB here, so adding the CRC's 4 bytes cannot overflow. */
		if (plen + VMSTATE_SECTION_CRC_SIZE > left)
			return fail_msg(err, errlen, -EINVAL,
					"truncated: section %u (%s) needs %llu bytes, %zu left", i,
					name, (unsigned long long)plen + VMSTATE_SECTION_CRC_SIZE,
					left);
		const uint8_t *payload = h + VMSTATE_SECTION_HEADER_SIZE;
		uint32_t crc = vmstate_crc32(0, h, VMSTATE_SECTION_HEADER_SIZE + (size_t)plen);
		if (le_get32(payload + plen) != crc)
			return fail_msg(err, errlen, -EINVAL, "CRC mismatch in section %u (%s)", i,
					name);
		off += VMSTATE_SECTION_HEADER_SIZE + (size_t)plen + VMSTATE_SECTION_CRC_SIZE;

		if (tag == VMSTATE_TAG_END) {
			int r = check_end(instance, version, plen, len - off, err, errlen);
			return r ? r : check_duplicates(f, err, errlen);
		}
		if (i >= VMSTATE_MAX_SECTIONS)
			return fail_msg(err, errlen, -EINVAL,
					"more than %d sections (section %u is %s)",
					VMSTATE_MAX_SECTIONS, i, name);
		if (i == cap) {
			unsigned int ncap = cap ? cap * 2 : 16;
			if (ncap > VMSTATE_MAX_SECTIONS)
				ncap = VMSTATE_MAX_SECTIONS;
			struct vmstate_section *s = realloc(f->sections, ncap * sizeof(*s));
			if (!s)
				return -ENOMEM;
			f->sections = s;
			cap = ncap;
		}
		f->sections[i] = (struct vmstate_section){
			.tag = tag,
			.instance = instance,
			.version = version,
			.payload = payload,
			.len = plen,
		};
		f->nsections = i + 1;
	}
}

int vmstate_file_parse(struct vmstate_file *f, const uint8_t *buf, size_t len, char *err,
		       size_t errlen)
{
	*f = (struct vmstate_file){ 0 };
	int r = parse_header(f, buf, len, err, errlen);
	if (r == 0)
		r = parse_sections(f, buf, len, err, errlen);
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	if (r)
		vmstate_file_free(f);
	return r;
}

void vmstate_file_free(struct vmstate_file *f)
{
	free(f->sections);
	*f = (struct vmstate_file){ 0 };
}

const struct vmstate_section *vmstate_find(const struct vmstate_file *f, uint32_t tag,
					   uint32_t instance)
{
	for (unsigned int i = 0; i < f->nsections; i++) {
		if (f->sections[i].tag == tag && f->sections[i].instance == instance)
			return &f->sections[i];
	}
	return NULL;
}

/* ---- cursors ---- */

void vmstate_cursor_init(struct vmstate_cursor *c, const struct vmstate_section *s)
{
	/* A missing section reads like an empty one that was read past: zeros and an error. */
	if (!s) {
		*c = (struct vmstate_cursor){ .error = true };
		return;
	}
	*c = (struct vmstate_cursor){ .p = s->payload, .len = s->len };
}

void vmstate_get(struct vmstate_cursor *c, void *out, size_t len)
{
	/* Once wrong, always wrong: a restore checks once, at the end, with cursor_done. */
	if (c->error || c->off > c->len || len > c->len - c->off) {
		c->error = true;
		if (len)
			memset(out, 0, len);
		return;
	}
	if (len)
		memcpy(out, c->p + c->off, len);
	c->off += len;
}

uint8_t vmstate_get_u8(struct vmstate_cursor *c)
{
	uint8_t b;

	vmstate_get(c, &b, 1);
	return b;
}

uint16_t vmstate_get_u16(struct vmstate_cursor *c)
{
	uint8_t b[2];

	vmstate_get(c, b, sizeof(b));
	return le_get16(b);
}

uint32_t vmstate_get_u32(struct vmstate_cursor *c)
{
	uint8_t b[4];

	vmstate_get(c, b, sizeof(b));
	return le_get32(b);
}

uint64_t vmstate_get_u64(struct vmstate_cursor *c)
{
	uint8_t b[8];

	vmstate_get(c, b, sizeof(b));
	return le_get64(b);
}

bool vmstate_get_bool(struct vmstate_cursor *c)
{
	uint8_t v = vmstate_get_u8(c);

	/* Anything but 0/1 means the payload is not what this reader thinks it is. */
	if (v > 1) {
		c->error = true;
		return false;
	}
	return v;
}

int vmstate_cursor_done(const struct vmstate_cursor *c)
{
	return !c->error && c->off == c->len ? 0 : -EINVAL;
}

int vmstate_cursor_size_error(const struct vmstate_cursor *c, const char *who, char *err, size_t n)
{
	if (c->error)
		return fail_msg(err, n, -EINVAL, "%s: state truncated (%llu bytes)", who,
				(unsigned long long)c->len);
	return fail_msg(err, n, -EINVAL, "%s: %llu bytes of state after the last field", who,
			(unsigned long long)(c->len - c->off));
}

/* ---- streams ---- */

/* Reads exactly len bytes, waiting up to timeout_ms for each piece. 0 or -errno. */
static int read_full(int fd, uint8_t *p, size_t len, int timeout_ms)
{
	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, p, len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int stream_error(int r, const char *what, char *err, size_t errlen)
{
	if (r == -EPIPE)
		return fail_msg(err, errlen, r, "the peer closed the stream (%s)", what);
	if (r == -ETIMEDOUT)
		return fail_msg(err, errlen, r, "the peer sent nothing in time (%s)", what);
	return fail_msg(err, errlen, r, "cannot read the stream (%s): %s", what, strerror(-r));
}

int vmstate_read_header(int fd, int timeout_ms, char *err, size_t errlen)
{
	uint8_t hdr[VMSTATE_HEADER_SIZE];
	struct vmstate_file f;
	int r = read_full(fd, hdr, sizeof(hdr), timeout_ms);

	if (r)
		return stream_error(r, "header", err, errlen);
	return parse_header(&f, hdr, sizeof(hdr), err, errlen);
}

int vmstate_read_section(int fd, struct vmstate_section *s, uint8_t **buf, size_t *cap,
			 uint64_t max_payload, int timeout_ms, char *err, size_t errlen)
{
	uint8_t h[VMSTATE_SECTION_HEADER_SIZE], tail[VMSTATE_SECTION_CRC_SIZE];
	char name[64];
	int r = read_full(fd, h, sizeof(h), timeout_ms);

	if (r)
		return stream_error(r, "section header", err, errlen);
	s->tag = le_get32(h);
	s->instance = le_get32(h + 4);
	s->version = le_get32(h + 8);
	s->len = le_get64(h + 16);
	label(name, sizeof(name), s->tag, s->instance);
	if (le_get32(h + 12) != 0)
		return fail_msg(err, errlen, -EINVAL, "%s: reserved field is 0x%x, not 0", name,
				le_get32(h + 12));
	if (max_payload > VMSTATE_MAX_SECTION)
		max_payload = VMSTATE_MAX_SECTION;
	if (s->len > max_payload)
		return fail_msg(err, errlen, -EINVAL,
				"%s: payload of %llu bytes, above the limit of %llu", name,
				(unsigned long long)s->len, (unsigned long long)max_payload);
	if (s->len > *cap || !*buf) {
		size_t ncap = s->len ? (size_t)s->len : 1;
		uint8_t *nb = realloc(*buf, ncap);
		if (!nb)
			return fail_msg(err, errlen, -ENOMEM, "out of memory for %s", name);
		*buf = nb;
		*cap = ncap;
	}
	if ((r = read_full(fd, *buf, (size_t)s->len, timeout_ms)) ||
	    (r = read_full(fd, tail, sizeof(tail), timeout_ms)))
		return stream_error(r, name, err, errlen);
	uint32_t crc = vmstate_crc32(vmstate_crc32(0, h, sizeof(h)), *buf, (size_t)s->len);
	if (le_get32(tail) != crc)
		return fail_msg(err, errlen, -EINVAL, "CRC mismatch in %s: the stream is corrupted",
				name);
	s->payload = *buf;
	return 0;
}
