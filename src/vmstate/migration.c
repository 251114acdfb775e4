/* Payloads of the live-migration stream's sections (migration.h). */
#include "vmstate/migration.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void mig_hello_put(struct vmstate_writer *w, const struct mig_hello *h)
{
	vmstate_begin(w, VMSTATE_TAG_MIG_HELLO, 0, MIG_SECTION_VERSION);
	vmstate_put_u32(w, h->protocol);
	vmstate_put_u32(w, h->page_size);
	vmstate_put_u64(w, h->ram_size);
	vmstate_put_u32(w, h->flags);
	vmstate_end(w);
}

int mig_hello_get(const struct vmstate_section *s, struct mig_hello *h, char *err, size_t n)
{
	struct vmstate_cursor c;

	if (s->tag != VMSTATE_TAG_MIG_HELLO)
		return fail_msg(err, n, -EINVAL, "the stream does not start with a hello (%s)",
				vmstate_tag_name(s->tag));
	vmstate_cursor_init(&c, s);
	h->protocol = vmstate_get_u32(&c);
	/* The protocol first: another version may lay out the rest differently. */
	if (!c.error && h->protocol != MIG_PROTOCOL_VERSION)
		return fail_msg(err, n, -EINVAL,
				"migration protocol version %u; this tern-vmm speaks version %d",
				h->protocol, MIG_PROTOCOL_VERSION);
	h->page_size = vmstate_get_u32(&c);
	h->ram_size = vmstate_get_u64(&c);
	h->flags = vmstate_get_u32(&c);
	if (s->version != MIG_SECTION_VERSION || vmstate_cursor_done(&c))
		return fail_msg(err, n, -EINVAL, "a hello this tern-vmm does not read");
	if (h->page_size != MIG_PAGE)
		return fail_msg(err, n, -EINVAL, "page size %u; this tern-vmm uses %llu",
				h->page_size, MIG_PAGE);
	if (h->flags & ~MIG_HELLO_COPY_STORAGE)
		return fail_msg(err, n, -EINVAL, "hello flags 0x%x: this tern-vmm knows 0x%x",
				h->flags, MIG_HELLO_COPY_STORAGE);
	if (!h->ram_size || h->ram_size % MIG_PAGE)
		return fail_msg(err, n, -EINVAL, "RAM size %llu is not a whole number of pages",
				(unsigned long long)h->ram_size);
	return 0;
}

void mig_run_put(struct vmstate_writer *w, uint64_t first, uint32_t count, enum mig_run_kind kind,
		 const uint8_t *data)
{
	vmstate_put_u64(w, first);
	vmstate_put_u32(w, count);
	vmstate_put_u8(w, (uint8_t)kind);
	if (kind == MIG_RUN_DATA)
		vmstate_put(w, data, count * MIG_PAGE);
}

struct apply_plain {
	uint8_t *ram;
	bool anon;
};

/* mig_ram_apply's way: copy the data, give the zero runs' memory back to the host. */
static int apply_plain(void *opaque, uint64_t first, uint32_t count, enum mig_run_kind kind,
		       const uint8_t *data)
{
	struct apply_plain *a = opaque;

	if (kind == MIG_RUN_DATA) {
		memcpy(a->ram + first * MIG_PAGE, data, count * MIG_PAGE);
		return 0;
	}
	/* Anonymous pages dropped read as zeros and cost nothing. */
	uint8_t *p = a->ram + first * MIG_PAGE;
	size_t len = (size_t)count * MIG_PAGE;
	if (!a->anon || madvise(p, len, MADV_DONTNEED))
		memset(p, 0, len);
	return 0;
}

