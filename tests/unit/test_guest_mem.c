/*
 * Guest RAM (src/kvm/guest_mem.c): anonymous memory on a 2 MiB boundary (KVM maps a huge
 * page only where guest and host addresses agree modulo 2 MiB), advisable for transparent
 * huge pages, and pages given back (guest_mem_discard) read as zeros. A restored VM's RAM
 * (a private file mapping) is never "given back": that would read its file again.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kvm/guest_mem.h"
#include "unit.h"

TEST(guest_mem_is_anonymous_aligned_and_gives_pages_back)
{
	struct guest_mem m;
	const uint64_t size = 66ull << 20;

	for (int i = 0; i < 4; i++) { /* several: one aligned by chance proves nothing */
		REQUIRE(guest_mem_create(&m, size) == 0);
		CHECK(m.anon && m.size == size);
		CHECK(((uintptr_t)m.host & ((2u << 20) - 1)) == 0);
		memset(m.host, 0xab, size); /* all of it mapped and writable */
		CHECK(guest_mem_advise_huge(&m) == 0);
		CHECK(guest_mem_discard(&m, 4 << 20, 8 << 20) == 0);
		CHECK(m.host[(4 << 20) - 1] == 0xab && m.host[4 << 20] == 0 &&
		      m.host[(12 << 20) - 1] == 0 && m.host[12 << 20] == 0xab);
		CHECK(guest_mem_discard(&m, size - 4096, 8192) == -EINVAL);
		CHECK(guest_mem_discard(&m, UINT64_MAX - 4095, 8192) == -EINVAL);
		guest_mem_destroy(&m);
	}
	/* Layout only (as a restore's mapping): not anonymous, nothing to give back. */
	guest_mem_layout(&m, size);
	CHECK(!m.anon && guest_mem_discard(&m, 0, 4096) == -EINVAL);
	CHECK(guest_mem_advise_huge(&m) == -EINVAL);
}

TEST(guest_mem_hugetlb_takes_whole_2m_pages_only)
{
	struct guest_mem m;

	/* A size that is not whole 2 MiB pages is refused before the pool is asked. */
	CHECK(guest_mem_create_hugetlb(&m, (66ull << 20) + 4096) == -EINVAL);
	CHECK(!m.host && !m.hugetlb);
	/* The host's pool decides the rest (guest/memory reserves one in the lab). */
	int r = guest_mem_create_hugetlb(&m, 4ull << 20);
	if (r == 0) {
		CHECK(m.anon && m.hugetlb && ((uintptr_t)m.host & ((2u << 20) - 1)) == 0);
		/* Whole pages only; one given back reads as zeros (Linux 5.18 on). */
		CHECK(guest_mem_discard(&m, 0, 4096) == -EINVAL);
		CHECK(guest_mem_discard(&m, 4096, 2u << 20) == -EINVAL);
		memset(m.host, 0xa5, 4u << 20);
		r = guest_mem_discard(&m, 2u << 20, 2u << 20);
		CHECK(r == 0 || r == -EINVAL);
		if (r == 0)
			CHECK(m.host[2u << 20] == 0 && m.host[(4u << 20) - 1] == 0 &&
			      m.host[(2u << 20) - 1] == 0xa5);
		CHECK(guest_mem_advise_huge(&m) == -EINVAL);
		guest_mem_destroy(&m);
		CHECK(!m.host && !m.anon && !m.hugetlb);
	} else {
		CHECK(r == -ENOMEM);
	}
}
