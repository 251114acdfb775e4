/* The vCPU thread: KVM_RUN, then dispatch the exit to a bus, the software-KVM module or a stop. */
#include "core/log.h"
#include "core/util.h"
#include "jail/seccomp.h"
#include "jail/test_fault.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

void vcpu_dump(const struct vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	char buf[1024];

	if (ioctl(v->k.fd, KVM_GET_REGS, &r) < 0 || ioctl(v->k.fd, KVM_GET_SREGS, &s) < 0) {
		log_error("vCPU %u: %s (registers unavailable: %s)", v->k.id, why, strerror(errno));
		return;
	}
	snprintf(buf, sizeof(buf),
		 "vCPU %u: %s\n"
		 "  rip %016llx rsp %016llx rflags %016llx\n"
		 "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
		 "  rsi %016llx rdi %016llx rbp %016llx r8  %016llx\n"
		 "  r9  %016llx r10 %016llx r11 %016llx r12 %016llx\n"
		 "  r13 %016llx r14 %016llx r15 %016llx\n"
		 "  cs %04x (base %llx l %d db %d dpl %d) ss %04x ds %04x es %04x fs %04x gs %04x\n"
		 "  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\n"
		 "  gdt %llx/%x idt %llx/%x",
		 v->k.id, why, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi,
		 r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector,
		 s.cs.base, s.cs.l, s.cs.db, s.cs.dpl, s.ss.selector, s.ds.selector, s.es.selector,
		 s.fs.selector, s.gs.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.gdt.base,
		 s.gdt.limit, s.idt.base, s.idt.limit);
	log_error("%s", buf);
}

static void crash(struct vcpu *v, const char *why)
{
	vcpu_dump(v, why);
	v->vm->machine.stop(v->vm, MACHINE_CRASH, 0);
}

static void do_io(struct vcpu *v)
{
	struct kvm_run *run = v->k.run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_access(&v->vm->pio, run->io.port, data, run->io.size,
			   run->io.direction == KVM_EXIT_IO_OUT);
		data += run->io.size;
	}
}

static void do_system_event(struct vcpu *v)
{
	switch (v->k.run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		v->vm->machine.stop(v->vm, MACHINE_POWEROFF, 0);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		v->vm->machine.stop(v->vm, MACHINE_RESET, 0);
		break;
	default:
		crash(v, "guest reported a crash (system event)");
		break;
	}
}

/* One more of an exit kind; this thread is the only writer, so no atomic add is needed. */
static void count(_Atomic unsigned long long *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Handles one exit; false when the thread should stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->k.run;
	char why[96];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		count(run->io.direction == KVM_EXIT_IO_OUT ? &v->stats.exit_io_out :
							     &v->stats.exit_io_in);
		do_io(v);
		return true;
	case KVM_EXIT_MMIO:
		count(run->mmio.is_write ? &v->stats.exit_mmio_write : &v->stats.exit_mmio_read);
		bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			   run->mmio.is_write);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		crash(v, "triple fault");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		do_system_event(v);
		return false;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; with interrupts off it can never wake. */
		crash(v, "halted with no way to wake up");
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && v->vm->software_kvm &&
		    swkvm_handle(&v->vm->swkvm, v->k.fd) == 0) {
			count(&v->stats.exit_emulation);
			return true;
		}
		count(&v->stats.failures);
		snprintf(why, sizeof(why), "KVM internal error, suberror %u",
			 run->internal.suberror);
		crash(v, why);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		count(&v->stats.failures);
		snprintf(why, sizeof(why), "VM entry failed, reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		crash(v, why);
		return false;
	default:
		count(&v->stats.failures);
		snprintf(why, sizeof(why), "unhandled KVM exit %u", run->exit_reason);
		crash(v, why);
		return false;
	}
}

/*
 * KVM finishes the instruction behind an exit (an OUT whose byte the device already has,
 * an IN or MMIO read whose value is in kvm_run) only at the next KVM_RUN. A vCPU that
 * parked before that would leave it unfinished in a snapshot: the restored guest would run
 * it again (a doubled byte) or lose what it read. With immediate_exit set, KVM_RUN
 * finishes it and returns at once without running guest code; an exit that finishing
 * itself needs (an MMIO access split over two pages) is handled as any other.
 */
static bool finish_exit(struct vcpu *v)
{
	v->k.run->immediate_exit = 1;
	while (ioctl(v->k.fd, KVM_RUN, 0) == 0)
		if (!handle_exit(v))
			return false;
	if (errno != EINTR && errno != EAGAIN) {
		char why[80];
		snprintf(why, sizeof(why), "KVM_RUN to finish an exit before pausing: %s",
			 strerror(errno));
		crash(v, why);
		return false;
	}
	return true;
}

/*
 * A migration's auto-converge kicks every vCPU every 10 ms (migrate_send.c). Each kick
 * sleeps pct/(100 - pct) times what the vCPU ran since its last sleep, so the guest runs
 * (100 - throttle_pct) % of the time however late the kicks come (a loaded host delays
 * them). A pause, a stop or the throttle's end cuts the sleep short: each later kick
 * wakes it to look.
 */
static void throttle(struct vcpu *v)
{
	unsigned int pct = atomic_load_explicit(&v->vm->throttle_pct, memory_order_relaxed);
	uint64_t now = monotonic_ns();

	if (pct && pct < 100 && !vm_is_paused(v->vm) && !atomic_load(&v->vm->stopping)) {
		uint64_t ran = now - v->throttle_woke_ns, nap;
		if (ran > 100000000ULL) /* the first kick, or one after a long pause */
			ran = 10000000ULL;
		nap = ran * pct / (100 - pct);
		uint64_t end = now + (nap < 2000000000ULL ? nap : 2000000000ULL);
		struct timespec ts = { (time_t)(end / 1000000000ULL), (long)(end % 1000000000ULL) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
		       atomic_load(&v->vm->throttle_pct) && !vm_is_paused(v->vm) &&
		       !atomic_load(&v->vm->stopping))
			;
		now = monotonic_ns();
	}
	v->throttle_woke_ns = now;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->k.id);
	pthread_setname_np(pthread_self(), name);
	seccomp_enter_or_die(SECCOMP_VCPU);
	test_fault_vcpu(v->k.id);
	if (v->k.id == 0) {
		/* For start-up benchmarks: compared against CLOCK_MONOTONIC taken before exec. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		log_debug("first KVM_RUN at monotonic %lld.%09ld", (long long)ts.tv_sec,
			  ts.tv_nsec);
	}
	while (!atomic_load(&v->vm->stopping)) {
		/*
		 * Only this branch parks: a pause that comes after the check reaches KVM_RUN
		 * (immediate_exit, then the kick), which finishes the last exit all the same.
		 */
		if (vm_is_paused(v->vm)) {
			if (!finish_exit(v))
				break;
			vcpu_pause_point(v);
			continue;
		}
		if (ioctl(v->k.fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				throttle(v);
				continue;
			}
			char why[64];
			snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(errno));
			crash(v, why);
			break;
		}
		if (!handle_exit(v))
			break;
	}
	vcpu_exited(v);
	return NULL;
}
