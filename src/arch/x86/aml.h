/*
 * A small AML (ACPI Machine Language) encoder: names, data objects, scopes, devices,
 * methods and resource templates, written into a fixed caller-provided buffer.
 */
#ifndef TERN_ARCH_X86_AML_H
#define TERN_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Output state. Nothing is ever written at or past cap. The first failure (no room,
 * a malformed name, too many package elements) is latched in err and every later call
 * does nothing, so a builder checks err once at the end instead of after each call.
 */
struct aml {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err; /* 0, -ENOSPC or -EINVAL */
};

#define AML_PKGLEN_MAX 4	    /* a PkgLength is 1..4 bytes */
#define AML_PKGLEN_LIMIT (1u << 28) /* PkgLength values are 28 bits */

/* Opcodes a caller may need to emit by hand around the helpers below. */
#define AML_OP_ZERO 0x00
#define AML_OP_ONE 0x01
#define AML_OP_NAME 0x08
#define AML_OP_BYTE 0x0a
#define AML_OP_WORD 0x0b
#define AML_OP_DWORD 0x0c
#define AML_OP_STRING 0x0d
#define AML_OP_QWORD 0x0e
#define AML_OP_SCOPE 0x10
#define AML_OP_BUFFER 0x11
#define AML_OP_PACKAGE 0x12
#define AML_OP_METHOD 0x14
#define AML_OP_LOCAL0 0x60 /* Local0..Local7 are 0x60..0x67 */
#define AML_OP_ARG0 0x68   /* Arg0..Arg6 are 0x68..0x6e */
#define AML_OP_STORE 0x70
#define AML_OP_AND 0x7b
#define AML_OP_NOTIFY 0x86
#define AML_OP_LEQUAL 0x93
#define AML_OP_IF 0xa0
#define AML_OP_ELSE 0xa1
#define AML_OP_RETURN 0xa4
#define AML_OP_EXT 0x5b
#define AML_OP_EXT_OPREGION 0x80 /* follows AML_OP_EXT */
#define AML_OP_EXT_FIELD 0x81	 /* follows AML_OP_EXT */
#define AML_OP_EXT_DEVICE 0x82	 /* follows AML_OP_EXT */
#define AML_NULL_NAME 0x00	 /* an operator's target that stores nowhere */

/* OperationRegion spaces (RegionSpace) */
#define AML_REGION_SYSTEM_MEMORY 0x00
#define AML_REGION_SYSTEM_IO 0x01

/* FieldFlags: AccessType (bits 0-3), LockRule (bit 4), UpdateRule (bits 5-6) */
#define AML_FIELD_ANY_ACC 0x00
#define AML_FIELD_BYTE_ACC 0x01
#define AML_FIELD_WORD_ACC 0x02
#define AML_FIELD_DWORD_ACC 0x03
#define AML_FIELD_LOCK (1u << 4)
#define AML_FIELD_WRITE_AS_ONES (1u << 5)
#define AML_FIELD_WRITE_AS_ZEROS (2u << 5)

/* Flags for aml_res_interrupt(); zero means level-triggered, active-high, exclusive. */
#define AML_INT_EDGE (1u << 1)
#define AML_INT_ACTIVE_LOW (1u << 2)
#define AML_INT_SHARED (1u << 3)
#define AML_INT_WAKE (1u << 4)

void aml_init(struct aml *a, uint8_t *buf, size_t cap);

void aml_byte(struct aml *a, uint8_t b);
void aml_raw(struct aml *a, const void *p, size_t n);

/*
 * Encodes the PkgLength for an object whose body (the bytes after the PkgLength) is
 * body_len bytes long; the encoded value counts the PkgLength bytes themselves.
 * Returns the number of bytes written to out (1..4), or -EINVAL if too long.
 */
int aml_pkglen_encode(uint8_t out[AML_PKGLEN_MAX], size_t body_len);

/*
 * NameString from a dotted path: "\\_SB.COM1", "^PCI0", "_HID". Segments are up to four
 * characters ([A-Z_] then [A-Z0-9_]) and are padded with '_'. "\\" alone is the root.
 */
void aml_namestring(struct aml *a, const char *path);

