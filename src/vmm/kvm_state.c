/* Saving and restoring what KVM holds for each vCPU and for the VM (see kvm_state.h). */
#include "vmm/kvm_state.h"
#include "core/util.h"
#include "core/log.h"
#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define MAX_MSRS 512
#define MAX_CPUID 256
#define MSR_BATCH 256 /* KVM's MAX_IO_MSRS */

/* One KVM structure: its size, then its bytes. */
static void put_blob(struct vmstate_writer *w, const void *p, uint32_t len)
{
	vmstate_put_u32(w, len);
	vmstate_put(w, p, len);
}

static int get_blob(struct vmstate_cursor *c, void *p, uint32_t len, const char *what, char *err,
		    size_t n)
{
	uint32_t have = vmstate_get_u32(c);

	if (c->error || have != len)
		return fail_msg(err, n, -EINVAL, "%s: %u bytes stored, this host's KVM has %u",
				what, have, len);
	vmstate_get(c, p, len);
	return c->error ? fail_msg(err, n, -EINVAL, "%s: truncated", what) : 0;
}

/*
 * The MSRs to carry: every index KVM lists as saveable that this vCPU can actually read.
 * KVM_GET_MSRS reads a batch in order and stops at the first MSR it cannot read, returning
 * how many it read: that one is skipped and the batch goes on after it. A few calls for
 * the usual list of about a hundred instead of one per MSR, at every snapshot and at a
 * migration's switchover, while the VM is paused.
 */
static int read_msrs(const struct vm *vm, int fd, struct kvm_msr_entry *out, unsigned int *count)
{
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + MAX_MSRS * sizeof(uint32_t));
	struct kvm_msrs *req = calloc(1, sizeof(*req) + MAX_MSRS * sizeof(req->entries[0]));
	unsigned int n = 0;
	int r = 0;

	*count = 0;
	if (!list || !req) {
		r = -ENOMEM;
		goto out;
	}
	list->nmsrs = MAX_MSRS;
	if (ioctl(vm->kvm.sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		r = -errno;
		goto out;
	}
	uint32_t total = list->nmsrs < MAX_MSRS ? list->nmsrs : MAX_MSRS;
	for (uint32_t i = 0; i < total;) {
		/* KVM refuses a batch of MSR_BATCH or more (E2BIG). */
		req->nmsrs = total - i < MSR_BATCH ? total - i : MSR_BATCH - 1;
		for (uint32_t k = 0; k < req->nmsrs; k++)
			req->entries[k] = (struct kvm_msr_entry){ .index = list->indices[i + k] };
		int got = ioctl(fd, KVM_GET_MSRS, req);
		if (got < 0) {
			r = -errno;
			goto out;
		}
		if ((uint32_t)got > req->nmsrs)
			got = (int)req->nmsrs; /* never from KVM: only what was asked is kept */
		memcpy(&out[n], req->entries, (size_t)got * sizeof(req->entries[0]));
		n += (unsigned int)got;
		/* Stopped short: list->indices[i + got] is unreadable here, skip it. */
		i += (uint32_t)got + ((uint32_t)got < req->nmsrs);
	}
	*count = n;
out:
	free(list);
	free(req);
	return r;
}

/* KVM's CPUID and MSR arrays end in flexible members: allocated with room for the most. */
static struct kvm_cpuid2 *cpuid_alloc(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + MAX_CPUID * sizeof(c->entries[0]));

	if (c)
		c->nent = MAX_CPUID;
	return c;
}

