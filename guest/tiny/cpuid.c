/*
 * What CPUID tells each vCPU about the machine tern-vmm built.
 *
 * Default mode, on every vCPU (cpus=N on the command line, APIC IDs 0..N-1): the
 * hypervisor bit, KVM's signature at 0x40000000 (Linux needs it for kvmclock), the
 * initial APIC ID and logical-processor count in leaf 1 EBX against the local APIC
 * and N, and the x2APIC topology leaf 0xb if there is one. One line per vCPU:
 * "tiny: cpu <apic id> ...".
 *
 * mode=template: one line "tiny: template ..." with the feature words a CPU template
 * changes, for the test to compare --cpu-template host and compat.
 */
#include "smp.h"
#include "tiny.h"

TINY_GUEST("cpuid");

#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define CPUID1_EDX_HTT (1u << 28)

static unsigned int ncpus;
static volatile uint32_t reported;

static uint32_t max_basic(void)
{
	return cpuid(0, 0).eax;
}

static void check_cpu(unsigned int cpu)
{
	uint32_t apic = tiny_apic_id();
	struct cpuid l1 = cpuid(1, 0), hv = cpuid(KVM_CPUID_SIGNATURE, 0);
	struct cpuid smt = { 0 }, core = { 0 }, end = { 0 };
	bool leafb = max_basic() >= 0xb;
	char sig[13];

	memcpy(sig + 0, &hv.ebx, 4);
	memcpy(sig + 4, &hv.ecx, 4);
	memcpy(sig + 8, &hv.edx, 4);
	sig[12] = 0;
	if (leafb) {
		smt = cpuid(0xb, 0);
		core = cpuid(0xb, 1);
		end = cpuid(0xb, 2);
	}
	/* Printed before the checks, so a failure shows what CPUID said */
	SAY("cpu %u apic %u hv %u sig %s max 0x%x l1ebx 0x%x htt %u leafb %s %x:%x:%x:%x "
	    "%x:%x:%x:%x %x",
	    cpu, apic, l1.ecx >> 31, sig, hv.eax, l1.ebx, (l1.edx >> 28) & 1, leafb ? "yes" : "no",
	    smt.eax, smt.ebx, smt.ecx, smt.edx, core.eax, core.ebx, core.ecx, core.edx, end.ecx);

	CHECK_EQ(apic, cpu); /* the command line's CPU list is APIC IDs 0..N-1 */
	CHECK(l1.ecx & CPUID1_ECX_HYPERVISOR);
	CHECK(memcmp(sig, "KVMKVMKVM\0\0\0", 12) == 0);
	CHECK(hv.eax >= KVM_CPUID_FEATURES);
	CHECK_EQ(l1.ebx >> 24, apic);
	CHECK_EQ((l1.ebx >> 16) & 0xff, ncpus);
	if (ncpus > 1)
		CHECK(l1.edx & CPUID1_EDX_HTT); /* else EBX[23:16] means nothing */
	if (leafb) {
		CHECK_EQ((smt.ecx >> 8) & 0xff, 1); /* level type: SMT */
		CHECK_EQ(smt.ebx & 0xffff, 1);	    /* one thread per core */
		CHECK_EQ(smt.edx, apic);
		CHECK_EQ((core.ecx >> 8) & 0xff, 2); /* level type: core */
		CHECK_EQ(core.ebx & 0xffff, ncpus);
		CHECK_EQ(core.edx, apic);
		/* APIC ID >> shift names the package: every vCPU must fit below it */
		CHECK((1u << (core.eax & 0x1f)) >= ncpus);
		CHECK_EQ((end.ecx >> 8) & 0xff, 0); /* no third level */
	}
	__atomic_add_fetch(&reported, 1, __ATOMIC_RELEASE);
}

static void print_template(void)
{
	uint32_t maxb = max_basic(), maxe = cpuid(0x80000000, 0).eax;
	struct cpuid l1 = cpuid(1, 0), l7 = { 0 }, xs = { 0 }, e1 = { 0 }, pv = { 0 };

	if (maxb >= 7)
		l7 = cpuid(7, 0);
	if (maxb >= 0xd)
		xs = cpuid(0xd, 0);
	if (maxe >= 0x80000001)
		e1 = cpuid(0x80000001, 0);
	if (cpuid(KVM_CPUID_SIGNATURE, 0).eax >= KVM_CPUID_FEATURES)
		pv = cpuid(KVM_CPUID_FEATURES, 0);
	SAY("template l1ebx 0x%x l1ecx 0x%x l1edx 0x%x l7ebx 0x%x l7ecx 0x%x l7edx 0x%x "
	    "dEax 0x%x e1ecx 0x%x e1edx 0x%x pv 0x%x",
	    l1.ebx, l1.ecx, l1.edx, l7.ebx, l7.ecx, l7.edx, xs.eax, e1.ecx, e1.edx, pv.eax);
}

int main(void)
{
	static uint32_t ids[TINY_MAX_CPUS];
	long want = tiny_arg_num("cpus", 1);

	if (tiny_arg_is("mode", "template")) {
		print_template();
		return 0;
	}
	CHECK(want >= 1 && want <= TINY_MAX_CPUS);
	ncpus = (unsigned int)want;
	SAY("%u cpus, max basic leaf 0x%x", ncpus, max_basic());
	for (unsigned int i = 0; i < ncpus; i++)
		ids[i] = i;
	check_cpu(0); /* the BSP: APIC ID 0 */
	tiny_smp_start(ids, ncpus, check_cpu);

	uint64_t t0 = rdtsc();
	while (__atomic_load_n(&reported, __ATOMIC_ACQUIRE) < ncpus && rdtsc() - t0 < 5000000000UL)
		cpu_relax();
	CHECK_EQ(reported, ncpus);
	SAY("all %u cpus checked", ncpus);
	return 0;
}
