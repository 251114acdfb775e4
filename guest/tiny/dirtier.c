/*
 * Keeps rewriting guest RAM and checking every byte, for the live-migration tests: a page
 * the migration lost or sent stale shows as a wrong word on the destination.
 *
 * RAM from 16 MiB up, in three parts (sizes from the command line, in MiB):
 *   static=S  written once with (address | 1), then only checked;
 *   gap=G     never written: must read as zero (a zero page sent wrong shows here);
 *   mib=M     rewritten on every pass p with (address * K) ^ p, then checked whole.
 * Each pass prints "pass P ok"; a wrong word prints "FAIL ..." and exits with failure.
 * `stride=N` writes only every Nth page of the rewritten part (a lower dirty rate), and
 * checks the others still hold the value of the pass that last wrote them. `delay=N` spins
 * N iterations per page written (a counted loop, not a clock: a throttled vCPU that sleeps
 * does less of it), for a dirty rate the auto-converge test can outrun the bandwidth with.
 */
#include "tiny.h"

TINY_GUEST("dirtier");

#define BASE (16UL << 20)
#define PAGE 4096UL
#define K 0x9e3779b97f4a7c15UL

static uint64_t want_rewrite(uint64_t a, uint64_t pass)
{
	return (a * K) ^ pass;
}

static void fail_at(const char *part, uint64_t a, uint64_t got, uint64_t want, uint64_t pass)
{
	tiny_printf("FAIL pass %lu: %s word at 0x%lx is 0x%lx, want 0x%lx\n", pass, part, a, got,
		    want);
	tiny_exit(TINY_EXIT_FAIL);
}

int main(void)
{
	uint64_t s = (uint64_t)tiny_arg_num("static", 8) << 20;
	uint64_t g = (uint64_t)tiny_arg_num("gap", 8) << 20;
	uint64_t m = (uint64_t)tiny_arg_num("mib", 32) << 20;
	uint64_t stride = (uint64_t)tiny_arg_num("stride", 1);
	uint64_t delay = (uint64_t)tiny_arg_num("delay", 0);
	uint64_t st = BASE, gap = st + s, rw = gap + g, end = rw + m;
	const struct e820_entry *e;
	unsigned int n = tiny_e820(&e);
	bool fits = false;

	for (unsigned int i = 0; i < n; i++)
		if (e[i].type == 1 && e[i].addr <= BASE && end <= e[i].addr + e[i].size)
			fits = true;
	CHECK(fits && stride >= 1 && end <= (4UL << 30));
	for (uint64_t a = st; a < gap; a += 8)
		*(volatile uint64_t *)a = a | 1;
	tiny_printf("dirtier: static %lu MiB, gap %lu MiB, rewriting %lu MiB (stride %lu)\n",
		    s >> 20, g >> 20, m >> 20, stride);
	for (uint64_t pass = 1;; pass++) {
		for (uint64_t pg = rw; pg < end; pg += stride * PAGE) {
			for (uint64_t a = pg; a < pg + PAGE; a += 8)
				*(volatile uint64_t *)a = want_rewrite(a, pass);
			for (uint64_t i = 0; i < delay; i++)
				asm volatile("" ::: "memory");
		}
		for (uint64_t a = rw; a < end; a += 8) {
			uint64_t got = *(volatile uint64_t *)a, w;
			/* With a stride, untouched pages keep pass 0's zeros. */
			bool written = ((a - rw) / PAGE) % stride == 0;
			w = written ? want_rewrite(a, pass) : 0;
			if (got != w)
				fail_at("rewritten", a, got, w, pass);
		}
		for (uint64_t a = st; a < gap; a += 8)
			if (*(volatile uint64_t *)a != (a | 1))
				fail_at("static", a, *(volatile uint64_t *)a, a | 1, pass);
		for (uint64_t a = gap; a < rw; a += 8)
			if (*(volatile uint64_t *)a)
				fail_at("zero", a, *(volatile uint64_t *)a, 0, pass);
		tiny_printf("pass %lu ok\n", pass);
	}
}
