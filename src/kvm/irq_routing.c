/* GSI routing: KVM's default PIC/IOAPIC routes plus allocatable MSI routes, committed whole. */
#include "kvm/irq_routing.h"
#include "arch/x86/layout.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <string.h>

void irq_routing_init(struct irq_routing *r, irq_routing_set_fn set, void *ctx)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->set = set;
	r->ctx = ctx;
}

void irq_routing_destroy(struct irq_routing *r)
{
	pthread_mutex_destroy(&r->lock);
}

int irq_routing_set_kvm(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n)
{
	return kvm_set_gsi_routing(ctx, e, n);
}

static struct kvm_irq_routing_entry irqchip(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry e;

	memset(&e, 0, sizeof(e));
	e.gsi = gsi;
	e.type = KVM_IRQ_ROUTING_IRQCHIP;
	e.u.irqchip.irqchip = chip;
	e.u.irqchip.pin = pin;
	return e;
}

/*
 * What KVM_CREATE_IRQCHIP installs: GSI n reaches IOAPIC pin n; GSIs 0-15 also reach
 * the 8259 pair (master pins 0-7, slave pins 0-7). GSI 2 keeps both routes as KVM has
 * them (the master's pin 2 is the cascade input), so committing the table leaves the
 * legacy interrupts exactly as they were.
 */
static uint32_t build(struct irq_routing *r, struct kvm_irq_routing_entry *out)
{
	uint32_t n = 0;

	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		out[n++] = irqchip(gsi, KVM_IRQCHIP_IOAPIC, gsi);
		if (gsi < 16)
			out[n++] = irqchip(gsi,
					   gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					   gsi % 8);
	}
	for (uint32_t i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
		const struct irq_routing_msi *m = &r->msi[i];
		if (!m->used || !m->valid)
			continue;
		struct kvm_irq_routing_entry *e = &out[n++];
		memset(e, 0, sizeof(*e));
		e->gsi = GSI_MSI_BASE + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)m->addr;
		e->u.msi.address_hi = (uint32_t)(m->addr >> 32);
		e->u.msi.data = m->data;
	}
	return n;
}

uint32_t irq_routing_build(struct irq_routing *r, struct kvm_irq_routing_entry *out)
{
	pthread_mutex_lock(&r->lock);
	uint32_t n = build(r, out);
	pthread_mutex_unlock(&r->lock);
	return n;
}

int irq_routing_alloc_msi(struct irq_routing *r)
{
	int gsi = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
		if (!r->msi[i].used) {
			r->msi[i] = (struct irq_routing_msi){ .used = true };
			gsi = (int)(GSI_MSI_BASE + i);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

static struct irq_routing_msi *slot(struct irq_routing *r, uint32_t gsi)
{
	if (gsi < GSI_MSI_BASE || gsi - GSI_MSI_BASE >= IRQ_ROUTING_MAX_MSI)
		return NULL;
	struct irq_routing_msi *m = &r->msi[gsi - GSI_MSI_BASE];
	return m->used ? m : NULL;
}

void irq_routing_free(struct irq_routing *r, uint32_t gsi)
{
	pthread_mutex_lock(&r->lock);
	struct irq_routing_msi *m = slot(r, gsi);
	if (m) {
		if (m->valid)
			r->dirty = true;
		*m = (struct irq_routing_msi){ 0 };
	}
	pthread_mutex_unlock(&r->lock);
}

static int set_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct irq_routing_msi *m = slot(r, gsi);

	if (!m)
		return -EINVAL;
	if (!m->valid || m->addr != addr || m->data != data) {
		m->valid = true;
		m->addr = addr;
		m->data = data;
		r->dirty = true;
	}
	return 0;
}

static int commit(struct irq_routing *r)
{
	if (!r->dirty)
		return 0;
	uint32_t n = build(r, r->table);
	int err = r->set ? r->set(r->ctx, r->table, n) : 0;
	if (err)
		return err;
	r->dirty = false;
	r->commits++;
	return 0;
}

int irq_routing_set_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data)
{
	pthread_mutex_lock(&r->lock);
	int err = set_msi(r, gsi, addr, data);
	pthread_mutex_unlock(&r->lock);
	return err;
}

int irq_routing_commit(struct irq_routing *r)
{
	pthread_mutex_lock(&r->lock);
	int err = commit(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}

int irq_routing_update_msi(struct irq_routing *r, uint32_t gsi, uint64_t addr, uint32_t data)
{
	pthread_mutex_lock(&r->lock);
	int err = set_msi(r, gsi, addr, data);
	if (!err)
		err = commit(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}
