/*
 * Creating snapshots of a paused VM and loading them into a fresh process (snapshot.h).
 *
 * Section order in the state file: MACHINE (what to build), MEMORY (which memory file),
 * then what KVM holds (kvmclock, irqchip, PIT, each vCPU), then the legacy devices, then
 * each virtio device (transport + core under VMSTATE_TAG_VIRTIO, instance = its place in
 * the VM; its own state under its kind's tag, instance = its place among its kind).
 */
#include "vmm/snapshot.h"
#include "core/log.h"
#include "core/util.h"
#include "backend/disk_chain.h"
#include "vmm/clone.h"
#include "vmm/kvm_state.h"
#include "vmm/machine_state.h"
#include "vmm/vm.h"
#include "virtio/pci.h"
#include "vmstate/describe.h"
#include "vmstate/mem_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMORY_STATE_VERSION 1
#define DRAIN_TIMEOUT_MS 10000
#define STATE_FILE_MAX (1ULL << 30)

/* ---- the virtio devices, in the order virtio_setup() attached them ---- */

enum vdev_kind { VDEV_BLK, VDEV_RNG, VDEV_NET, VDEV_VSOCK };

struct vdev {
	enum vdev_kind kind;
	unsigned int index; /* among its kind */
	void *dev;
	struct virtio_dev *core;
};

static unsigned int list_vdevs(struct vm *vm, struct vdev *out)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < vm->cfg.ndisks; i++)
		out[n++] = (struct vdev){ VDEV_BLK, i, vm->blk[i], &vm->blk[i]->dev };
	if (vm->rng)
		out[n++] = (struct vdev){ VDEV_RNG, 0, vm->rng, &vm->rng->dev };
	for (unsigned int i = 0; i < vm->cfg.nnets; i++)
		out[n++] = (struct vdev){ VDEV_NET, i, vm->net[i], &vm->net[i]->dev };
	if (vm->vsock)
		out[n++] = (struct vdev){ VDEV_VSOCK, 0, vm->vsock, &vm->vsock->dev };
	return n;
}

static const uint32_t vdev_tags[] = { VMSTATE_TAG_VIRTIO_BLK, VMSTATE_TAG_VIRTIO_RNG,
				      VMSTATE_TAG_VIRTIO_NET, VMSTATE_TAG_VIRTIO_VSOCK };

static const uint32_t vdev_versions[] = { VIRTIO_BLK_STATE_VERSION, VIRTIO_RNG_STATE_VERSION,
					  VIRTIO_NET_STATE_VERSION, VIRTIO_VSOCK_STATE_VERSION };

#define MAX_VDEVS (VMM_MAX_DISKS + VMM_MAX_NETS + 2)

/* ---- dirty pages ---- */

static uint64_t bitmap_bytes(const struct vm *vm)
{
	return (vm->mem.size / MEM_FILE_PAGE + 7) / 8;
}

/* ORs a KVM log (64-bit words, bit = page of the slot) into bm from page first on. */
static void merge_log(uint8_t *bm, const uint64_t *log, uint64_t first, uint64_t pages)
{
	for (uint64_t p = 0; p < pages; p++) {
		if (!log[p / 64]) { /* most of a log is zero words: skip them whole */
			p |= 63;
			continue;
		}
		if (log[p / 64] & (1ULL << (p % 64)))
			bm[(first + p) / 8] |= (uint8_t)(1u << ((first + p) % 8));
	}
}

int snapshot_collect_dirty(struct vm *vm, uint8_t *out)
{
	uint64_t low = vm->mem.low_size / MEM_FILE_PAGE;
	uint64_t high = guest_mem_high_size(&vm->mem) / MEM_FILE_PAGE;
	uint64_t *log = calloc((low > high ? low : high) / 64 + 1, 8);
	int r;

	if (!log)
		return -ENOMEM;
	if (!(r = kvm_get_dirty_log(&vm->kvm, 0, log)))
		merge_log(out, log, 0, low);
	if (!r && high) {
		memset(log, 0, (high / 64 + 1) * 8);
		if (!(r = kvm_get_dirty_log(&vm->kvm, 1, log)))
			merge_log(out, log, low, high);
	}
	free(log);
	guest_mem_take_dirty(&vm->mem, out);
	return r;
}

/* ---- writing ---- */

