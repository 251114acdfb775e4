/*
 * Tests for the CPUID policy: template parsing, the host and compat templates,
 * per-vCPU topology leaves, and the software-KVM fixups, on a fake KVM-style table
 * whose registers start with every bit set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/swkvm.h"
#include "unit.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX
#define NENT 16

static size_t table_size(uint32_t nent)
{
	return sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
}

static void add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx, uint32_t flags, uint32_t eax)
{
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){
		.function = fn,
		.index = idx,
		.flags = flags,
		.eax = eax,
		.ebx = ~0u,
		.ecx = ~0u,
		.edx = ~0u,
	};
}

/*
 * The leaves tern cares about, all registers all-ones, in an exact-size heap block
 * (so ASan catches any access past nent). NULL only if out of memory.
 */
static struct kvm_cpuid2 *fake_build(void)
{
	struct kvm_cpuid2 *c = calloc(1, table_size(NENT));

	if (!c)
		return NULL;
	add(c, 0, 0, 0, ~0u);
	add(c, 1, 0, 0, ~0u);
	for (uint32_t i = 0; i < 3; i++)
		add(c, 4, i, SIG, ~0u);
	add(c, 4, 3, SIG, 0); /* type 0: end of the cache list */
	add(c, 7, 0, SIG, ~0u);
	add(c, 7, 1, SIG, ~0u);
	for (uint32_t i = 0; i < 3; i++)
		add(c, 0xb, i, SIG, ~0u);
	add(c, 0xd, 0, SIG, ~0u);
	add(c, 0xd, 1, SIG, ~0u);
	add(c, 0x40000001, 0, 0, ~0u);
	add(c, 0x80000001, 0, 0, ~0u);
	add(c, 0x80000008, 0, 0, ~0u);
	if (c->nent != NENT)
		abort();
	return c;
}

static struct kvm_cpuid_entry2 *get(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	static struct kvm_cpuid_entry2 dummy;
	struct kvm_cpuid_entry2 *e = cpuid_find(c, fn, idx);

	CHECK(e != NULL);
	if (!e) {
		memset(&dummy, 0, sizeof(dummy));
		return &dummy;
	}
	return e;
}

TEST(cpuid_template_parse_names)
{
	enum cpu_template t = CPU_TEMPLATE_COMPAT;

	CHECK(cpuid_template_parse("host", &t) == 0 && t == CPU_TEMPLATE_HOST);
	CHECK(cpuid_template_parse("compat", &t) == 0 && t == CPU_TEMPLATE_COMPAT);
	CHECK(strcmp(cpuid_template_name(CPU_TEMPLATE_HOST), "host") == 0);
	CHECK(strcmp(cpuid_template_name(CPU_TEMPLATE_COMPAT), "compat") == 0);

	const char *bad[] = { "", "Host", "COMPAT", "hostx", "compat ", "host\n", "x86-64-v2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = CPU_TEMPLATE_COMPAT;
		CHECK(cpuid_template_parse(bad[i], &t) == -EINVAL);
		CHECK(t == CPU_TEMPLATE_COMPAT);
	}
}

TEST(cpuid_find_honours_significant_index)
{
	struct kvm_cpuid2 *c = fake_build();

	REQUIRE(c);
	CHECK(cpuid_find(c, 4, 1) == &c->entries[3]);
	CHECK(cpuid_find(c, 4, 0) == &c->entries[2]);
	CHECK(cpuid_find(c, 4, 9) == NULL);
	CHECK(cpuid_find(c, 0xb, 2) == &c->entries[10]);
	/* Without the flag the index does not matter. */
	CHECK(cpuid_find(c, 1, 5) == &c->entries[1]);
	CHECK(cpuid_find(c, 0x12345678, 0) == NULL);
	c->nent = 1;
	CHECK(cpuid_find(c, 1, 0) == NULL); /* only the first nent entries count */
	free(c);
}

TEST(cpuid_host_template_keeps_everything)
{
	struct kvm_cpuid2 *c = fake_build(), *orig = fake_build();

	REQUIRE(c && orig);
	get(c, 1, 0)->ecx &= ~CPUID1_ECX_HYPERVISOR;
	get(orig, 1, 0)->ecx &= ~CPUID1_ECX_HYPERVISOR;
	cpuid_apply_template(c, CPU_TEMPLATE_HOST);
	CHECK(get(c, 1, 0)->ecx & CPUID1_ECX_HYPERVISOR);
	get(c, 1, 0)->ecx &= ~CPUID1_ECX_HYPERVISOR;
	CHECK(memcmp(c, orig, table_size(NENT)) == 0);
	free(c);
	free(orig);
}

