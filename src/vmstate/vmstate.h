/*
 * tern's state format, shared by snapshot files and (later) the live-migration stream
 * (../shared/DESIGN.md, "State format"):
 *
 *   header   magic "TERNSTAT" (8 bytes), u32 format version, u32 architecture,
 *            u64 flags (0), u32 CRC-32 of the 24 bytes before it
 *   section  u32 tag, u32 instance, u32 section version, u32 0, u64 payload length,
 *            payload, u32 CRC-32 of the section header and payload
 *   ...
 *   end      a section with tag VMSTATE_TAG_END and an empty payload
 *
 * All integers little-endian. A reader checks the whole file (magic, version, architecture,
 * every length and CRC, the end marker) before anything is restored, so a truncated,
 * corrupted, wrong-version or wrong-architecture file is refused with a clear error and
 * touches nothing. Each device writes and reads its own payload (its save/restore next to
 * its state), through the put/get helpers below; readers are bounds-checked and sticky on
 * error, so a short or hostile payload can never be read past.
 */
#ifndef TERN_VMSTATE_VMSTATE_H
#define TERN_VMSTATE_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMSTATE_MAGIC "TERNSTAT"
#define VMSTATE_VERSION 1
#define VMSTATE_ARCH_X86_64 1
#define VMSTATE_MAX_SECTION (64ULL << 20) /* no device state comes near this */
#define VMSTATE_MAX_SECTIONS 4096	  /* not counting the end marker */

/* Sizes on disk, for code that builds or inspects files byte by byte (tests, fuzzing). */
#define VMSTATE_HEADER_SIZE 28	       /* magic, version, architecture, flags, CRC */
#define VMSTATE_SECTION_HEADER_SIZE 24 /* tag, instance, version, 0, payload length */
#define VMSTATE_SECTION_CRC_SIZE 4

enum vmstate_tag {
	VMSTATE_TAG_END = 0,
	VMSTATE_TAG_MACHINE = 1, /* vCPU count, RAM size, the device list: what must match */
	VMSTATE_TAG_MEMORY = 2,	 /* how the memory file was written (full/diff, page size) */
	VMSTATE_TAG_VCPU = 3,	 /* instance = vCPU index */
	VMSTATE_TAG_IRQCHIP = 4, /* PIC master, PIC slave, IOAPIC */
	VMSTATE_TAG_PIT = 5,
	VMSTATE_TAG_CLOCK = 6, /* kvmclock */
	VMSTATE_TAG_SERIAL = 16,
	VMSTATE_TAG_I8042 = 17,
	VMSTATE_TAG_RTC = 18,
	VMSTATE_TAG_PCI = 19,	     /* host bridge and config space of each function */
	VMSTATE_TAG_GED = 20,	     /* Generic Event Device: events not read yet */
	VMSTATE_TAG_VIRTIO = 32,     /* instance = device index; transport + common state */
	VMSTATE_TAG_VIRTIO_BLK = 33, /* instance = disk index */
	VMSTATE_TAG_VIRTIO_NET = 34, /* instance = NIC index */
	VMSTATE_TAG_VIRTIO_VSOCK = 35,
	VMSTATE_TAG_VIRTIO_RNG = 36,
	/* The live-migration stream (src/vmstate/migration.h) */
	VMSTATE_TAG_MIG_HELLO = 64,    /* source: protocol version, page size, RAM size */
	VMSTATE_TAG_MIG_RAM = 65,      /* source: runs of pages, data or zero */
	VMSTATE_TAG_MIG_DEVICES = 66,  /* source: a whole state file (the VM's device state) */
	VMSTATE_TAG_MIG_COMPLETE = 67, /* source: nothing follows; switch over */
	VMSTATE_TAG_MIG_READY = 68,    /* destination: the machine is accepted, send RAM */
	VMSTATE_TAG_MIG_ERROR = 69,    /* either side: why it gives up (a message) */
	VMSTATE_TAG_MIG_PREPARED = 70, /* destination: built; its vCPUs start next */
	VMSTATE_TAG_MIG_RESUMED = 71,  /* destination: the VM runs here now */
	VMSTATE_TAG_MIG_REPORT = 72,   /* source: downtime and totals, for the destination */
	VMSTATE_TAG_MIG_DISKS = 73,    /* source: the disks it copies (copy_storage) and sizes */
	VMSTATE_TAG_MIG_DISK = 74,     /* source: runs of one copied disk's bytes */
	VMSTATE_TAG_MIG_POSTCOPY = 75, /* source: switch over now; these pages come later */
	VMSTATE_TAG_MIG_PAGE_REQ = 76, /* destination (post-copy): send these pages first */
};

/* A name for --describe-snapshot ("vcpu", "virtio-blk" ...), or "unknown". */
const char *vmstate_tag_name(uint32_t tag);

/* ---- writing ---- */

struct vmstate_writer {
	int fd;
	int err;      /* first error (-errno), sticky: later calls do nothing */
	uint8_t *buf; /* the open section's payload */
	size_t len, cap;
	bool in_section;
	uint32_t tag, instance, version;
	uint64_t written; /* bytes written to fd */
	int timeout_ms;	  /* a non-blocking fd that takes nothing this long: -ETIMEDOUT (0: wait) */
};