/* A temporary file next to path, so that rename() is atomic. */
static int open_tmp(const char *path, char *tmp, size_t len)
{
	if ((size_t)snprintf(tmp, len, "%s.tmp-%d", path, (int)getpid()) >= len)
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

static int write_devices(struct vm *vm, struct vmstate_writer *w, char *err, size_t n)
{
	struct vdev v[MAX_VDEVS];
	unsigned int nv = list_vdevs(vm, v);

	vmstate_begin(w, VMSTATE_TAG_SERIAL, 0, SERIAL_STATE_VERSION);
	serial_save(&vm->serial, w);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_I8042, 0, I8042_STATE_VERSION);
	i8042_save(&vm->i8042, w);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_RTC, 0, RTC_STATE_VERSION);
	rtc_save(&vm->rtc, w);
	vmstate_end(w);
	vmstate_begin(w, VMSTATE_TAG_GED, 0, GED_STATE_VERSION);
	ged_save(&vm->ged, w);
	vmstate_end(w);
	if (vm->cfg.transport == TRANSPORT_PCI) {
		vmstate_begin(w, VMSTATE_TAG_PCI, 0, PCI_STATE_VERSION);
		pci_save(&vm->pci, w);
		vmstate_end(w);
	}
	for (unsigned int i = 0; i < nv; i++) {
		vmstate_begin(w, VMSTATE_TAG_VIRTIO, i, VIRTIO_STATE_VERSION);
		if (vm->cfg.transport == TRANSPORT_PCI)
			virtio_pci_save(virtio_pci_of(v[i].core), w);
		else
			virtio_mmio_save(&vm->mmio_dev[i], w);
		vmstate_end(w);
		vmstate_begin(w, vdev_tags[v[i].kind], v[i].index, vdev_versions[v[i].kind]);
		switch (v[i].kind) {
		case VDEV_BLK:
			virtio_blk_save(v[i].dev, w);
			break;
		case VDEV_RNG:
			virtio_rng_save(v[i].dev, w);
			break;
		case VDEV_NET:
			virtio_net_save(v[i].dev, w);
			break;
		case VDEV_VSOCK:
			virtio_vsock_save(v[i].dev, w);
			break;
		}
		vmstate_end(w);
	}
	return 0;
}

int snapshot_write_state(struct vm *vm, int fd, const struct mem_file_info *mem, char *err,
			 size_t n)
{
	struct vmstate_writer w;
	uint64_t t[6];
	int r;

	t[0] = monotonic_ns();
	if ((r = vmstate_writer_init(&w, fd)))
		return fail_msg(err, n, r, "cannot write the state file: %s", strerror(-r));
	vmstate_begin(&w, VMSTATE_TAG_MACHINE, 0, MACHINE_STATE_VERSION);
	machine_state_save(&vm->cfg, &w);
	vmstate_end(&w);
	vmstate_begin(&w, VMSTATE_TAG_MEMORY, 0, MEMORY_STATE_VERSION);
	vmstate_put_u8(&w, (uint8_t)mem->kind);
	vmstate_put_u64(&w, mem->size);
	vmstate_put(&w, mem->id, 16);
	vmstate_end(&w);
	vmstate_begin(&w, VMSTATE_TAG_CLOCK, 0, CLOCK_STATE_VERSION);
	r = clock_state_save(vm, &w, err, n);
	vmstate_end(&w);
	t[1] = monotonic_ns();
	vmstate_begin(&w, VMSTATE_TAG_IRQCHIP, 0, IRQCHIP_STATE_VERSION);
	r = r ? r : irqchip_state_save(vm, &w, err, n);
	vmstate_end(&w);
	vmstate_begin(&w, VMSTATE_TAG_PIT, 0, PIT_STATE_VERSION);
	r = r ? r : pit_state_save(vm, &w, err, n);
	vmstate_end(&w);
	t[2] = monotonic_ns();
	for (unsigned int i = 0; i < vm->ncpus && !r; i++) {
		vmstate_begin(&w, VMSTATE_TAG_VCPU, i, VCPU_STATE_VERSION);
		r = vcpu_state_save(&vm->vcpus[i], &w, err, n);
		vmstate_end(&w);
	}
	t[3] = monotonic_ns();
	if (!r)
		r = write_devices(vm, &w, err, n);
	t[4] = monotonic_ns();
	int wr = vmstate_writer_finish(&w);
	t[5] = monotonic_ns();
	/* What a snapshot's or a switchover's state took, for whoever has to make it shorter. */
	log_debug("state written: clock %.2f ms, irqchip and PIT %.2f ms, %u vCPUs %.2f ms, "
		  "devices %.2f ms, %llu bytes out %.2f ms",
		  (t[1] - t[0]) / 1e6, (t[2] - t[1]) / 1e6, vm->ncpus, (t[3] - t[2]) / 1e6,
		  (t[4] - t[3]) / 1e6, (unsigned long long)w.written, (t[5] - t[4]) / 1e6);
	if (r)
		return r;
	if (wr)
		return fail_msg(err, n, wr, "cannot write the state file: %s", strerror(-wr));
	return 0;
}