TEST(cpuid_compat_template_baseline)
{
	struct kvm_cpuid2 *c = fake_build();
	struct kvm_cpuid_entry2 *e;

	REQUIRE(c);
	get(c, 1, 0)->ecx &= ~CPUID1_ECX_HYPERVISOR;
	cpuid_apply_template(c, CPU_TEMPLATE_COMPAT);

	e = get(c, 1, 0);
	/* x86-64-v2 stays. */
	const uint32_t kept = CPUID1_ECX_SSE3 | CPUID1_ECX_SSSE3 | CPUID1_ECX_SSE41 |
			      CPUID1_ECX_SSE42 | CPUID1_ECX_POPCNT | CPUID1_ECX_CX16 |
			      CPUID1_ECX_HYPERVISOR;
	CHECK((e->ecx & kept) == kept);
	/* The XSAVE/AVX family goes. */
	CHECK(!(e->ecx & (CPUID1_ECX_AVX | CPUID1_ECX_XSAVE | CPUID1_ECX_OSXSAVE | CPUID1_ECX_FMA |
			  CPUID1_ECX_F16C)));
	CHECK(e->edx == ~0u && e->eax == ~0u);

	e = get(c, 7, 0);
	CHECK(!(e->ebx & CPUID7_EBX_AVX2));
	CHECK(!(e->ebx & (1u << 16))); /* AVX512F */
	CHECK(!(e->ebx & (1u << 17))); /* AVX512DQ */
	CHECK(!(e->ebx & (1u << 30))); /* AVX512BW */
	CHECK(!(e->ebx & (1u << 31))); /* AVX512VL */
	CHECK(!(e->ecx & (1u << 1)));  /* AVX512_VBMI */
	CHECK(!(e->edx & (1u << 2)));  /* AVX512_4VNNIW */
	CHECK(e->ebx & CPUID7_EBX_FSGSBASE);
	CHECK(e->ebx & CPUID7_EBX_SMEP);
	CHECK(e->ebx & CPUID7_EBX_SMAP);
	e = get(c, 7, 1);
	CHECK(!(e->eax & (1u << 5))); /* AVX512_BF16 */
	CHECK(!(e->eax & (1u << 4))); /* AVX-VNNI */

	for (uint32_t i = 0; i < 2; i++) {
		e = get(c, 0xd, i);
		CHECK(e->eax == 0 && e->ebx == 0 && e->ecx == 0 && e->edx == 0);
	}

	e = get(c, 0x80000001, 0);
	CHECK(e->ecx & (1u << 5));     /* LZCNT is part of the baseline's 64-bit hosts */
	CHECK(!(e->ecx & (1u << 16))); /* FMA4 */
	CHECK(e->edx & (1u << 29));    /* LM */
	CHECK(e->edx & (1u << 20));    /* NX */

	/* Topology leaves are not the template's business. */
	CHECK(get(c, 0xb, 1)->ebx == ~0u);
	CHECK(get(c, 4, 0)->eax == ~0u);
	free(c);
}

