/* copy_storage's two ends (migrate_disk.h). */
#include "vmm/migrate_disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK VIRTIO_BLK_LOG_CHUNK

/* ---- source ---- */

int disk_copy_src_start(struct disk_copy_src *s, struct vm *vm, struct vmstate_writer *w, char *err,
			size_t n)
{
	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; i < vm->cfg.ndisks; i++) {
		struct virtio_blk *b = vm->blk[i];
		if (b->disk.readonly)
			continue; /* read-only images are the same at both ends, or not at all */
		if (b->disk.ovl)
			return fail_msg(err, n, -EINVAL,
					"'copy_storage': disk %u is a tern overlay; raw and qcow2 "
					"images are copied",
					i);
		uint64_t chunks = (b->disk.size + CHUNK - 1) / CHUNK;
		uint8_t *log = atomic_load(&b->write_log);
		if (!log && !(log = calloc((chunks + 7) / 8, 1)))
			return fail_msg(err, n, -ENOMEM, "out of memory");
		s->d[s->n] = (typeof(s->d[0])){ .index = i,
						.disk = &b->disk,
						.size = b->disk.size,
						.chunks = chunks,
						.pending = calloc((chunks + 7) / 8, 1),
						.all = true };
		if (!s->d[s->n].pending)
			return fail_msg(err, n, -ENOMEM, "out of memory");
		/* Logging starts before the first read of the image: no write is missed. */
		memset(log, 0, (chunks + 7) / 8);
		atomic_store(&b->write_log, log);
		s->n++;
	}
	vmstate_begin(w, VMSTATE_TAG_MIG_DISKS, 0, MIG_SECTION_VERSION);
	vmstate_put_u32(w, s->n);
	for (unsigned int i = 0; i < s->n; i++) {
		vmstate_put_u32(w, s->d[i].index);
		vmstate_put_u64(w, s->d[i].size);
	}
	vmstate_end(w);
	return 0;
}

void disk_copy_src_collect(struct disk_copy_src *s, struct vm *vm)
{
	for (unsigned int i = 0; i < s->n; i++) {
		uint8_t *log = atomic_load(&vm->blk[s->d[i].index]->write_log);
		for (uint64_t j = 0; log && j < (s->d[i].chunks + 7) / 8; j++)
			s->d[i].pending[j] |= __atomic_exchange_n(&log[j], 0, __ATOMIC_RELAXED);
	}
}

uint64_t disk_copy_src_pending(const struct disk_copy_src *s)
{
	uint64_t bytes = 0;

	for (unsigned int i = 0; i < s->n; i++) {
		if (s->d[i].all) {
			bytes += s->d[i].size;
			continue;
		}
		for (uint64_t j = 0; j < (s->d[i].chunks + 7) / 8; j++)
			bytes += (uint64_t)__builtin_popcount(s->d[i].pending[j]) * CHUNK;
	}
	return bytes;
}

/*
 * Chunks from c on that the first pass leaves out because they read as zeros, 0 when c
 * holds data; len is c's length. A raw file's hole at c, up to its next data (to the end
 * when there is none); for a qcow2 image, c alone when qcow2 knows without I/O that it
 * reads as zeros (nothing in the chain maps it, or a hole of the raw file below).
 */
static uint64_t hole_chunks(struct disk *disk, uint64_t c, uint64_t len, uint64_t chunks)
{
	struct qcow2_place p = { .kind = QCOW2_PLACE_FILE, .fd = disk->fd, .off = c * CHUNK };

	if (disk->qcow && qcow2_place(disk->qcow, false, c * CHUNK, len, &p))
		return 0;
	if (p.kind == QCOW2_PLACE_ZERO)
		return 1;
	off_t data = lseek(p.fd, (off_t)p.off, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? (disk->qcow ? 1 : chunks - c) : 0;
	if ((uint64_t)data < p.off + len)
		return 0;
	return disk->qcow ? 1 : (uint64_t)data / CHUNK - c;
}

/* One chunk (or the tail of the disk) as a run; a section per CHUNKS_PER_SECTION. */
static int send_chunk(struct vmstate_writer *w, struct disk *disk, uint64_t off, uint64_t len,
		      uint8_t *buf)
{
	/* Zeros past the end of a raw file that shrank; qcow2's code is safe beside the VM's I/O. */
	memset(buf, 0, len);
	int e = disk_rw_sync(disk, DISK_READ, buf, off, len);
	if (e)
		return e;
	bool z = mem_is_zero(buf, len);
	vmstate_put_u64(w, off);
	vmstate_put_u32(w, (uint32_t)len);
	vmstate_put_u8(w, z ? MIG_RUN_ZERO : MIG_RUN_DATA);
	if (!z)
		vmstate_put(w, buf, len);
	return 0;
}

int disk_copy_src_send(struct disk_copy_src *s, struct vmstate_writer *w,
		       const _Atomic bool *cancel)
{
	uint8_t *buf = malloc(CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (unsigned int i = 0; i < s->n && !r; i++) {
		typeof(s->d[0]) *d = &s->d[i];
		bool open = false;
		for (uint64_t c = 0; c < d->chunks && !r && !w->err; c++) {
			if (atomic_load(cancel)) {
				r = -ECANCELED;
				break;
			}
			uint64_t len = d->size - c * CHUNK < CHUNK ? d->size - c * CHUNK : CHUNK;
			if (d->all) {
				/* The first time, only what the image holds: holes stay holes. */
				uint64_t skip = hole_chunks(d->disk, c, len, d->chunks);
				if (skip) {
					c += skip - 1;
					continue;
				}
			} else if (!(d->pending[c / 8] & (1u << (c % 8)))) {
				continue;
			}
			d->pending[c / 8] &= (uint8_t) ~(1u << (c % 8));
			if (open && w->len + CHUNK + 32 > MIG_DISK_SECTION_MAX) {
				vmstate_end(w);
				open = false;
			}
			if (!open) {
				vmstate_begin(w, VMSTATE_TAG_MIG_DISK, 0, MIG_SECTION_VERSION);
				vmstate_put_u32(w, d->index);
				open = true;
			}
			r = send_chunk(w, d->disk, c * CHUNK, len, buf);
		}
		if (open)
			vmstate_end(w);
		if (!r && !atomic_load(cancel))
			d->all = false;
	}
	free(buf);
	return r ? r : w->err;
}

void disk_copy_src_stop(struct disk_copy_src *s, struct vm *vm)
{
	for (unsigned int i = 0; i < s->n; i++) {
		atomic_store(&vm->blk[s->d[i].index]->write_log, NULL);
		free(s->d[i].pending);
		s->d[i].pending = NULL;
	}
	s->n = 0;
}

/* ---- destination ---- */

/*
 * A jailed destination cannot create the image (its jail holds only files that exist):
 * ternd makes it beforehand, empty and the jail's uid's, and binds it in. Such a file,
 * and no other, is taken as if just created; root's files never are.
 */
static int open_made_for_us(const char *path)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -1;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size == 0 && st.st_uid != 0 &&
	    st.st_uid == geteuid())
		return fd;
	close(fd);
	errno = EEXIST;
	return -1;
}