/* One pass over the runs: checks them all (fn NULL), or hands each to fn. */
static int walk_runs(const struct vmstate_section *s, uint64_t pages, mig_run_fn fn, void *opaque,
		     uint64_t *covered, char *err, size_t n)
{
	struct vmstate_cursor c;
	unsigned int i = 0;
	int r;

	vmstate_cursor_init(&c, s);
	*covered = 0;
	while (c.off < c.len) {
		uint64_t first = vmstate_get_u64(&c);
		uint32_t count = vmstate_get_u32(&c);
		uint8_t kind = vmstate_get_u8(&c);
		if (c.error)
			return fail_msg(err, n, -EINVAL, "RAM run %u: truncated header", i);
		if (kind > MIG_RUN_ZERO)
			return fail_msg(err, n, -EINVAL, "RAM run %u: kind %u (0 data, 1 zero)", i,
					kind);
		/* first + count > pages, written so that it cannot overflow */
		if (count == 0 || first >= pages || count > pages - first)
			return fail_msg(err, n, -EINVAL,
					"RAM run %u: pages %llu+%u outside the VM's %llu pages", i,
					(unsigned long long)first, count,
					(unsigned long long)pages);
		const uint8_t *data = NULL;
		if (kind == MIG_RUN_DATA) {
			if (count > MIG_RUN_MAX_PAGES || (uint64_t)count * MIG_PAGE > c.len - c.off)
				return fail_msg(err, n, -EINVAL,
						"RAM run %u: %u pages of data, %llu bytes left", i,
						count, (unsigned long long)(c.len - c.off));
			data = c.p + c.off;
			c.off += count * MIG_PAGE;
		}
		if (fn && (r = fn(opaque, first, count, (enum mig_run_kind)kind, data)))
			return fail_msg(err, n, r, "RAM run %u: cannot place pages %llu+%u: %s", i,
					(unsigned long long)first, count, strerror(-r));
		*covered += count;
		i++;
	}
	return 0;
}

int mig_ram_walk(const struct vmstate_section *s, uint64_t pages, mig_run_fn fn, void *opaque,
		 uint64_t *pages_done, char *err, size_t n)
{
	uint64_t covered;
	int r;

	if (s->version != MIG_SECTION_VERSION)
		return fail_msg(err, n, -EINVAL, "RAM section version %u; this tern-vmm reads %d",
				s->version, MIG_SECTION_VERSION);
	if ((r = walk_runs(s, pages, NULL, NULL, &covered, err, n)) ||
	    (r = walk_runs(s, pages, fn, opaque, &covered, err, n)))
		return r;
	*pages_done += covered;
	return 0;
}

int mig_ram_apply(const struct vmstate_section *s, uint8_t *ram, bool anon, uint64_t pages,
		  uint64_t *pages_done, char *err, size_t n)
{
	struct apply_plain a = { ram, anon };

	return mig_ram_walk(s, pages, apply_plain, &a, pages_done, err, n);
}

void mig_message_put(struct vmstate_writer *w, const char *msg)
{
	size_t len = strnlen(msg, MIG_MESSAGE_MAX);

	vmstate_begin(w, VMSTATE_TAG_MIG_ERROR, 0, MIG_SECTION_VERSION);
	vmstate_put_u32(w, (uint32_t)len);
	vmstate_put(w, msg, len);
	vmstate_end(w);
}

