/* The destination's side of post-copy (migrate_postcopy.h). */
#include "vmm/migrate_postcopy.h"
#include "jail/seccomp.h"
#include "core/log.h"
#include "core/util.h"
#include "vmm/migrate.h"
#include "vmstate/migration.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const uint8_t zero_page[MIG_PAGE] __attribute__((aligned(4096)));

#define HUGE_PAGES (GUEST_MEM_HUGETLB_PAGE / MIG_PAGE) /* 4 KiB pages in a 2 MiB one */

static bool test_bit(const uint8_t *b, uint64_t p)
{
	return __atomic_load_n(&b[p / 8], __ATOMIC_RELAXED) & (1u << (p % 8));
}

/* Places huge page h from its filled copy; 0 or -errno. */
static int place_huge(struct postcopy_dst *pc, uint64_t h)
{
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)(pc->mem->host + h * GUEST_MEM_HUGETLB_PAGE),
		.src = (uint64_t)(uintptr_t)pc->stage[h],
		.len = GUEST_MEM_HUGETLB_PAGE,
	};
	int r = ioctl(pc->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST ? -errno : 0;

	free(pc->stage[h]);
	pc->stage[h] = NULL;
	return r;
}

/* A page into its huge page's copy; the huge page goes in with its last stale page. */
static int stage_page(struct postcopy_dst *pc, uint64_t p, const uint8_t *src)
{
	uint64_t h = p / HUGE_PAGES;

	/* Not stale, or here already (asked for and sent in the background too). */
	if (!pc->stage[h] || !test_bit(pc->want, p))
		return 0;
	memcpy(pc->stage[h] + (p % HUGE_PAGES) * MIG_PAGE, src, MIG_PAGE);
	__atomic_fetch_and(&pc->want[p / 8], (uint8_t) ~(1u << (p % 8)), __ATOMIC_RELAXED);
	return --pc->missing[h] ? 0 : place_huge(pc, h);
}