int vcpu_state_save(struct vcpu *v, struct vmstate_writer *w, char *err, size_t n)
{
	struct vm *vm = v->vm;
	int fd = v->k.fd;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs = { 0 };
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	static struct kvm_msr_entry msrs[MAX_MSRS];
	unsigned int nmsrs = 0;
	bool has_xcrs = kvm_check_cap(&vm->kvm, KVM_CAP_XCRS) > 0;
	struct kvm_cpuid2 *cpuid = cpuid_alloc();
	int r;

	if (!cpuid)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	if (ioctl(fd, KVM_GET_CPUID2, cpuid) < 0) {
		r = fail_msg(err, n, -errno, "vCPU %u: KVM_GET_CPUID2: %s", v->k.id,
			     strerror(errno));
		free(cpuid);
		return r;
	}
	if (ioctl(fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(fd, KVM_GET_SREGS, &sregs) < 0 || ioctl(fd, KVM_GET_XSAVE, &xsave) < 0 ||
	    (has_xcrs && ioctl(fd, KVM_GET_XCRS, &xcrs) < 0) ||
	    ioctl(fd, KVM_GET_DEBUGREGS, &dregs) < 0 || ioctl(fd, KVM_GET_LAPIC, &lapic) < 0 ||
	    ioctl(fd, KVM_GET_VCPU_EVENTS, &events) < 0) {
		r = fail_msg(err, n, -errno, "vCPU %u: reading its state from KVM: %s", v->k.id,
			     strerror(errno));
		free(cpuid);
		return r;
	}
	if ((r = read_msrs(vm, fd, msrs, &nmsrs))) {
		free(cpuid);
		return fail_msg(err, n, r, "vCPU %u: reading its MSRs from KVM: %s", v->k.id,
				strerror(-r));
	}

	vmstate_put_u32(w, cpuid->nent);
	for (uint32_t i = 0; i < cpuid->nent; i++)
		put_blob(w, &cpuid->entries[i], sizeof(cpuid->entries[i]));
	free(cpuid);
	put_blob(w, &mp, sizeof(mp));
	put_blob(w, &regs, sizeof(regs));
	put_blob(w, &sregs, sizeof(sregs));
	put_blob(w, &xsave, sizeof(xsave));
	vmstate_put_bool(w, has_xcrs);
	put_blob(w, &xcrs, sizeof(xcrs));
	put_blob(w, &dregs, sizeof(dregs));
	put_blob(w, &lapic, sizeof(lapic));
	put_blob(w, &events, sizeof(events));
	vmstate_put_u32(w, nmsrs);
	for (unsigned int i = 0; i < nmsrs; i++) {
		vmstate_put_u32(w, msrs[i].index);
		vmstate_put_u64(w, msrs[i].data);
	}
	return 0;
}

/* vcpu_state_restore() with its buffers allocated. */
static int restore_parsed(struct vcpu *v, struct vmstate_cursor *c, struct kvm_cpuid2 *cpuid,
			  struct kvm_msrs *msrs, char *what, size_t wlen, char *err, size_t n)
{
	int fd = v->k.fd, r;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;

	snprintf(what, wlen, "vCPU %u", v->k.id);
	uint32_t nent = vmstate_get_u32(c);
	if (c->error || nent == 0 || nent > MAX_CPUID)
		return fail_msg(err, n, -EINVAL, "%s: %u CPUID entries (1 to %d)", what, nent,
				MAX_CPUID);
	cpuid->nent = nent;
	for (uint32_t i = 0; i < nent; i++)
		if ((r = get_blob(c, &cpuid->entries[i], sizeof(cpuid->entries[i]), "CPUID entry",
				  err, n)))
			return r;
	if ((r = get_blob(c, &mp, sizeof(mp), "MP state", err, n)) ||
	    (r = get_blob(c, &regs, sizeof(regs), "registers", err, n)) ||
	    (r = get_blob(c, &sregs, sizeof(sregs), "system registers", err, n)) ||
	    (r = get_blob(c, &xsave, sizeof(xsave), "XSAVE area", err, n)))
		return r;
	bool has_xcrs = vmstate_get_bool(c);
	if ((r = get_blob(c, &xcrs, sizeof(xcrs), "XCRs", err, n)) ||
	    (r = get_blob(c, &dregs, sizeof(dregs), "debug registers", err, n)) ||
	    (r = get_blob(c, &lapic, sizeof(lapic), "LAPIC", err, n)) ||
	    (r = get_blob(c, &events, sizeof(events), "vCPU events", err, n)))
		return r;
	uint32_t nmsrs = vmstate_get_u32(c);
	if (c->error || nmsrs > MAX_MSRS)
		return fail_msg(err, n, -EINVAL, "%s: %u MSRs (at most %d)", what, nmsrs, MAX_MSRS);
	msrs->nmsrs = nmsrs;
	for (uint32_t i = 0; i < nmsrs; i++) {
		msrs->entries[i].index = vmstate_get_u32(c);
		msrs->entries[i].reserved = 0;
		msrs->entries[i].data = vmstate_get_u64(c);
	}
	if (vmstate_cursor_done(c))
		return fail_msg(err, n, -EINVAL,
				"%s: the section's size does not match its content", what);

	/* KVM checks each of these against what this host supports; the order is KVM's. */
	if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0)
		return fail_msg(err, n, -errno, "%s: this host refuses the saved CPUID: %s", what,
				strerror(errno));
	if (ioctl(fd, KVM_SET_MP_STATE, &mp) < 0 || ioctl(fd, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(fd, KVM_SET_XSAVE, &xsave) < 0 ||
	    (has_xcrs && ioctl(fd, KVM_SET_XCRS, &xcrs) < 0) ||
	    ioctl(fd, KVM_SET_DEBUGREGS, &dregs) < 0 || ioctl(fd, KVM_SET_LAPIC, &lapic) < 0)
		return fail_msg(err, n, -errno, "%s: KVM refuses the saved registers: %s", what,
				strerror(errno));
	r = ioctl(fd, KVM_SET_MSRS, msrs);
	if (r < 0 || (uint32_t)r != nmsrs)
		return fail_msg(err, n, -EINVAL, "%s: KVM refuses MSR 0x%x", what,
				r < 0 ? 0 : msrs->entries[r].index);
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		return fail_msg(err, n, -errno, "%s: KVM refuses the saved events: %s", what,
				strerror(errno));
	return 0;
}

int vcpu_state_restore(struct vcpu *v, struct vmstate_cursor *c, char *err, size_t n)
{
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + MAX_MSRS * sizeof(msrs->entries[0]));
	struct kvm_cpuid2 *cpuid = cpuid_alloc();
	char what[48];
	int r;

	if (!msrs || !cpuid) {
		r = fail_msg(err, n, -ENOMEM, "out of memory");
		goto out;
	}
	r = restore_parsed(v, c, cpuid, msrs, what, sizeof(what), err, n);
out:
	free(msrs);
	free(cpuid);
	return r;
}

