/* CPUID templates and per-vCPU topology. */
#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cpuid_template_parse(const char *name, enum cpu_template *t)
{
	if (!strcmp(name, "host"))
		*t = CPU_TEMPLATE_HOST;
	else if (!strcmp(name, "compat"))
		*t = CPU_TEMPLATE_COMPAT;
	else
		return -EINVAL;
	return 0;
}

const char *cpuid_template_name(enum cpu_template t)
{
	return t == CPU_TEMPLATE_COMPAT ? "compat" : "host";
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

static void keep(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx, uint32_t eax, uint32_t ebx,
		 uint32_t ecx, uint32_t edx)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, fn, idx);

	if (!e)
		return;
	e->eax &= eax;
	e->ebx &= ebx;
	e->ecx &= ecx;
	e->edx &= edx;
}

/* Drops every entry of a leaf (e.g. XSAVE state leaf 0xd when XSAVE is hidden). */
static void clear_leaf(struct kvm_cpuid2 *c, uint32_t fn)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			c->entries[i].eax = c->entries[i].ebx = c->entries[i].ecx =
				c->entries[i].edx = 0;
}

void cpuid_apply_template(struct kvm_cpuid2 *c, enum cpu_template t)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);

	if (e)
		e->ecx |= CPUID1_ECX_HYPERVISOR;
	if (t == CPU_TEMPLATE_HOST)
		return;
	/*
	 * compat: the x86-64-v2 level (SSE3..SSE4.2, POPCNT, CX16) plus the system
	 * features every 64-bit host of the last decade has. No XSAVE/AVX family, so
	 * a guest can move to any such host (migration, snapshots).
	 */
	keep(c, 1, 0, ~0u, ~0u,
	     CPUID1_ECX_SSE3 | CPUID1_ECX_PCLMUL | CPUID1_ECX_SSSE3 | CPUID1_ECX_CX16 |
		     CPUID1_ECX_SSE41 | CPUID1_ECX_SSE42 | CPUID1_ECX_X2APIC | CPUID1_ECX_POPCNT |
		     CPUID1_ECX_TSC_DEADLINE | CPUID1_ECX_AES | CPUID1_ECX_HYPERVISOR,
	     ~0u);
	keep(c, 7, 0, 0, CPUID7_EBX_FSGSBASE | CPUID7_EBX_SMEP | CPUID7_EBX_ERMS | CPUID7_EBX_SMAP,
	     0, 0);
	keep(c, 7, 1, 0, 0, 0, 0);
	clear_leaf(c, 0xd);
	/* 0x80000001: LAHF/SAHF, LZCNT, PREFETCHW; SYSCALL, NX, 1G pages, RDTSCP, LM. */
	keep(c, 0x80000001, 0, ~0u, ~0u, (1u << 0) | (1u << 5) | (1u << 8),
	     (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29) | 0x0183f3ff);
}

int cpuid_add_topology_leaves(struct kvm_cpuid2 **c)
{
	struct kvm_cpuid_entry2 *max = cpuid_find(*c, 0, 0);
	uint32_t missing = 0;

	if (!max || max->eax < 0xb)
		return 0;
	for (uint32_t i = 0; i < 3; i++)
		if (!cpuid_find(*c, 0xb, i) || cpuid_find(*c, 0xb, i)->index != i)
			missing++;
	if (!missing)
		return 0;
	struct kvm_cpuid2 *n =
		realloc(*c, sizeof(**c) + ((*c)->nent + missing) * sizeof(struct kvm_cpuid_entry2));
	if (!n)
		return -ENOMEM;
	for (uint32_t i = 0; i < 3; i++) {
		struct kvm_cpuid_entry2 *e = cpuid_find(n, 0xb, i);
		if (e && e->index == i)
			continue;
		/* A leaf listed without SIGNIFCANT_INDEX answers every subleaf: make it indexed. */
		if (e)
			e->flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		n->entries[n->nent++] = (struct kvm_cpuid_entry2){
			.function = 0xb, .index = i, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX
		};
	}
	*c = n;
	return 0;
}

static unsigned int bits_for(unsigned int n)
{
	unsigned int b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned int apic_id, unsigned int ncpus)
{
	struct kvm_cpuid_entry2 *e;
	unsigned int core_bits = bits_for(ncpus);

	/* One socket, ncpus cores, one thread each. */
	if ((e = cpuid_find(c, 1, 0))) {
		e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) | ((ncpus & 0xff) << 16);
		if (ncpus > 1)
			e->edx |= CPUID1_EDX_HTT;
		else
			e->edx &= ~CPUID1_EDX_HTT;
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (e->function == 4 && (e->eax & 0x1f)) {
			/* cores per package - 1 in 31:26 (6 bits: saturates); caches shared by one thread. */
			e->eax = (e->eax & 0x3fff) | ((ncpus > 64 ? 63 : ncpus - 1) << 26);
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0; /* SMT level */
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1; /* core level */
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
		}
	}
	if ((e = cpuid_find(c, 0x80000008, 0)))
		e->ecx = (e->ecx & ~0xf0ffu) | (core_bits << 12) | ((ncpus - 1) & 0xff);
	if ((e = cpuid_find(c, 0x80000001, 0)) && ncpus > 1)
		e->ecx |= 1u << 1; /* CmpLegacy: HTT counts cores */
	if ((e = cpuid_find(c, 0x8000001e, 0))) {
		e->eax = apic_id;
		e->ebx = apic_id; /* compute unit id, one thread per unit */
		e->ecx = 0;
	}
}