/* Places one run of pages that arrived; a page already there (EEXIST) stays as it is. */
static int place(void *opaque, uint64_t first, uint32_t count, enum mig_run_kind kind,
		 const uint8_t *data)
{
	struct postcopy_dst *pc = opaque;

	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *src = kind == MIG_RUN_DATA ? data + i * MIG_PAGE : zero_page;
		if (pc->stage) {
			int r = stage_page(pc, first + i, src);
			if (r)
				return r;
			continue;
		}
		struct uffdio_copy c = {
			.dst = (uint64_t)(uintptr_t)(pc->mem->host + (first + i) * MIG_PAGE),
			.src = (uint64_t)(uintptr_t)src,
			.len = MIG_PAGE,
		};
		if (ioctl(pc->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

/* Frees the hugetlb bookkeeping (copies not placed included). */
static void stage_free(struct postcopy_dst *pc)
{
	for (uint64_t h = 0; pc->stage && h < pc->pages / HUGE_PAGES; h++)
		free(pc->stage[h]);
	free(pc->stage);
	free(pc->missing);
	free(pc->want);
	pc->stage = NULL;
	pc->missing = NULL;
	pc->want = NULL;
}

static void *recv_thread(void *arg)
{
	struct postcopy_dst *pc = arg;
	struct vmstate_section s;
	struct migrate_progress p;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t done = 0;
	char err[512];
	int r;

	pthread_setname_np(pthread_self(), "mig-postcopy-rx");
	seccomp_enter_or_die(SECCOMP_VMM);
	for (;;) {
		if ((r = vmstate_read_section(pc->sock, &s, &buf, &cap, MIG_RAM_SECTION_MAX, 120000,
					      err, sizeof(err))))
			break;
		if (s.tag == VMSTATE_TAG_MIG_RAM) {
			if ((r = mig_ram_walk(&s, pc->pages, place, pc, &done, err, sizeof(err))))
				break;
			continue;
		}
		if (s.tag == VMSTATE_TAG_MIG_COMPLETE)
			break;
		r = fail_msg(err, sizeof(err), -EPROTO, "unexpected %s section in post-copy",
			     vmstate_tag_name(s.tag));
		break;
	}
	/* Every stale page came (the source sends them all): no copy is left to fill. */
	for (uint64_t h = 0; !r && pc->stage && h < pc->pages / HUGE_PAGES; h++)
		if (pc->stage[h])
			r = fail_msg(
				err, sizeof(err), -EPROTO,
				"the source completed with %u pages of huge page %llu not sent",
				pc->missing[h], (unsigned long long)h);
	if (r)
		/* Part of the guest's memory is only at the source: it cannot run on. */
		die("post-copy failed: %s; the VM cannot go on without its memory", err);
	/* Every page the source had is here: what is still a hole reads as zeros. */
	atomic_store(&pc->done, 1);
	struct uffdio_range range = { (uint64_t)(uintptr_t)pc->mem->host, pc->mem->size };
	if (ioctl(pc->uffd, UFFDIO_UNREGISTER, &range) < 0)
		log_warn("post-copy: UFFDIO_UNREGISTER: %s", strerror(errno));
	pthread_join(pc->fault_thread, NULL);
	close(pc->uffd);
	stage_free(pc);
	migrate_get_progress(&p);
	p.state = MIGRATE_COMPLETED;
	struct mig_report rep;
	if (vmstate_read_section(pc->sock, &s, &buf, &cap, 4096, 10000, err, sizeof(err)) == 0 &&
	    s.tag == VMSTATE_TAG_MIG_REPORT && mig_report_get(&s, &rep) == 0) {
		p.downtime_us = rep.downtime_us;
		p.total_ms = rep.total_ms;
		p.bytes_sent = rep.bytes_sent;
		p.round = rep.rounds;
	}
	migrate_progress_set_incoming(&p);
	log_info("post-copy complete: %llu pages arrived after the switchover (downtime %.1f ms, "
		 "%llu ms in all)",
		 (unsigned long long)done, p.downtime_us / 1000.0, (unsigned long long)p.total_ms);
	free(buf);
	close(pc->sock);
	return NULL;
}

static void *fault_thread(void *arg)
{
	struct postcopy_dst *pc = arg;
	struct pollfd pfd = { .fd = pc->uffd, .events = POLLIN };

	pthread_setname_np(pthread_self(), "mig-postcopy-pf");
	seccomp_enter_or_die(SECCOMP_VMM); /* started before the main thread has its list */
	while (!atomic_load(&pc->done)) {
		struct uffd_msg msg;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(pc->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t off = msg.arg.pagefault.address - (uint64_t)(uintptr_t)pc->mem->host;
		if (off >= pc->mem->size)
			continue;
		uint64_t p = off / MIG_PAGE, end = p + 1;
		if (pc->want) {
			/* A huge page waits for all its stale pages. */
			p = p / HUGE_PAGES * HUGE_PAGES;
			end = p + HUGE_PAGES;
		}
		pthread_mutex_lock(pc->wlock);
		for (; p < end; p++) {
			if ((pc->want && !test_bit(pc->want, p)) ||
			    __atomic_fetch_or(&pc->requested[p / 8], (uint8_t)(1u << (p % 8)),
					      __ATOMIC_RELAXED) &
				    (1u << (p % 8)))
				continue;
			vmstate_begin(pc->w, VMSTATE_TAG_MIG_PAGE_REQ, 0, MIG_SECTION_VERSION);
			vmstate_put_u64(pc->w, p);
			vmstate_end(pc->w);
		}
		pthread_mutex_unlock(pc->wlock);
	}
	return NULL;
}

/*
 * hugetlb: keeps a copy of each huge page that holds a stale page, with the count of its
 * stale pages, and drops the page (a fault on it then waits for the copy to fill).
 */
static int stage_stale(struct postcopy_dst *pc, const uint8_t *stale, char *err, size_t n)
{
	uint64_t huge = pc->pages / HUGE_PAGES, bm = (pc->pages + 7) / 8;

	pc->stage = calloc(huge, sizeof(*pc->stage));
	pc->missing = calloc(huge, sizeof(*pc->missing));
	pc->want = malloc(bm);
	if (!pc->stage || !pc->missing || !pc->want)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	memcpy(pc->want, stale, bm);
	uint64_t copies = 0;
	for (uint64_t h = 0; h < huge; h++) {
		for (uint64_t p = h * HUGE_PAGES; p < (h + 1) * HUGE_PAGES; p++)
			pc->missing[h] += test_bit(stale, p);
		copies += pc->missing[h] > 0;
	}
	/* Refused now the source can still run the VM on, rather than failing half-way. */
	uint64_t avail_kib = host_mem_available_kib();
	if (avail_kib && copies * (GUEST_MEM_HUGETLB_PAGE >> 10) > avail_kib)
		return fail_msg(err, n, -ENOMEM,
				"post-copy into 2 MiB pages keeps a copy of each of the %llu with "
				"stale data (%llu MiB) until it fills; this host has %llu MiB "
				"available: migrate without post_copy, or with auto_converge",
				(unsigned long long)copies,
				(unsigned long long)(copies * GUEST_MEM_HUGETLB_PAGE >> 20),
				(unsigned long long)(avail_kib >> 10));
	for (uint64_t h = 0; h < huge; h++) {
		if (!pc->missing[h])
			continue;
		uint8_t *at = pc->mem->host + h * GUEST_MEM_HUGETLB_PAGE;
		if (!(pc->stage[h] = malloc(GUEST_MEM_HUGETLB_PAGE)))
			return fail_msg(err, n, -ENOMEM,
					"out of memory for the copies of the 2 MiB pages that "
					"post-copy fills");
		memcpy(pc->stage[h], at, GUEST_MEM_HUGETLB_PAGE);
		int e = guest_mem_discard(pc->mem, h * GUEST_MEM_HUGETLB_PAGE,
					  GUEST_MEM_HUGETLB_PAGE);
		if (e)
			return fail_msg(err, n, e,
					"post-copy: cannot drop a 2 MiB page (MADV_DONTNEED on "
					"hugetlbfs needs Linux 5.18): %s",
					strerror(-e));
	}
	return 0;
}

/*
 * A userfaultfd that also takes the faults KVM makes in the kernel: the system call needs
 * CAP_SYS_PTRACE for those (unless vm.unprivileged_userfaultfd is 1); a jailed tern-vmm,
 * which has no capability, gets one from /dev/userfaultfd (Linux 6.1), which its jail
 * holds for it (the device node's permission is the privilege).
 */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), dev, e;

	if (fd >= 0 || errno != EPERM)
		return fd >= 0 ? fd : -errno;
	e = errno;
	if ((dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC)) < 0)
		return -e;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	e = errno;
	close(dev);
	return fd >= 0 ? fd : -e;
}

int postcopy_dst_begin(struct postcopy_dst *pc, const struct guest_mem *mem, const uint8_t *stale,
		       int sock, struct vmstate_writer *w, pthread_mutex_t *wlock, char *err,
		       size_t n)
{
	uint64_t pages = mem->size / MIG_PAGE;
	int r = 0;

	memset(pc, 0, sizeof(*pc));
	pc->sock = sock;
	pc->mem = mem;
	pc->pages = pages;
	pc->w = w;
	pc->wlock = wlock;
	pc->uffd = -1;
	pc->requested = calloc((pages + 7) / 8, 1);
	if (!pc->requested)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	/* What changed at the source since it was sent is not to be trusted: a hole. */
	if (mem->hugetlb && (r = stage_stale(pc, stale, err, n)))
		goto fail;
	for (uint64_t p = 0; !mem->hugetlb && p < pages;) {
		if (!(stale[p / 8] & (1u << (p % 8)))) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < pages && (stale[q / 8] & (1u << (q % 8))))
			q++;
		if ((r = guest_mem_discard(mem, p * MIG_PAGE, (q - p) * MIG_PAGE))) {
			fail_msg(err, n, r, "post-copy: cannot drop stale RAM: %s", strerror(-r));
			goto fail;
		}
		p = q;
	}
	if ((pc->uffd = uffd_open()) < 0) {
		r = fail_msg(err, n, pc->uffd, "post-copy needs userfaultfd: %s",
			     strerror(-pc->uffd));
		goto fail;
	}
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)mem->host, mem->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(pc->uffd, UFFDIO_API, &api) < 0 || ioctl(pc->uffd, UFFDIO_REGISTER, &reg) < 0) {
		r = fail_msg(err, n, -errno, "post-copy: userfaultfd on guest RAM: %s",
			     strerror(errno));
		goto fail;
	}
	if (pthread_create(&pc->fault_thread, NULL, fault_thread, pc) ||
	    pthread_create(&pc->recv_thread, NULL, recv_thread, pc))
		die("post-copy: cannot start its threads");
	pthread_detach(pc->recv_thread);
	return 0;
fail:
	if (pc->uffd >= 0)
		close(pc->uffd);
	stage_free(pc);
	free(pc->requested);
	pc->requested = NULL;
	return r;
}
