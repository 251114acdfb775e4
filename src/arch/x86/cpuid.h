/*
 * CPUID policy: start from what KVM supports, apply a named template, then give each
 * vCPU its own topology (APIC ID, logical counts, x2APIC topology leaves).
 */
#ifndef TERN_ARCH_X86_CPUID_H
#define TERN_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

enum cpu_template {
	CPU_TEMPLATE_HOST,   /* everything KVM can expose */
	CPU_TEMPLATE_COMPAT, /* x86-64-v2 baseline: migratable between any recent hosts */
};

/* Accepts "host" or "compat"; -EINVAL otherwise. */
int cpuid_template_parse(const char *name, enum cpu_template *t);
const char *cpuid_template_name(enum cpu_template t);

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);
void cpuid_apply_template(struct kvm_cpuid2 *c, enum cpu_template t);
/*
 * Makes sure leaf 0xb has the SMT, core and terminating subleaves (some KVMs list
 * only subleaf 0) when the maximum basic leaf reaches 0xb. May reallocate *c.
 * Returns 0 or -ENOMEM.
 */
int cpuid_add_topology_leaves(struct kvm_cpuid2 **c);
void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned int apic_id, unsigned int ncpus);

/* Feature bits tern refers to by name. */
#define CPUID1_ECX_SSE3 (1u << 0)
#define CPUID1_ECX_PCLMUL (1u << 1)
#define CPUID1_ECX_SSSE3 (1u << 9)
#define CPUID1_ECX_FMA (1u << 12)
#define CPUID1_ECX_CX16 (1u << 13)
#define CPUID1_ECX_SSE41 (1u << 19)
#define CPUID1_ECX_SSE42 (1u << 20)
#define CPUID1_ECX_X2APIC (1u << 21)
#define CPUID1_ECX_MOVBE (1u << 22)
#define CPUID1_ECX_POPCNT (1u << 23)
#define CPUID1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID1_ECX_AES (1u << 25)
#define CPUID1_ECX_XSAVE (1u << 26)
#define CPUID1_ECX_OSXSAVE (1u << 27)
#define CPUID1_ECX_AVX (1u << 28)
#define CPUID1_ECX_F16C (1u << 29)
#define CPUID1_ECX_RDRAND (1u << 30)
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define CPUID1_EDX_HTT (1u << 28)

#define CPUID7_EBX_FSGSBASE (1u << 0)
#define CPUID7_EBX_AVX2 (1u << 5)
#define CPUID7_EBX_SMEP (1u << 7)
#define CPUID7_EBX_ERMS (1u << 9)
#define CPUID7_EBX_RDSEED (1u << 18)
#define CPUID7_EBX_SMAP (1u << 20)

#define KVM_PV_FEATURE_PV_UNHALT (1u << 7)
#define KVM_PV_FEATURE_PV_SEND_IPI (1u << 11)
#define KVM_PV_FEATURE_PV_SCHED_YIELD (1u << 13)

#endif
