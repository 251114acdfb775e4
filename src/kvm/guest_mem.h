/*
 * Guest RAM: private anonymous memory mapped once in the VMM (as QEMU's, Firecracker's and
 * Cloud Hypervisor's), so that the host can back it with transparent huge pages: a memfd is
 * shared memory, which Debian's kernels give huge pages only when the host's
 * shmem_enabled says so. Every device access goes through guest_mem_ptr(), which fails on
 * overflow or on any byte outside guest RAM.
 *
 * Layout: RAM [0, low_size) sits at GPA 0; the rest, if any, at GPA 4 GiB, so
 * that [3 GiB, 4 GiB) stays free for MMIO (LAPIC, IOAPIC, PCI holes).
 */
#ifndef TERN_KVM_GUEST_MEM_H
#define TERN_KVM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_LOW_LIMIT (3ULL << 30)
#define GUEST_MEM_HIGH_BASE (4ULL << 30)
#define GUEST_MEM_HUGETLB_PAGE (2ULL << 20) /* guest_mem_create_hugetlb's page size */

struct guest_mem {
	bool anon;    /* guest_mem_create's anonymous memory (a restore maps its file instead) */
	bool hugetlb; /* of it, on 2 MiB hugetlbfs pages (guest_mem_create_hugetlb) */
	uint8_t *host;
	uint64_t size;
	uint64_t low_size;
	/*
	 * With dirty tracking (diff snapshots): one bit per 4 KiB page of the host mapping, set
	 * for every range guest_mem_ptr() hands out. Devices may write through any pointer it
	 * returns, so reads are counted too: a diff may hold a few pages more than needed,
	 * never fewer. KVM logs what the guest itself writes.
	 */
	uint8_t *dirty;
};

/*
 * Maps size bytes of anonymous memory (named tern-guest-ram in /proc/PID/smaps where the
 * kernel names anonymous mappings); sizes the low/high split. Returns 0 or -errno.
 */
int guest_mem_create(struct guest_mem *m, uint64_t size);
/*
 * The same on 2 MiB hugetlbfs pages, reserved now from the host's pool (vm.nr_hugepages):
 * -ENOMEM when it has too few free, rather than SIGBUS at the guest's first touch of a
 * page it cannot have. size: a multiple of 2 MiB. Returns 0 or -errno.
 */
int guest_mem_create_hugetlb(struct guest_mem *m, uint64_t size);
/*
 * Advises anonymous guest RAM for transparent huge pages (MADV_HUGEPAGE: 2 MiB pages where
 * the host's THP setting is "madvise" or "always"). 0 or -errno.
 */
int guest_mem_advise_huge(struct guest_mem *m);
/*
 * Gives [off, off+len) of anonymous guest RAM back to the host: it reads as zeros. On
 * hugetlbfs pages, whole 2 MiB pages only (-EINVAL otherwise; Linux 5.18 on, earlier
 * kernels refuse it with -EINVAL).
 */
int guest_mem_discard(const struct guest_mem *m, uint64_t off, uint64_t len);
/* Same split without any backing, for pure layout users (unit tests, e820). */
void guest_mem_layout(struct guest_mem *m, uint64_t size);
void guest_mem_destroy(struct guest_mem *m);

/* Starts tern-side dirty tracking (a zeroed bitmap). 0 or -ENOMEM. */
int guest_mem_track_dirty(struct guest_mem *m);
/* Moves the tern-side dirty bits into out (bits ORed in) and clears them. */
void guest_mem_take_dirty(struct guest_mem *m, uint8_t *out);

/* Host pointer for [gpa, gpa+len), or NULL when any byte is outside one RAM region. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);

/* End of the RAM region at GPA 0 (exclusive); the highest GPA + 1 overall. */
static inline uint64_t guest_mem_high_size(const struct guest_mem *m)
{
	return m->size - m->low_size;
}

#endif