int irqchip_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t n)
{
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip = { .chip_id = id };
		if (ioctl(vm->kvm.vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return fail_msg(err, n, -errno, "KVM_GET_IRQCHIP %u: %s", id,
					strerror(errno));
		put_blob(w, &chip, sizeof(chip));
	}
	return 0;
}

int irqchip_state_restore(struct vm *vm, struct vmstate_cursor *c, char *err, size_t n)
{
	struct kvm_irqchip chips[3];
	int r;

	for (uint32_t id = 0; id < 3; id++) {
		if ((r = get_blob(c, &chips[id], sizeof(chips[id]), "irqchip", err, n)))
			return r;
		if (chips[id].chip_id != id)
			return fail_msg(err, n, -EINVAL, "irqchip: chip %u stored where %u belongs",
					chips[id].chip_id, id);
	}
	if (vmstate_cursor_done(c))
		return fail_msg(err, n, -EINVAL, "irqchip: the section's size does not match");
	for (uint32_t id = 0; id < 3; id++)
		if (ioctl(vm->kvm.vm_fd, KVM_SET_IRQCHIP, &chips[id]) < 0)
			return fail_msg(err, n, -errno, "KVM_SET_IRQCHIP %u: %s", id,
					strerror(errno));
	return 0;
}

int pit_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t n)
{
	struct kvm_pit_state2 pit;

	if (ioctl(vm->kvm.vm_fd, KVM_GET_PIT2, &pit) < 0)
		return fail_msg(err, n, -errno, "KVM_GET_PIT2: %s", strerror(errno));
	put_blob(w, &pit, sizeof(pit));
	return 0;
}

int pit_state_restore(struct vm *vm, struct vmstate_cursor *c, char *err, size_t n)
{
	struct kvm_pit_state2 pit;
	int r = get_blob(c, &pit, sizeof(pit), "PIT", err, n);

	if (r)
		return r;
	if (vmstate_cursor_done(c))
		return fail_msg(err, n, -EINVAL, "PIT: the section's size does not match");
	if (ioctl(vm->kvm.vm_fd, KVM_SET_PIT2, &pit) < 0)
		return fail_msg(err, n, -errno, "KVM_SET_PIT2: %s", strerror(errno));
	return 0;
}

int clock_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t n)
{
	struct kvm_clock_data clk = { 0 };
	struct timespec now;

	if (ioctl(vm->kvm.vm_fd, KVM_GET_CLOCK, &clk) < 0)
		return fail_msg(err, n, -errno, "KVM_GET_CLOCK: %s", strerror(errno));
	/*
	 * KVM reads the host's real time with the clock in one go only on a TSC clocksource
	 * (KVM_CLOCK_REALTIME); elsewhere the real time read right after it is as good to
	 * within microseconds.
	 */
	if (!(clk.flags & KVM_CLOCK_REALTIME)) {
		clock_gettime(CLOCK_REALTIME, &now);
		clk.realtime = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	}
	vmstate_put_u64(w, clk.clock);
	vmstate_put_u64(w, clk.realtime);
	return 0;
}

int clock_state_restore(struct vm *vm, struct vmstate_cursor *c, uint32_t version, bool catch_up,
			char *err, size_t n)
{
	/* By default the guest's clock continues from the saved value: paused time is not seen. */
	struct kvm_clock_data clk = { .clock = vmstate_get_u64(c) };
	uint64_t saved_real = version >= 2 ? vmstate_get_u64(c) : 0;
	struct timespec now;

	if (vmstate_cursor_done(c))
		return fail_msg(err, n, -EINVAL, "kvmclock: the section's size does not match");
	if (catch_up && saved_real) {
		clock_gettime(CLOCK_REALTIME, &now);
		uint64_t real = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
		/*
		 * Done here rather than with KVM_CLOCK_REALTIME so that a bad host clock (real
		 * time behind the source's, or far ahead) cannot throw the guest's clock.
		 */
		if (real >= saved_real && real - saved_real <= CLOCK_CATCH_UP_MAX_NS)
			clk.clock += real - saved_real;
		else
			log_warn("kvmclock: this host's real time is %+.3f s from the source's at "
				 "its save; the guest's clock is not moved on (are the hosts' "
				 "clocks in sync?)",
				 ((double)real - (double)saved_real) / 1e9);
	}
	if (ioctl(vm->kvm.vm_fd, KVM_SET_CLOCK, &clk) < 0)
		return fail_msg(err, n, -errno, "KVM_SET_CLOCK: %s", strerror(errno));
	return 0;
}