int snapshot_quiesce_disks(struct vm *vm, char *err, size_t n)
{
	int r;

	for (unsigned int i = 0; i < vm->cfg.ndisks; i++) {
		if ((r = virtio_blk_drain(vm->blk[i], DRAIN_TIMEOUT_MS)))
			return fail_msg(err, n, r, "disk %u did not finish its requests: %s", i,
					strerror(-r));
		if (!vm->blk[i]->disk.readonly && (r = disk_flush_now(&vm->blk[i]->disk)))
			return fail_msg(err, n, r, "cannot flush disk %u: %s", i, strerror(-r));
	}
	return 0;
}

/*
 * Refuses, before anything is written, what would leave no good snapshot behind: a target
 * that is a directory (the final rename would fail after the memory file was replaced),
 * or a diff written over a memory file it builds on.
 */
static int check_targets(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
			 char *err, size_t n)
{
	struct stat st;
	char abs[PATH_MAX];

	if (stat(state_path, &st) == 0 && !S_ISREG(st.st_mode))
		return fail_msg(err, n, -EINVAL, "'snapshot_path': '%s' exists and is not a file",
				state_path);
	if (stat(mem_path, &st) == 0 && !S_ISREG(st.st_mode))
		return fail_msg(err, n, -EINVAL, "'mem_file_path': '%s' exists and is not a file",
				mem_path);
	if (diff && realpath(mem_path, abs)) {
		char why[512];
		int r = mem_file_check_chain(vm->last_mem.path, vm->mem.size, vm->last_mem.id, abs,
					     why, sizeof(why));
		if (r)
			return fail_msg(err, n, r, "'mem_file_path': %s", why);
	}
	return 0;
}

/* The memory file the next diff snapshot builds on (by absolute path, as diffs record it). */
static void remember_base(struct vm *vm, const char *mem_path, const uint8_t id[16])
{
	char abs[PATH_MAX];

	vm->last_mem.valid = realpath(mem_path, abs) && strlen(abs) < sizeof(vm->last_mem.path);
	if (!vm->last_mem.valid)
		return;
	strcpy(vm->last_mem.path, abs);
	memcpy(vm->last_mem.id, id, 16);
}

