/*
 * The KVM-held part of a VM's state for snapshots: per vCPU (CPUID, registers, FPU/XSAVE,
 * XCRs, debug registers, MSRs, LAPIC, pending events, MP state) and per VM (PIC, IOAPIC,
 * PIT, kvmclock). KVM's own structures are stored as they are: they are the kernel's
 * x86-64 ABI, and the file's architecture field is checked before any is read.
 */
#ifndef TERN_VMM_KVM_STATE_H
#define TERN_VMM_KVM_STATE_H

#include <stddef.h>

#include "vmstate/vmstate.h"

struct vm;
struct vcpu;

#define VCPU_STATE_VERSION 1
#define IRQCHIP_STATE_VERSION 1
#define PIT_STATE_VERSION 1
/* 2 adds the host's real time at the save; version 1 sections (older files) still restore. */
#define CLOCK_STATE_VERSION 2
#define CLOCK_STATE_VERSION_OLD 1
/*
 * A migration moves the guest's clock on by the host real time that passed between the
 * source's save and the destination's restore (the downtime), unless that is negative or
 * longer than this: then the two hosts' clocks disagree and the saved value is kept.
 */
#define CLOCK_CATCH_UP_MAX_NS (60ULL * 1000000000ULL)

/* The vCPU must not be running (paused or not started). 0 or -errno + err. */
int vcpu_state_save(struct vcpu *v, struct vmstate_writer *w, char *err, size_t errlen);
int vcpu_state_restore(struct vcpu *v, struct vmstate_cursor *c, char *err, size_t errlen);

int irqchip_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t errlen);
int irqchip_state_restore(struct vm *vm, struct vmstate_cursor *c, char *err, size_t errlen);
int pit_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t errlen);
int pit_state_restore(struct vm *vm, struct vmstate_cursor *c, char *err, size_t errlen);
int clock_state_save(struct vm *vm, struct vmstate_writer *w, char *err, size_t errlen);
/*
 * catch_up: a migration's destination (the guest's clock moves on by the downtime, as if it
 * had run through it); a restored snapshot does not see the time it was saved for.
 */
int clock_state_restore(struct vm *vm, struct vmstate_cursor *c, uint32_t version, bool catch_up,
			char *err, size_t errlen);

#endif