int disk_copy_dst_prepare(struct disk_copy_dst *d, const struct vmstate_section *s,
			  struct vmm_config *cfg, char *err, size_t n)
{
	struct vmstate_cursor c;

	memset(d, 0, sizeof(*d));
	for (unsigned int i = 0; i < MIG_MAX_DISKS; i++)
		d->t[i].fd = -1;
	d->n = cfg->ndisks;
	vmstate_cursor_init(&c, s);
	uint32_t count = vmstate_get_u32(&c);
	if (s->version != MIG_SECTION_VERSION || c.error || count > cfg->ndisks)
		return fail_msg(err, n, -EINVAL, "a disk list this tern-vmm does not read");
	for (uint32_t k = 0; k < count; k++) {
		uint32_t i = vmstate_get_u32(&c);
		uint64_t size = vmstate_get_u64(&c);
		if (c.error || i >= cfg->ndisks || d->t[i].fd >= 0 || cfg->disks[i].readonly ||
		    size % 512 || !size)
			return fail_msg(err, n, -EINVAL, "the disk list names disk %u wrongly", i);
		const char *path = cfg->disks[i].path;
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			fd = open_made_for_us(path);
		if (fd < 0) {
			int e = errno;
			disk_copy_dst_abort(d, cfg);
			return fail_msg(
				err, n, -e, "'copy_storage': cannot create disk '%s' here: %s%s",
				path, strerror(e),
				e == EEXIST ? " (a destination does not write over an image; "
					      "remove it or give another path_on_host)" :
					      "");
		}
		d->t[i] = (struct mig_disk_target){ fd, size };
		d->created[i] = true;
		/*
		 * The copy is raw, also of a qcow2 image, and opens as raw: probed, a flattened
		 * qcow2's first sector (the guest's to write) could pass for a qcow2 header.
		 */
		cfg->disks[i].format = DISK_FORMAT_RAW;
		if (ftruncate(fd, (off_t)size) < 0) {
			int e = errno;
			disk_copy_dst_abort(d, cfg);
			return fail_msg(err, n, -e, "'copy_storage': cannot size disk '%s': %s",
					path, strerror(e));
		}
	}
	if (vmstate_cursor_done(&c)) {
		disk_copy_dst_abort(d, cfg);
		return fail_msg(err, n, -EINVAL, "a disk list with bytes after its last disk");
	}
	return 0;
}

int disk_copy_dst_finish(struct disk_copy_dst *d, char *err, size_t n)
{
	for (unsigned int i = 0; i < d->n; i++) {
		if (d->t[i].fd < 0)
			continue;
		if (fsync(d->t[i].fd) < 0)
			return fail_msg(err, n, -errno, "cannot sync the copy of disk %u: %s", i,
					strerror(errno));
		close(d->t[i].fd);
		d->t[i].fd = -1;
	}
	return 0;
}

void disk_copy_dst_abort(struct disk_copy_dst *d, const struct vmm_config *cfg)
{
	for (unsigned int i = 0; i < d->n && i < MIG_MAX_DISKS; i++) {
		if (d->t[i].fd >= 0)
			close(d->t[i].fd);
		d->t[i].fd = -1;
		if (d->created[i] && unlink(cfg->disks[i].path) == 0)
			log_info("migration: removed the partial copy '%s'", cfg->disks[i].path);
		d->created[i] = false;
	}
}