int vm_snapshot_create(struct vm *vm, const char *state_path, const char *mem_path, bool diff,
		       char *err, size_t n)
{
	char state_tmp[PATH_MAX], mem_tmp[PATH_MAX];
	struct mem_file_info info, base = { 0 };
	int sfd = -1, mfd = -1, r;

	if (!vm_is_paused(vm))
		return fail_msg(err, n, -EINVAL,
				"the microVM must be paused (PATCH /vm Paused) first");
	if (diff && !vm->cfg.track_dirty)
		return fail_msg(err, n, -EINVAL,
				"a Diff snapshot needs track_dirty_pages (machine-config, or "
				"snapshot/load)");
	if (diff && !vm->last_mem.valid)
		return fail_msg(
			err, n, -EINVAL,
			"a Diff snapshot needs an earlier snapshot of this VM to build on (a "
			"Full one, or the one it was restored from)");
	if ((r = check_targets(vm, state_path, mem_path, diff, err, n)))
		return r;
	/* Everything the guest asked of its disks completes and is durable first. */
	if ((r = snapshot_quiesce_disks(vm, err, n)))
		return r;
	if (vm->cfg.track_dirty && (r = snapshot_collect_dirty(vm, vm->dirty_pending)))
		return fail_msg(err, n, r, "cannot read the dirty page log: %s", strerror(-r));

	if ((mfd = open_tmp(mem_path, mem_tmp, sizeof(mem_tmp))) < 0) {
		r = fail_msg(err, n, mfd, "'mem_file_path': cannot create '%s': %s", mem_tmp,
			     strerror(-mfd));
		mfd = -1;
		goto fail;
	}
	if ((sfd = open_tmp(state_path, state_tmp, sizeof(state_tmp))) < 0) {
		r = fail_msg(err, n, sfd, "'snapshot_path': cannot create '%s': %s", state_tmp,
			     strerror(-sfd));
		sfd = -1;
		goto fail;
	}
	if (diff) {
		memcpy(base.id, vm->last_mem.id, 16);
		snprintf(base.base_path, sizeof(base.base_path), "%s", vm->last_mem.path);
	}
	if ((r = mem_file_write(&vm->mem, mfd, diff ? vm->dirty_pending : NULL, &base, &info)) ||
	    (fsync(mfd) < 0 && (r = -errno))) {
		fail_msg(err, n, r, "cannot write the memory file: %s", strerror(-r));
		goto fail;
	}
	if ((r = snapshot_write_state(vm, sfd, &info, err, n)))
		goto fail;
	if (fsync(sfd) < 0) {
		r = fail_msg(err, n, -errno, "cannot write the state file: %s", strerror(errno));
		goto fail;
	}
	/* The memory file first: a state file is never visible without its memory. */
	if (rename(mem_tmp, mem_path) < 0 || fsync_dir_of(mem_path) ||
	    rename(state_tmp, state_path) < 0 || fsync_dir_of(state_path)) {
		r = fail_msg(err, n, -errno, "cannot put the snapshot in place: %s",
			     strerror(errno));
		goto fail;
	}
	close(mfd);
	close(sfd);
	remember_base(vm, mem_path, info.id);
	if (vm->dirty_pending)
		memset(vm->dirty_pending, 0, bitmap_bytes(vm));
	log_info("snapshot written: %s (%s, memory in %s)", state_path, diff ? "diff" : "full",
		 mem_path);
	return 0;
fail:
	if (mfd >= 0) {
		close(mfd);
		unlink(mem_tmp);
	}
	if (sfd >= 0) {
		close(sfd);
		unlink(state_tmp);
	}
	return r;
}

/* ---- loading ---- */

int snapshot_apply_overrides(struct vmm_config *cfg, const struct restore_overrides *o, char *err,
			     size_t n)
{
	char why[256];

	for (unsigned int i = 0; i < o->nnets; i++) {
		unsigned int j;
		for (j = 0; j < cfg->nnets; j++)
			if (!strcmp(cfg->nets[j].id, o->nets[i].iface_id))
				break;
		if (j == cfg->nnets)
			return fail_msg(err, n, -EINVAL,
					"'network_overrides': the snapshot has no interface '%s'",
					o->nets[i].iface_id);
		cfg->nets[j].kind = NET_TAP;
		snprintf(cfg->nets[j].tap_name, sizeof(cfg->nets[j].tap_name), "%s",
			 o->nets[i].host_dev_name);
	}
	if (o->vsock_uds) {
		if (!cfg->vsock.enabled)
			return fail_msg(err, n, -EINVAL,
					"'vsock_override': the snapshot has no vsock");
		if (vsock_uds_check_path(o->vsock_uds, why, sizeof(why)) < 0)
			return fail_msg(err, n, -EINVAL, "'vsock_override': %s", why);
		snprintf(cfg->vsock.path, sizeof(cfg->vsock.path), "%s", o->vsock_uds);
	}
	for (unsigned int k = 0; k < o->ndisks; k++) {
		int i = config_drive_index(cfg, o->disks[k].drive_id);
		if (i < 0)
			return fail_msg(err, n, -EINVAL, "the VM has no drive '%s'",
					o->disks[k].drive_id);
		char *p = strdup(o->disks[k].path);
		if (!p)
			return fail_msg(err, n, -ENOMEM, "out of memory");
		free(cfg->disks[i].path); /* the state file's, machine_state_restore()'s copy */
		cfg->disks[i].path = p;
		if (o->disks[k].has_format)
			cfg->disks[i].format = o->disks[k].format;
	}
	return 0;
}