void mig_message_get(const struct vmstate_section *s, char *buf, size_t len)
{
	struct vmstate_cursor c;
	char msg[MIG_MESSAGE_MAX + 1];

	vmstate_cursor_init(&c, s);
	uint32_t mlen = vmstate_get_u32(&c);
	if (c.error || mlen > MIG_MESSAGE_MAX) {
		snprintf(buf, len, "(an unreadable error message)");
		return;
	}
	vmstate_get(&c, msg, mlen);
	msg[mlen] = 0;
	if (vmstate_cursor_done(&c) || strlen(msg) != mlen) {
		snprintf(buf, len, "(an unreadable error message)");
		return;
	}
	/* The peer's words go into our log and API: keep them printable. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	snprintf(buf, len, "%s", msg);
}

void mig_report_put(struct vmstate_writer *w, const struct mig_report *r)
{
	vmstate_begin(w, VMSTATE_TAG_MIG_REPORT, 0, MIG_SECTION_VERSION);
	vmstate_put_u64(w, r->downtime_us);
	vmstate_put_u64(w, r->total_ms);
	vmstate_put_u64(w, r->bytes_sent);
	vmstate_put_u32(w, r->rounds);
	vmstate_end(w);
}

int mig_report_get(const struct vmstate_section *s, struct mig_report *r)
{
	struct vmstate_cursor c;

	vmstate_cursor_init(&c, s);
	r->downtime_us = vmstate_get_u64(&c);
	r->total_ms = vmstate_get_u64(&c);
	r->bytes_sent = vmstate_get_u64(&c);
	r->rounds = vmstate_get_u32(&c);
	return s->version == MIG_SECTION_VERSION ? vmstate_cursor_done(&c) : -EINVAL;
}

void mig_signal_put(struct vmstate_writer *w, uint32_t tag)
{
	vmstate_begin(w, tag, 0, MIG_SECTION_VERSION);
	vmstate_end(w);
}

/* One pass over a DISK section's runs: checks them all (t NULL), or writes them. */
static int walk_disk_runs(const struct vmstate_section *s, const struct mig_disk_target *t,
			  uint64_t size, uint64_t *covered, char *err, size_t n)
{
	struct vmstate_cursor c;
	static const uint8_t zeros[65536];
	unsigned int i = 0;

	vmstate_cursor_init(&c, s);
	vmstate_get_u32(&c);
	*covered = 0;
	while (c.off < c.len) {
		uint64_t off = vmstate_get_u64(&c);
		uint32_t len = vmstate_get_u32(&c);
		uint8_t kind = vmstate_get_u8(&c);
		if (c.error)
			return fail_msg(err, n, -EINVAL, "disk run %u: truncated header", i);
		if (kind > MIG_RUN_ZERO || len == 0 || len > MIG_DISK_RUN_MAX || off % 512 ||
		    len % 512 || off >= size || len > size - off)
			return fail_msg(err, n, -EINVAL,
					"disk run %u: %u bytes at %llu (kind %u) outside a disk of "
					"%llu bytes, or not whole sectors",
					i, len, (unsigned long long)off, kind,
					(unsigned long long)size);
		if (kind == MIG_RUN_DATA && len > c.len - c.off)
			return fail_msg(err, n, -EINVAL, "disk run %u: %u bytes of data, %llu left",
					i, len, (unsigned long long)(c.len - c.off));
		if (t && kind == MIG_RUN_DATA) {
			for (uint32_t done = 0; done < len;) {
				ssize_t w = pwrite(t->fd, c.p + c.off + done, len - done,
						   (off_t)(off + done));
				if (w <= 0)
					return fail_msg(err, n, w < 0 ? -errno : -EIO,
							"cannot write the disk copy: %s",
							w < 0 ? strerror(errno) : "no progress");
				done += (uint32_t)w;
			}
		} else if (t && fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)off, (off_t)len) < 0) {
			for (uint32_t done = 0; done < len;) {
				uint32_t k =
					len - done > sizeof(zeros) ? sizeof(zeros) : len - done;
				ssize_t w = pwrite(t->fd, zeros, k, (off_t)(off + done));
				if (w <= 0)
					return fail_msg(err, n, w < 0 ? -errno : -EIO,
							"cannot write the disk copy: %s",
							w < 0 ? strerror(errno) : "no progress");
				done += (uint32_t)w;
			}
		}
		if (kind == MIG_RUN_DATA)
			c.off += len;
		*covered += len;
		i++;
	}
	return 0;
}

int mig_disk_apply(const struct vmstate_section *s, const struct mig_disk_target *targets,
		   unsigned int n_targets, uint64_t *bytes, char *err, size_t n)
{
	struct vmstate_cursor c;
	uint64_t covered;
	int r;

	vmstate_cursor_init(&c, s);
	uint32_t idx = vmstate_get_u32(&c);
	if (s->version != MIG_SECTION_VERSION || c.error)
		return fail_msg(err, n, -EINVAL, "a disk section this tern-vmm does not read");
	if (idx >= n_targets || targets[idx].fd < 0)
		return fail_msg(err, n, -EINVAL, "disk section for disk %u, which is not copied",
				idx);
	if ((r = walk_disk_runs(s, NULL, targets[idx].size, &covered, err, n)) ||
	    (r = walk_disk_runs(s, &targets[idx], targets[idx].size, &covered, err, n)))
		return r;
	*bytes += covered;
	return 0;
}
