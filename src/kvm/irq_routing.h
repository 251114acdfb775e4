/*
 * The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so every
 * commit re-sends KVM's default irqchip routes (GSIs 0-23) together with the MSI
 * routes that MSI-X vectors use (GSIs from GSI_MSI_BASE up). Thread-safe: vCPU
 * threads reprogram MSI-X vectors while the event loop delivers interrupts.
 */
#ifndef TERN_KVM_IRQ_ROUTING_H
#define TERN_KVM_IRQ_ROUTING_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_ROUTING_MAX_MSI 512
/* 16 GSIs reach both the PIC and the IOAPIC, 8 more only the IOAPIC. */
#define IRQ_ROUTING_DEFAULT_ENTRIES (16 * 2 + 8)
#define IRQ_ROUTING_MAX_ENTRIES (IRQ_ROUTING_DEFAULT_ENTRIES + IRQ_ROUTING_MAX_MSI)

/* Installs a whole table; 0 or -errno. kvm_set_gsi_routing() in the VMM, a fake in tests. */
typedef int (*irq_routing_set_fn)(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n);

struct irq_routing_msi {
	bool used;  /* the GSI is allocated */
	bool valid; /* it has an address/data and is part of the table */
	uint64_t addr;
	uint32_t data;
};

struct irq_routing {
	pthread_mutex_t lock;
	irq_routing_set_fn set;
	void *ctx;
	bool dirty; /* the table differs from what KVM has */
	unsigned int commits;
	struct irq_routing_msi msi[IRQ_ROUTING_MAX_MSI];
	struct kvm_irq_routing_entry table[IRQ_ROUTING_MAX_ENTRIES]; /* scratch for commits */
};

void irq_routing_init(struct irq_routing *r, irq_routing_set_fn set, void *ctx);
void irq_routing_destroy(struct irq_routing *r);
/* An irq_routing_set_fn over KVM_SET_GSI_ROUTING; ctx is a struct kvm *. */
int irq_routing_set_kvm(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n);

/* Reserves an MSI GSI (>= GSI_MSI_BASE) with no route yet. Returns it, or -ENOSPC. */
int irq_routing_alloc_msi(struct irq_routing *r);
/* Releases gsi and drops its route at the next commit. */
void irq_routing_free(struct irq_routing *r, uint32_t gsi);
/* Records gsi's MSI address/data (no ioctl). -EINVAL for a GSI that is not allocated. */
int irq_routing_set_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data);
/* Sends the table to KVM if it changed. 0 or -errno (the change stays pending). */
int irq_routing_commit(struct irq_routing *r);
/* irq_routing_set_msi() then irq_routing_commit(), atomically. */
int irq_routing_update_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data);
/* Fills out (room for IRQ_ROUTING_MAX_ENTRIES) with the table as it would be committed. */
uint32_t irq_routing_build(struct irq_routing *r, struct kvm_irq_routing_entry *out);

#endif