/* The smallest integer encoding (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix). */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
void aml_buffer(struct aml *a, const void *data, size_t len);

/*
 * Compresses a seven-character PNP id ("PNP0303") into the 32-bit EISA id the way
 * ASL's EISAID() does. Returns 0, or -EINVAL for a malformed id.
 */
int aml_eisaid_encode(const char *id, uint32_t *out);
/* The EISA id as a DWordConst. */
void aml_eisaid(struct aml *a, const char *id);

/* Name(path, <value>): the caller emits exactly one data object right after. */
void aml_name(struct aml *a, const char *path);
void aml_name_integer(struct aml *a, const char *path, uint64_t v);
void aml_name_string(struct aml *a, const char *path, const char *s);
void aml_name_eisaid(struct aml *a, const char *path, const char *id);

/*
 * Objects with a PkgLength are opened, filled, then closed with the mark the opener
 * returned; closes must nest like the objects do. Package elements are data objects
 * (aml_integer(), aml_string(), ...); nelems must match what is emitted.
 */
size_t aml_scope_open(struct aml *a, const char *path);
size_t aml_device_open(struct aml *a, const char *path);
size_t aml_method_open(struct aml *a, const char *path, unsigned int nargs, bool serialized);
size_t aml_package_open(struct aml *a, unsigned int nelems);
void aml_close(struct aml *a, size_t mark);

/*
 * Method bodies. AML is prefix notation: an operator's opcode comes first and its
 * operands follow as whole terms, so the helpers below emit the operator and the caller
 * emits the operands right after, in order (aml_integer(), aml_arg(), aml_namestring()...).
 *
 * If (predicate) { body }: open, emit the predicate (one term, e.g. aml_lequal() and its
 * two operands), then the body, then aml_close(). An Else { body } may follow the If's
 * close directly, opened and closed the same way.
 */
size_t aml_if_open(struct aml *a);
size_t aml_else_open(struct aml *a);
/* LEqual(x, y): the caller emits x then y. */
void aml_lequal(struct aml *a);
/* Return(x): the caller emits x. */
void aml_return(struct aml *a);
/* References to the method's arguments (0..6) and locals (0..7). */
void aml_arg(struct aml *a, unsigned int n);
void aml_local(struct aml *a, unsigned int n);
/* Notify(path, value): queues notification value for the named device. */
void aml_notify(struct aml *a, const char *path, uint64_t value);
/* Store(x, target): the caller emits x then the target (a local, a field unit's name...). */
void aml_store(struct aml *a);
/*
 * And(x, y, target): the caller emits x, y, then the target, aml_null_name() when only the
 * result is wanted (If (And (Local0, 2, Zero)) tests a bit).
 */
void aml_and(struct aml *a);
void aml_null_name(struct aml *a);

/*
 * OperationRegion(name, space, offset, len): an address range the guest's interpreter
 * reads and writes through the field units a Field() declares over it.
 */
void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset,
			  uint64_t len);
/*
 * Field(region, flags) { units }: open, then aml_field_unit() for each unit in address
 * order, then aml_close(). flags are AML_FIELD_*.
 */
size_t aml_field_open(struct aml *a, const char *region, uint8_t flags);
/* A named field unit of bits bits (1 ..< 2^28); name is one NameSeg ("ESEL"). */
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);

/*
 * ResourceTemplate(): a Buffer of resource descriptors. Emit descriptors between open
 * and close; close appends the end tag (with checksum) and the buffer size.
 */
size_t aml_restemplate_open(struct aml *a);
void aml_restemplate_close(struct aml *a, size_t mark);

/* IO(Decode16, port, port, 1, len): a fixed range of len ports. */
void aml_res_io(struct aml *a, uint16_t port, uint8_t len);
/* IRQNoFlags() { irq }: one ISA IRQ (0..15), edge-triggered, active-high. */
void aml_res_irq(struct aml *a, unsigned int irq);
/* Interrupt(ResourceConsumer, ...) { gsi } with AML_INT_* flags. */
void aml_res_interrupt(struct aml *a, uint32_t gsi, unsigned int flags);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable);

#endif
