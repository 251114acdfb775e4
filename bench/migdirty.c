/*
 * The dirtying guest of bench/migrate: rewrites a fixed working set at a fixed rate while
 * the VM migrates, the same program under tern-vmm and QEMU.
 *
 * usage: migdirty MIB PAGES_PER_TICK TICK_US
 *
 * It maps MIB MiB, writes every 4 KiB page once (non-zero, so neither VMM can send them as
 * zero pages), prints "MIGDIRTY ready", and then, every TICK_US microseconds of the guest's
 * CLOCK_MONOTONIC, rewrites the next PAGES_PER_TICK pages of the set, round-robin. The
 * rate is a quota of work per tick, not "as fast as the vCPU goes": a faster host does not
 * dirty more, and a tick that starts late (a slow lab, a paused or throttled vCPU) does
 * not write more to catch up, so the pages written are never more than the quota. Each
 * second it prints what it really wrote ("MIGDIRTY t=S pages=N late=L fail=F"), so the
 * host sees the rate each VMM let it reach, e.g. under auto-converge's throttle.
 *
 * Each page holds a stamp (its index and how many times it was rewritten) that the next
 * rewrite checks first: a page lost or sent stale by a migration shows as fail=N (the
 * migration tests check contents thoroughly; this only keeps the bench from timing a
 * broken migration).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ULL), (long)(t % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
}

static uint64_t stamp(uint64_t page, uint64_t gen)
{
	return (gen << 32) ^ (page * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a5a5aULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: migdirty MIB PAGES_PER_TICK TICK_US\n");
		return 2;
	}
	uint64_t npages = strtoull(argv[1], NULL, 0) << 20 >> 12;
	uint64_t quota = strtoull(argv[2], NULL, 0), tick = strtoull(argv[3], NULL, 0) * 1000;
	if (!npages || !tick) {
		fprintf(stderr, "migdirty: MIB and TICK_US must be positive\n");
		return 2;
	}
	uint8_t *set = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (set == MAP_FAILED) {
		perror("migdirty: mmap");
		return 1;
	}
	uint32_t *gen = calloc(npages, sizeof(*gen));
	if (!gen) {
		perror("migdirty: calloc");
		return 1;
	}
	/* The whole set once, with a pattern over the page, so that no page is all zero. */
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t *w = (uint64_t *)(set + p * PAGE);
		for (unsigned int i = 0; i < PAGE / 8; i++)
			w[i] = stamp(p, 0) + i;
	}
	printf("MIGDIRTY ready: %llu pages, %llu per %llu us\n", (unsigned long long)npages,
	       (unsigned long long)quota, (unsigned long long)(tick / 1000));
	fflush(stdout);

	uint64_t next = 0, t = now_ns(), report = t + 1000000000ULL;
	uint64_t written = 0, late = 0, fails = 0;
	for (;;) {
		for (uint64_t i = 0; i < quota; i++) {
			uint64_t *w = (uint64_t *)(set + next * PAGE);
			if (w[0] != stamp(next, gen[next]))
				fails++;
			gen[next]++;
			w[0] = stamp(next, gen[next]);
			next = next + 1 == npages ? 0 : next + 1;
		}
		written += quota;
		t += tick;
		uint64_t now = now_ns();
		if (now >= report) {
			printf("MIGDIRTY t=%.3f pages=%llu late=%llu fail=%llu\n", now / 1e9,
			       (unsigned long long)written, (unsigned long long)late,
			       (unsigned long long)fails);
			fflush(stdout);
			written = late = 0;
			report = now + 1000000000ULL;
		}
		if (now > t) {
			/* Behind: the missed ticks are lost, not made up for with a burst. */
			late += (now - t) / tick;
			t = now;
			continue;
		}
		sleep_until(t);
	}
}