int snapshot_load_prepare(struct snapshot_load *l, const char *state_path, const char *mem_path,
			  const struct vmm_config *base, const struct restore_overrides *o,
			  char *err, size_t n)
{
	size_t len;
	int r;

	memset(l, 0, sizeof(*l));
	r = file_read_all(state_path, &l->buf, &len);
	if (r == -EINVAL)
		return fail_msg(err, n, r, "'snapshot_path': '%s' is not a regular file",
				state_path);
	if (r)
		return fail_msg(err, n, r, "'snapshot_path': cannot read '%s': %s", state_path,
				strerror(-r));
	if (len > STATE_FILE_MAX)
		return fail_msg(err, n, -EINVAL,
				"'snapshot_path': '%s' is larger than a state file", state_path);
	char why[256];
	if (vmstate_file_parse(&l->file, l->buf, len, why, sizeof(why)))
		return fail_msg(err, n, -EINVAL, "'snapshot_path': '%s': %s", state_path, why);

	struct vmstate_cursor c;
	const struct vmstate_section *s = vmstate_find(&l->file, VMSTATE_TAG_MACHINE, 0);
	if (!s || s->version != MACHINE_STATE_VERSION)
		return fail_msg(err, n, -EINVAL, "'%s': no machine section this tern-vmm reads",
				state_path);
	/* The command line's process settings stay; the machine comes from the file. */
	l->cfg = *base;
	vmstate_cursor_init(&c, s);
	if ((r = machine_state_restore(&l->cfg, &c, why, sizeof(why))))
		return fail_msg(err, n, r, "'%s': %s", state_path, why);
	s = vmstate_find(&l->file, VMSTATE_TAG_MEMORY, 0);
	if (!s || s->version != MEMORY_STATE_VERSION)
		return fail_msg(err, n, -EINVAL, "'%s': no memory section this tern-vmm reads",
				state_path);
	vmstate_cursor_init(&c, s);
	uint8_t kind = vmstate_get_u8(&c);
	uint64_t size = vmstate_get_u64(&c);
	vmstate_get(&c, l->mem_id, 16);
	if (vmstate_cursor_done(&c) || kind > MEM_FILE_DIFF || size != l->cfg.mem_mib << 20)
		return fail_msg(err, n, -EINVAL,
				"'%s': its memory section does not match its machine", state_path);

	if ((r = snapshot_apply_overrides(&l->cfg, o, err, n)))
		return r;
	l->cfg.track_dirty = o->track_dirty;
	l->cfg.clone = o->clone;
	if (o->huge_pages_set) {
		l->cfg.huge_pages = o->huge_pages;
		l->cfg.huge_pages_given = true;
	}
	if (l->cfg.huge_pages_given && l->cfg.huge_pages == HUGE_PAGES_2M && l->cfg.mem_mib % 2)
		return fail_msg(err, n, -EINVAL,
				"'huge_pages' 2M: the snapshot's %llu MiB of RAM are not a whole "
				"number of 2 MiB pages",
				(unsigned long long)l->cfg.mem_mib);
	/* The memory file (and a diff's bases) are checked now too, while nothing is built. */
	if ((r = mem_file_check_chain(mem_path, size, l->mem_id, NULL, why, sizeof(why))))
		return fail_msg(err, n, r, "'mem_backend': %s (state file '%s')", why, state_path);
	if (o->clone && (r = clone_identity(&l->cfg, o->vsock_uds != NULL, why, sizeof(why))))
		return fail_msg(err, n, r, "%s", why);
	/* A disk the original VM still holds would only fail once the machine is half built. */
	for (unsigned int i = 0; i < l->cfg.ndisks; i++) {
		const struct disk_config *d = &l->cfg.disks[i];
		if ((r = disk_lock_holder(d->path, d->readonly)) < 0)
			return fail_msg(err, n, r, "disk '%s' of the snapshot: %s", d->path,
					strerror(-r));
		if (r)
			return fail_msg(
				err, n, -EBUSY,
				"disk '%s' of the snapshot is in use by another process (the "
				"VM it was taken of? stop it, or restore with tern_clone / "
				"--clone)",
				d->path);
		if ((r = disk_chain(d->path, d->format, NULL, 0, why, sizeof(why))) < 0)
			return fail_msg(err, n, r, "disk '%s' of the snapshot: %s", d->path, why);
	}
	return 0;
}

static int restore_section(const struct vmstate_file *f, uint32_t tag, uint32_t instance,
			   uint32_t version, struct vmstate_cursor *c, char *err, size_t n)
{
	const struct vmstate_section *s = vmstate_find(f, tag, instance);

	if (!s)
		return fail_msg(err, n, -EINVAL, "the state file has no %s %u section",
				vmstate_tag_name(tag), instance);
	if (s->version != version)
		return fail_msg(err, n, -EINVAL,
				"%s %u: section version %u; this tern-vmm reads version %u",
				vmstate_tag_name(tag), instance, s->version, version);
	vmstate_cursor_init(c, s);
	return 0;
}

