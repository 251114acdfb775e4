/* cpuid_add_topology_leaves: leaf 0xb gets its SMT, core and end subleaves when KVM lists fewer. */
#include "arch/x86/cpuid.h"
#include "unit.h"

#include <stdlib.h>

static struct kvm_cpuid2 *make(uint32_t max_basic, int with_b0)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(struct kvm_cpuid_entry2));

	c->entries[c->nent++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = max_basic };
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){ .function = 1 };
	if (with_b0)
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
			.function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX
		};
	return c;
}

TEST(cpuid_topology_leaves_added_when_missing)
{
	struct kvm_cpuid2 *c = make(0xd, 1);

	REQUIRE(cpuid_add_topology_leaves(&c) == 0);
	CHECK(c->nent == 5);
	for (uint32_t i = 0; i < 3; i++) {
		struct kvm_cpuid_entry2 *e = cpuid_find(c, 0xb, i);
		REQUIRE(e != NULL);
		CHECK(e->index == i);
	}
	cpuid_set_topology(c, 2, 4);
	CHECK(cpuid_find(c, 0xb, 1)->ebx == 4);
	CHECK(cpuid_find(c, 0xb, 1)->edx == 2);
	CHECK(((cpuid_find(c, 0xb, 1)->ecx >> 8) & 0xff) == 2);
	CHECK(((cpuid_find(c, 0xb, 2)->ecx >> 8) & 0xff) == 0);
	free(c);
}

TEST(cpuid_topology_leaves_not_added_below_leaf_b)
{
	struct kvm_cpuid2 *c = make(0x7, 0);

	REQUIRE(cpuid_add_topology_leaves(&c) == 0);
	CHECK(c->nent == 2);
	CHECK(cpuid_find(c, 0xb, 0) == NULL);
	free(c);
}

TEST(cpuid_topology_leaves_idempotent)
{
	struct kvm_cpuid2 *c = make(0x1f, 0);

	REQUIRE(cpuid_add_topology_leaves(&c) == 0);
	CHECK(c->nent == 5);
	REQUIRE(cpuid_add_topology_leaves(&c) == 0);
	CHECK(c->nent == 5);
	free(c);
}
