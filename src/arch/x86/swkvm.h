/*
 * Support for KVM backends that run guest kernel code through KVM's instruction
 * emulator (no VT-x/AMD-V; see ../shared/SOFTWARE-KVM.md). Everything tern does
 * differently on such a backend lives here and is reached only when
 * swkvm_detect() says so: on VT-x/AMD-V hosts none of it runs.
 *
 * What it does: hides what CPUID can hide, asks the guest kernel (command line) to
 * avoid what CPUID cannot hide, and completes or injects the instructions the
 * emulator stops on (KVM_EXIT_INTERNAL_ERROR / EMULATION), counting each kind.
 */
#ifndef TERN_ARCH_X86_SWKVM_H
#define TERN_ARCH_X86_SWKVM_H

#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "arch/x86/insn.h"
#include "kvm/guest_mem.h"

struct swkvm {
	const struct guest_mem *mem;
	atomic_ulong handled[INSN_COUNT];
	atomic_ulong syscall_fixups;
	atomic_ulong user_int_fixups;
};

/* Honours TERN_SOFTWARE_KVM=on|off (for tests); otherwise looks for the kvm_pvm module. */
bool swkvm_detect(void);
void swkvm_init(struct swkvm *s, const struct guest_mem *mem);
void swkvm_cpuid_fixup(struct kvm_cpuid2 *c);
/* Kernel command-line words that steer a Linux guest away from what CPUID cannot hide. */
const char *swkvm_cmdline_extra(void);
/* Completes the instruction that stopped the vCPU. 0 if handled, else -errno (not handled). */
int swkvm_handle(struct swkvm *s, int vcpu_fd);
/* One line with the per-instruction counts. */
void swkvm_log_stats(struct swkvm *s);

#endif
