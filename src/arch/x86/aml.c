/*
 * AML byte-code encoder (ACPI 6.x, section 20 "ACPI Machine Language Specification").
 * Objects with a PkgLength are back-patched on close, since the length prefix's own size
 * depends on the body size.
 */
#include "arch/x86/aml.h"

#include <errno.h>
#include <string.h>

#define AML_ROOT_CHAR '\\'
#define AML_PARENT_CHAR '^'
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f

/* Resource descriptor tags (ACPI 6.x section 6.4). */
#define RES_IRQ_NOFLAGS 0x22 /* small item 0x04, length 2 */
#define RES_IO 0x47	     /* small item 0x08, length 7 */
#define RES_END_TAG 0x79     /* small item 0x0f, length 1 */
#define RES_MEMORY32_FIXED 0x86
#define RES_EXT_INTERRUPT 0x89
#define RES_INT_CONSUMER (1u << 0)

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	a->buf = buf;
	a->cap = cap;
	a->len = 0;
	a->err = 0;
}

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

static bool room(struct aml *a, size_t n)
{
	if (a->err)
		return false;
	if (n > a->cap - a->len) {
		fail(a, -ENOSPC);
		return false;
	}
	return true;
}

void aml_raw(struct aml *a, const void *p, size_t n)
{
	if (!room(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_raw(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned int bytes)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_raw(a, b, bytes);
}

/* Opens a gap of n bytes at pos, shifting what follows; the caller fills the gap. */
static bool insert(struct aml *a, size_t pos, const void *p, size_t n)
{
	if (!a->err && pos > a->len)
		fail(a, -EINVAL);
	if (!room(a, n))
		return false;
	memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
	memcpy(a->buf + pos, p, n);
	a->len += n;
	return true;
}

int aml_pkglen_encode(uint8_t out[AML_PKGLEN_MAX], size_t body_len)
{
	size_t total;
	int n;

	/* The value includes its own bytes, so try each size until the total fits. */
	if (body_len + 1 < 0x40) {
		out[0] = (uint8_t)(body_len + 1);
		return 1;
	}
	for (n = 2; n <= AML_PKGLEN_MAX; n++) {
		total = body_len + (size_t)n;
		if (total < ((size_t)1 << (4 + 8 * (n - 1))))
			break;
	}
	if (n > AML_PKGLEN_MAX)
		return -EINVAL;
	/* Lead byte: bits 7-6 count the following bytes, bits 3-0 are the low nibble. */
	out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

static bool lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return lead_char(c) || (c >= '0' && c <= '9');
}

void aml_namestring(struct aml *a, const char *path)
{
	uint8_t out[2 + 255 * 4 + 255]; /* prefixes + 255 segments; see the checks below */
	size_t n = 0, nseg = 0;
	const char *p = path;
	uint8_t segs[255][4];

	if (a->err)
		return;
	if (*p == AML_ROOT_CHAR) {
		out[n++] = AML_ROOT_CHAR;
		p++;
	} else {
		while (*p == AML_PARENT_CHAR && n < 255)
			out[n++] = (uint8_t)*p++;
	}
	while (*p) {
		size_t k = 0;

		if (nseg == 255 || !lead_char(*p))
			goto bad;
		while (k < 4 && name_char(*p))
			segs[nseg][k++] = (uint8_t)*p++;
		while (k < 4)
			segs[nseg][k++] = '_';
		nseg++;
		if (*p == '.' && p[1])
			p++;
		else if (*p)
			goto bad;
	}
	if (nseg == 0) {
		/* Only "\\" (or "^") by itself names something: the root, or the parent. */
		if (n == 0)
			goto bad;
		out[n++] = AML_NULL_NAME;
	} else if (nseg == 2) {
		out[n++] = AML_DUAL_NAME_PREFIX;
	} else if (nseg > 2) {
		out[n++] = AML_MULTI_NAME_PREFIX;
		out[n++] = (uint8_t)nseg;
	}
	memcpy(out + n, segs, nseg * 4);
	aml_raw(a, out, n + nseg * 4);
	return;
bad:
	fail(a, -EINVAL);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_OP_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_OP_ONE);
	} else if (v <= UINT8_MAX) {
		aml_byte(a, AML_OP_BYTE);
		le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_byte(a, AML_OP_WORD);
		le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_byte(a, AML_OP_DWORD);
		le(a, v, 4);
	} else {
		aml_byte(a, AML_OP_QWORD);
		le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	/* AsciiCharList excludes NUL and anything above 0x7f. */
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c > 0x7f) {
			fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_OP_STRING);
	aml_raw(a, s, strlen(s) + 1);
}