static int restore_devices(const struct vmstate_file *l, struct vm *vm, char *err, size_t n)
{
	struct vmstate_cursor c;
	struct vdev v[MAX_VDEVS];
	unsigned int nv = list_vdevs(vm, v);
	int r;

	if ((r = restore_section(l, VMSTATE_TAG_SERIAL, 0, SERIAL_STATE_VERSION, &c, err, n)) ||
	    (r = serial_restore(&vm->serial, &c, err, n)) ||
	    (r = restore_section(l, VMSTATE_TAG_I8042, 0, I8042_STATE_VERSION, &c, err, n)) ||
	    (r = i8042_restore(&vm->i8042, &c, err, n)) ||
	    (r = restore_section(l, VMSTATE_TAG_RTC, 0, RTC_STATE_VERSION, &c, err, n)) ||
	    (r = rtc_restore(&vm->rtc, &c, err, n)) ||
	    (r = restore_section(l, VMSTATE_TAG_GED, 0, GED_STATE_VERSION, &c, err, n)) ||
	    (r = ged_restore(&vm->ged, &c, err, n)))
		return r;
	if (vm->cfg.transport == TRANSPORT_PCI &&
	    ((r = restore_section(l, VMSTATE_TAG_PCI, 0, PCI_STATE_VERSION, &c, err, n)) ||
	     (r = pci_restore(&vm->pci, &c, err, n))))
		return r;
	for (unsigned int i = 0; i < nv; i++) {
		if ((r = restore_section(l, VMSTATE_TAG_VIRTIO, i, VIRTIO_STATE_VERSION, &c, err,
					 n)))
			return r;
		r = vm->cfg.transport == TRANSPORT_PCI ?
			    virtio_pci_restore(virtio_pci_of(v[i].core), &c, err, n) :
			    virtio_mmio_restore(&vm->mmio_dev[i], &c, err, n);
		if (r || (r = restore_section(l, vdev_tags[v[i].kind], v[i].index,
					      vdev_versions[v[i].kind], &c, err, n)))
			return r;
		switch (v[i].kind) {
		case VDEV_BLK:
			r = virtio_blk_restore(v[i].dev, &c, err, n);
			break;
		case VDEV_RNG:
			r = virtio_rng_restore(v[i].dev, &c, err, n);
			break;
		case VDEV_NET:
			r = virtio_net_restore(v[i].dev, &c, err, n);
			break;
		case VDEV_VSOCK:
			r = virtio_vsock_restore(v[i].dev, &c, err, n);
			break;
		}
		if (r)
			return r;
	}
	return 0;
}

int snapshot_restore_state(const struct vmstate_file *f, struct vm *vm, bool catch_up_clock,
			   char *err, size_t n)
{
	const struct vmstate_section *clock = vmstate_find(f, VMSTATE_TAG_CLOCK, 0);
	/* Files from before the clock section had the real time still restore. */
	uint32_t clock_version = clock && clock->version == CLOCK_STATE_VERSION_OLD ?
					 CLOCK_STATE_VERSION_OLD :
					 CLOCK_STATE_VERSION;
	struct vmstate_cursor c;
	int r;

	if ((r = restore_section(f, VMSTATE_TAG_CLOCK, 0, clock_version, &c, err, n)) ||
	    (r = clock_state_restore(vm, &c, clock_version, catch_up_clock, err, n)) ||
	    (r = restore_section(f, VMSTATE_TAG_IRQCHIP, 0, IRQCHIP_STATE_VERSION, &c, err, n)) ||
	    (r = irqchip_state_restore(vm, &c, err, n)) ||
	    (r = restore_section(f, VMSTATE_TAG_PIT, 0, PIT_STATE_VERSION, &c, err, n)) ||
	    (r = pit_state_restore(vm, &c, err, n)))
		return r;
	for (unsigned int i = 0; i < vm->ncpus; i++)
		if ((r = restore_section(f, VMSTATE_TAG_VCPU, i, VCPU_STATE_VERSION, &c, err, n)) ||
		    (r = vcpu_state_restore(&vm->vcpus[i], &c, err, n)))
			return r;
	if ((r = restore_devices(f, vm, err, n)))
		return r;
	/* After the irqchip and LAPICs are loaded, so that the notification is not lost. */
	if (vm->cfg.clone)
		vmgenid_changed(&vm->vmgenid);
	return 0;
}