/*
 * Writes the header to fd (which the caller owns). 0 or -errno. Writes survive EINTR,
 * short writes and a non-blocking fd (it waits in poll()). A pipe or socket whose reader
 * left gives -EPIPE only if the caller ignores SIGPIPE (tern-vmm does).
 */
int vmstate_writer_init(struct vmstate_writer *w, int fd);
/*
 * Opens a section. -EINVAL (sticky, like every error) when one is already open or tag is
 * VMSTATE_TAG_END (finish writes that). A payload above VMSTATE_MAX_SECTION is -EFBIG.
 */
void vmstate_begin(struct vmstate_writer *w, uint32_t tag, uint32_t instance, uint32_t version);
void vmstate_put(struct vmstate_writer *w, const void *data, size_t len);
void vmstate_put_u8(struct vmstate_writer *w, uint8_t v);
void vmstate_put_u16(struct vmstate_writer *w, uint16_t v);
void vmstate_put_u32(struct vmstate_writer *w, uint32_t v);
void vmstate_put_u64(struct vmstate_writer *w, uint64_t v);
void vmstate_put_bool(struct vmstate_writer *w, bool v);
/* Writes the open section (header, payload, CRC). */
void vmstate_end(struct vmstate_writer *w);
/*
 * Writes the end marker; frees the buffer. Returns the first error of the whole write, or 0
 * (a section still open is -EINVAL). It neither syncs nor closes fd.
 */
int vmstate_writer_finish(struct vmstate_writer *w);

/* ---- reading ---- */

struct vmstate_section {
	uint32_t tag, instance, version;
	const uint8_t *payload;
	uint64_t len;
};

struct vmstate_file {
	uint32_t version, arch;
	unsigned int nsections; /* without the end marker */
	struct vmstate_section *sections;
};

/*
 * Checks and indexes a whole file held in buf (which must outlive f). 0, or -EINVAL with
 * err saying what is wrong ("truncated: section 3 (vcpu 1) needs 4096 bytes, 100 left",
 * "CRC mismatch in section 5 (serial 0)", "format version 7; this tern-vmm reads version 1",
 * ...); f then holds no sections, and vmstate_file_free(f) is still allowed. -ENOMEM when
 * the index cannot be allocated.
 */
int vmstate_file_parse(struct vmstate_file *f, const uint8_t *buf, size_t len, char *err,
		       size_t errlen);
void vmstate_file_free(struct vmstate_file *f);
/* The section with tag and instance, or NULL. */
const struct vmstate_section *vmstate_find(const struct vmstate_file *f, uint32_t tag,
					   uint32_t instance);

/* A bounds-checked reader over one payload; any short read sets error and yields zeros. */
struct vmstate_cursor {
	const uint8_t *p;
	uint64_t len, off;
	bool error;
};

/* s may be NULL (vmstate_find found nothing): the cursor then starts in error. */
void vmstate_cursor_init(struct vmstate_cursor *c, const struct vmstate_section *s);
void vmstate_get(struct vmstate_cursor *c, void *out, size_t len);
uint8_t vmstate_get_u8(struct vmstate_cursor *c);
uint16_t vmstate_get_u16(struct vmstate_cursor *c);
uint32_t vmstate_get_u32(struct vmstate_cursor *c);
uint64_t vmstate_get_u64(struct vmstate_cursor *c);
bool vmstate_get_bool(struct vmstate_cursor *c); /* a byte other than 0/1 sets error */
/* 0 if every byte was read without error, else -EINVAL (a payload of the wrong size). */
int vmstate_cursor_done(const struct vmstate_cursor *c);
/*
 * Words why a payload is the wrong size, for a restore to refuse it with: "<who>: state
 * truncated (N bytes)" when c is in error, else "<who>: N bytes of state after the last
 * field". Returns -EINVAL.
 */
int vmstate_cursor_size_error(const struct vmstate_cursor *c, const char *who, char *err, size_t n);

/* ---- streams (live migration): the same header and sections, read one at a time ---- */

/*
 * Reads and checks a stream's header from fd (waiting up to timeout_ms for each piece; -1
 * forever). 0, or -errno with err: -EPIPE when the peer closed, -ETIMEDOUT, -EINVAL for a
 * header this tern-vmm does not read (the same words as for files).
 */
int vmstate_read_header(int fd, int timeout_ms, char *err, size_t errlen);
/*
 * Reads the next section from fd into *buf (grown as needed, up to max_payload bytes of
 * payload; *cap is its size) and checks its length and CRC; s->payload points into *buf.
 * 0, or -errno with err as above (a section longer than max_payload is -EINVAL).
 */
int vmstate_read_section(int fd, struct vmstate_section *s, uint8_t **buf, size_t *cap,
			 uint64_t max_payload, int timeout_ms, char *err, size_t errlen);

/* CRC-32 (IEEE 802.3, as zlib's crc32), over len bytes, continuing from crc (start 0). */
uint32_t vmstate_crc32(uint32_t crc, const void *data, size_t len);

#endif