void aml_buffer(struct aml *a, const void *data, size_t len)
{
	size_t mark;

	aml_byte(a, AML_OP_BUFFER);
	mark = a->len;
	aml_integer(a, len);
	aml_raw(a, data, len);
	aml_close(a, mark);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int aml_eisaid_encode(const char *id, uint32_t *out)
{
	uint32_t v = 0;

	if (strlen(id) != 7)
		return -EINVAL;
	/* Three letters, 5 bits each ('A' is 1), then four hex digits; stored big-endian. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);

		if (d < 0)
			return -EINVAL;
		v = (v << 4) | (uint32_t)d;
	}
	*out = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
	return 0;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v;

	if (aml_eisaid_encode(id, &v)) {
		fail(a, -EINVAL);
		return;
	}
	/* Always a DWord, as ASL's EISAID() emits, whatever the value's magnitude. */
	aml_byte(a, AML_OP_DWORD);
	le(a, v, 4);
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_OP_NAME);
	aml_namestring(a, path);
}

void aml_name_integer(struct aml *a, const char *path, uint64_t v)
{
	aml_name(a, path);
	aml_integer(a, v);
}

void aml_name_string(struct aml *a, const char *path, const char *s)
{
	aml_name(a, path);
	aml_string(a, s);
}

void aml_name_eisaid(struct aml *a, const char *path, const char *id)
{
	aml_name(a, path);
	aml_eisaid(a, id);
}

size_t aml_scope_open(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_OP_SCOPE);
	mark = a->len;
	aml_namestring(a, path);
	return mark;
}

size_t aml_device_open(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_OP_EXT);
	aml_byte(a, AML_OP_EXT_DEVICE);
	mark = a->len;
	aml_namestring(a, path);
	return mark;
}

size_t aml_method_open(struct aml *a, const char *path, unsigned int nargs, bool serialized)
{
	size_t mark;

	if (nargs > 7)
		fail(a, -EINVAL);
	aml_byte(a, AML_OP_METHOD);
	mark = a->len;
	aml_namestring(a, path);
	/* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3, SyncLevel 0. */
	aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
	return mark;
}

size_t aml_package_open(struct aml *a, unsigned int nelems)
{
	size_t mark;

	/* NumElements is a ByteData; larger lists would need VarPackageOp. */
	if (nelems > UINT8_MAX)
		fail(a, -EINVAL);
	aml_byte(a, AML_OP_PACKAGE);
	mark = a->len;
	aml_byte(a, (uint8_t)nelems);
	return mark;
}

void aml_close(struct aml *a, size_t mark)
{
	uint8_t pl[AML_PKGLEN_MAX];
	int n;

	if (a->err)
		return;
	if (mark > a->len) {
		fail(a, -EINVAL);
		return;
	}
	n = aml_pkglen_encode(pl, a->len - mark);
	if (n < 0) {
		fail(a, n);
		return;
	}
	insert(a, mark, pl, (size_t)n);
}

size_t aml_if_open(struct aml *a)
{
	/* DefIfElse: the PkgLength covers the predicate and the body, not a following Else. */
	aml_byte(a, AML_OP_IF);
	return a->len;
}

size_t aml_else_open(struct aml *a)
{
	aml_byte(a, AML_OP_ELSE);
	return a->len;
}

void aml_lequal(struct aml *a)
{
	aml_byte(a, AML_OP_LEQUAL);
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_OP_RETURN);
}

void aml_arg(struct aml *a, unsigned int n)
{
	if (n > 6) {
		fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_OP_ARG0 + n));
}

void aml_local(struct aml *a, unsigned int n)
{
	if (n > 7) {
		fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_OP_LOCAL0 + n));
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	aml_byte(a, AML_OP_NOTIFY);
	aml_namestring(a, path);
	aml_integer(a, value);
}

void aml_store(struct aml *a)
{
	aml_byte(a, AML_OP_STORE);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AML_OP_AND);
}