static unsigned int log2_ceil(unsigned int n)
{
	unsigned int b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void check_topology(unsigned int id, unsigned int n)
{
	struct kvm_cpuid2 *c = fake_build();
	struct kvm_cpuid_entry2 *e;

	REQUIRE(c);
	cpuid_set_topology(c, id, n);

	e = get(c, 1, 0);
	CHECK(e->ebx >> 24 == id);
	CHECK(((e->ebx >> 16) & 0xff) == n);
	CHECK((e->ebx & 0xffff) == 0xffff); /* brand index, CLFLUSH size untouched */
	CHECK(!!(e->edx & CPUID1_EDX_HTT) == (n > 1));

	e = get(c, 0xb, 0);
	CHECK(e->edx == id);
	CHECK(((e->ecx >> 8) & 0xff) == 1); /* SMT */
	CHECK((e->ecx & 0xff) == 0);
	CHECK(e->ebx == 1);
	CHECK((e->eax & 0x1f) == 0);

	e = get(c, 0xb, 1);
	CHECK(e->edx == id);
	CHECK(((e->ecx >> 8) & 0xff) == 2); /* core */
	CHECK((e->ecx & 0xff) == 1);
	CHECK(e->ebx == n);
	/* Shifting the x2APIC ID right by EAX gives the package: 0 for every vCPU. */
	CHECK((e->eax & 0x1f) == log2_ceil(n));
	CHECK(id >> (e->eax & 0x1f) == 0);

	e = get(c, 0xb, 2);
	CHECK(e->edx == id);
	CHECK(((e->ecx >> 8) & 0xff) == 0); /* invalid: end of the levels */
	CHECK((e->ecx & 0xff) == 2);
	CHECK(e->ebx == 0);

	for (uint32_t i = 0; i < 3; i++) {
		e = get(c, 4, i);
		CHECK(e->eax >> 26 == n - 1);
		CHECK(((e->eax >> 14) & 0xfff) == 0);
		CHECK((e->eax & 0x3fff) == 0x3fff);
	}
	CHECK(get(c, 4, 3)->eax == 0);

	e = get(c, 0x80000008, 0);
	CHECK((e->ecx & 0xff) == n - 1);
	CHECK(((e->ecx >> 12) & 0xf) == log2_ceil(n));
	free(c);
}

TEST(cpuid_topology_all_sizes)
{
	const unsigned int sizes[] = { 1, 2, 3, 8, 64 };

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (unsigned int id = 0; id < sizes[s]; id++)
			check_topology(id, sizes[s]);
}

TEST(cpuid_topology_beyond_six_bit_fields)
{
	struct kvm_cpuid2 *c;

	/*
	 * Leaf 4 EAX[31:26] holds cores per package - 1 in six bits: more vCPUs than 64
	 * must saturate there, not wrap to a small count (65 would read as 1 core).
	 */
	for (unsigned int n = 63; n <= 254; n++) {
		REQUIRE((c = fake_build()) != NULL);
		cpuid_set_topology(c, n - 1, n);
		CHECK(get(c, 4, 0)->eax >> 26 == (n > 64 ? 63 : n - 1));
		CHECK(get(c, 0xb, 1)->ebx == n);
		CHECK(get(c, 0xb, 1)->edx == n - 1);
		CHECK(((get(c, 1, 0)->ebx >> 16) & 0xff) == n);
		CHECK(get(c, 1, 0)->ebx >> 24 == n - 1);
		CHECK((get(c, 0x80000008, 0)->ecx & 0xff) == n - 1);
		CHECK(((get(c, 0x80000008, 0)->ecx >> 12) & 0xf) == log2_ceil(n));
		free(c);
	}
}

TEST(cpuid_topology_without_leaves)
{
	struct kvm_cpuid2 *c = calloc(1, table_size(1));

	REQUIRE(c);
	/* A table without the optional leaves must not be touched out of bounds. */
	add(c, 1, 0, 0, ~0u);
	cpuid_set_topology(c, 3, 4);
	cpuid_apply_template(c, CPU_TEMPLATE_COMPAT);
	swkvm_cpuid_fixup(c);
	CHECK(c->nent == 1);
	CHECK(c->entries[0].ebx >> 24 == 3);
	CHECK(((c->entries[0].ebx >> 16) & 0xff) == 4);
	free(c);
}

TEST(cpuid_swkvm_fixup)
{
	struct kvm_cpuid2 *c = fake_build();
	struct kvm_cpuid_entry2 *e;

	REQUIRE(c);
	swkvm_cpuid_fixup(c);

	e = get(c, 1, 0);
	CHECK(!(e->ecx & CPUID1_ECX_CX16));
	CHECK(!(e->ecx & CPUID1_ECX_XSAVE));
	CHECK(!(e->ecx & CPUID1_ECX_OSXSAVE));
	CHECK(!(e->ecx & CPUID1_ECX_AVX));
	CHECK(e->ecx & CPUID1_ECX_SSE42); /* cannot be hidden this way: the cmdline does it */
	CHECK(e->ecx & CPUID1_ECX_HYPERVISOR);

	e = get(c, 7, 0);
	CHECK(!(e->ebx & CPUID7_EBX_AVX2));
	CHECK(!(e->ebx & (1u << 16))); /* AVX512F */
	CHECK(e->ebx & CPUID7_EBX_FSGSBASE);

	for (uint32_t i = 0; i < 2; i++) {
		e = get(c, 0xd, i);
		CHECK(e->eax == 0 && e->ebx == 0 && e->ecx == 0 && e->edx == 0);
	}

	e = get(c, 0x40000001, 0);
	CHECK(!(e->eax & KVM_PV_FEATURE_PV_SEND_IPI));
	CHECK(!(e->eax & KVM_PV_FEATURE_PV_UNHALT));
	CHECK(!(e->eax & KVM_PV_FEATURE_PV_SCHED_YIELD));
	CHECK(e->eax & (1u << 3)); /* KVM_FEATURE_CLOCKSOURCE2 stays */
	CHECK(e->eax & (1u << 0)); /* KVM_FEATURE_CLOCKSOURCE */
	free(c);
}

TEST(cpuid_swkvm_cmdline_extra)
{
	const char *s = swkvm_cmdline_extra();
	const char *w;

	REQUIRE(s != NULL);
	w = strstr(s, "noxsave");
	REQUIRE(w != NULL);
	/* A whole word, so the kernel parses it as its own parameter. */
	CHECK(w == s || w[-1] == ' ');
	CHECK(w[7] == ' ' || w[7] == 0);
	CHECK(strchr(s, '\n') == NULL);
	CHECK(s[0] != ' ' && s[strlen(s) - 1] != ' ');
}