/* --huge-pages transparent or 2M given (or huge_pages in PUT /snapshot/load). */
static bool restore_wants_ram(const struct vmm_config *c)
{
	return c->huge_pages_given && c->huge_pages != HUGE_PAGES_NONE;
}

int snapshot_load_apply(struct snapshot_load *l, struct vm *vm, struct loop *loop,
			const char *mem_path, char *err, size_t n)
{
	struct vm_restore_mem rm = { .path = mem_path };
	struct guest_mem ram;
	int r;

	memcpy(rm.id, l->mem_id, 16);
	/*
	 * Huge pages asked for: RAM as a boot makes it, the file read into it (slower than
	 * mapping the file, which would give 4 KiB pages of the page cache). A host short of
	 * 2 MiB pages is an error here, before anything is built.
	 */
	if (restore_wants_ram(&l->cfg)) {
		char why[320];
		if ((r = vm_ram_create(&ram, &l->cfg, err, n)))
			return r;
		if ((r = mem_file_load(&ram, mem_path, l->mem_id, why, sizeof(why)))) {
			guest_mem_destroy(&ram);
			return fail_msg(err, n, r, "'mem_backend': %s", why);
		}
		rm.mem = &ram;
	}
	vm_create(vm, &l->cfg, loop, NULL, &rm);
	l->built = true;
	if ((r = snapshot_restore_state(&l->file, vm, false, err, n)))
		return r;
	/* A diff snapshot of this VM builds on the memory file it came from. */
	remember_base(vm, mem_path, l->mem_id);
	return 0;
}

void snapshot_load_free(struct snapshot_load *l)
{
	vmstate_file_free(&l->file);
	free(l->buf);
	l->buf = NULL;
}

void snapshot_resume_devices(struct vm *vm)
{
	struct vdev v[MAX_VDEVS];
	unsigned int nv = list_vdevs(vm, v);

	for (unsigned int i = 0; i < nv; i++)
		virtio_dev_resume_kick(v[i].core);
	/* The guest may sit on another link now: it tells its peers (QEMU does after loadvm). */
	for (unsigned int i = 0; i < vm->cfg.nnets; i++)
		virtio_net_announce(vm->net[i]);
}

int snapshot_describe(const char *path, FILE *out, char *err, size_t n)
{
	struct snapshot_load l;
	struct vmstate_cursor c;
	struct vmm_config cfg = { 0 };
	int r = vmstate_describe(path, out, err, n);

	if (r)
		return r;
	/* vmstate_describe() checked the whole file; only the layout of these is left. */
	memset(&l, 0, sizeof(l));
	size_t len;
	if (file_read_all(path, &l.buf, &len) || vmstate_file_parse(&l.file, l.buf, len, err, n)) {
		snapshot_load_free(&l);
		return fail_msg(err, n, -EIO, "'%s' changed while it was read", path);
	}
	const struct vmstate_section *s = vmstate_find(&l.file, VMSTATE_TAG_MACHINE, 0);
	if (s && s->version == MACHINE_STATE_VERSION) {
		vmstate_cursor_init(&c, s);
		char why[256];
		if (machine_state_restore(&cfg, &c, why, sizeof(why)) == 0)
			machine_state_describe(&cfg, out);
		else
			fprintf(out, "  machine: unreadable (%s)\n", why);
		for (unsigned int i = 0; i < cfg.ndisks; i++)
			free(cfg.disks[i].path);
	}
	s = vmstate_find(&l.file, VMSTATE_TAG_MEMORY, 0);
	if (s && s->version == MEMORY_STATE_VERSION) {
		vmstate_cursor_init(&c, s);
		uint8_t kind = vmstate_get_u8(&c);
		uint64_t size = vmstate_get_u64(&c);
		uint8_t id[16];
		vmstate_get(&c, id, 16);
		fprintf(out, "  memory: %s, %llu MiB, memory file id ", kind ? "diff" : "full",
			(unsigned long long)(size >> 20));
		for (int i = 0; i < 16; i++)
			fprintf(out, "%02x", id[i]);
		fputc('\n', out);
	}
	snapshot_load_free(&l);
	return 0;
}