void aml_null_name(struct aml *a)
{
	aml_byte(a, AML_NULL_NAME);
}

void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset,
			  uint64_t len)
{
	aml_byte(a, AML_OP_EXT);
	aml_byte(a, AML_OP_EXT_OPREGION);
	aml_namestring(a, name);
	aml_byte(a, space);
	aml_integer(a, offset);
	aml_integer(a, len);
}

size_t aml_field_open(struct aml *a, const char *region, uint8_t flags)
{
	size_t mark;

	/* Bit 7 of FieldFlags is reserved (must be zero). */
	if (flags & 0x80)
		fail(a, -EINVAL);
	aml_byte(a, AML_OP_EXT);
	aml_byte(a, AML_OP_EXT_FIELD);
	mark = a->len;
	aml_namestring(a, region);
	aml_byte(a, flags);
	return mark;
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
	uint8_t out[4 + AML_PKGLEN_MAX];
	size_t k = 0;
	int n;

	/* A NamedField's name is one bare NameSeg: no root, parent or dual-name prefix. */
	if (!lead_char(name[0]))
		goto bad;
	while (k < 4 && name_char(name[k])) {
		out[k] = (uint8_t)name[k];
		k++;
	}
	if (name[k] || bits == 0 || bits >= AML_PKGLEN_LIMIT)
		goto bad;
	while (k < 4)
		out[k++] = '_';
	/*
	 * The unit's size in bits is written like a PkgLength, except that the value is the
	 * size itself: it does not count its own bytes.
	 */
	if (bits < 0x40) {
		out[4] = (uint8_t)bits;
		n = 1;
	} else {
		n = bits < (1u << 12) ? 2 : bits < (1u << 20) ? 3 : 4;
		out[4] = (uint8_t)(((n - 1) << 6) | (bits & 0x0f));
		for (int i = 1; i < n; i++)
			out[4 + i] = (uint8_t)(bits >> (4 + 8 * (i - 1)));
	}
	aml_raw(a, out, 4 + (size_t)n);
	return;
bad:
	fail(a, -EINVAL);
}

size_t aml_restemplate_open(struct aml *a)
{
	aml_byte(a, AML_OP_BUFFER);
	return a->len;
}

void aml_restemplate_close(struct aml *a, size_t mark)
{
	struct aml size;
	uint8_t enc[9];
	uint8_t sum = 0;

	if (a->err)
		return;
	if (mark > a->len) {
		fail(a, -EINVAL);
		return;
	}
	/* The end tag's checksum makes the descriptors plus the tag sum to zero. */
	for (size_t i = mark; i < a->len; i++)
		sum += a->buf[i];
	sum += RES_END_TAG;
	aml_byte(a, RES_END_TAG);
	aml_byte(a, (uint8_t)-sum);

	aml_init(&size, enc, sizeof(enc));
	aml_integer(&size, a->len - mark);
	if (insert(a, mark, enc, size.len))
		aml_close(a, mark);
}

void aml_res_io(struct aml *a, uint16_t port, uint8_t len)
{
	/* Information bit 0: the device decodes all 16 address bits. */
	const uint8_t d[8] = { RES_IO,	    0x01,      port & 0xff, port >> 8,
			       port & 0xff, port >> 8, 0x01,	    len };

	aml_raw(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, unsigned int irq)
{
	uint16_t mask = (uint16_t)(1u << (irq & 15));

	if (irq > 15) {
		fail(a, -EINVAL);
		return;
	}
	aml_byte(a, RES_IRQ_NOFLAGS);
	le(a, mask, 2);
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, unsigned int flags)
{
	const uint8_t flag_mask = AML_INT_EDGE | AML_INT_ACTIVE_LOW | AML_INT_SHARED | AML_INT_WAKE;

	aml_byte(a, RES_EXT_INTERRUPT);
	le(a, 6, 2); /* flags, table length, one interrupt number */
	aml_byte(a, (uint8_t)((flags & flag_mask) | RES_INT_CONSUMER));
	aml_byte(a, 1);
	le(a, gsi, 4);
}

void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable)
{
	aml_byte(a, RES_MEMORY32_FIXED);
	le(a, 9, 2);
	aml_byte(a, writable ? 1 : 0);
	le(a, base, 4);
	le(a, len, 4);
}
