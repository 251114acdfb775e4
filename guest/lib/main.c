/* The runtime's C entry (from start.S) and every way a guest ends. */
#include "tiny.h"

#define PORT_DEBUG_EXIT 0x501

uint64_t tiny_boot_params;

void tiny_start(void);
void tiny_start(void)
{
	tiny_cpu_init();
	int status = main();
	if (status == 0)
		tiny_ok();
	tiny_exit(status);
}

void tiny_ok(void)
{
	SAY("%s ok", tiny_guest_name);
	tiny_exit(TINY_EXIT_OK);
}

void tiny_delay_cycles(uint64_t cycles)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < cycles)
		cpu_relax();
}

void tiny_halt(void)
{
	for (;;)
		asm volatile("cli; hlt");
}

void tiny_exit(int status)
{
	outb(PORT_DEBUG_EXIT, (uint8_t)status);
	/* Only reached without --debug-exit: the test's timeout reports it. */
	tiny_halt();
}

void tiny_skip(const char *why)
{
	SAY("skip %s: %s", tiny_guest_name, why);
	tiny_exit(TINY_EXIT_SKIP);
}

void tiny_fail(const char *file, int line, const char *what)
{
	SAY("FAIL %s: %s:%d: %s", tiny_guest_name, file, line, what);
	tiny_exit(TINY_EXIT_FAIL);
}

void tiny_fail_eq(const char *file, int line, const char *what, uint64_t a, uint64_t b)
{
	SAY("FAIL %s: %s:%d: %s (0x%lx != 0x%lx)", tiny_guest_name, file, line, what, a, b);
	tiny_exit(TINY_EXIT_FAIL);
}

bool cpu_has(uint32_t leaf, uint32_t subleaf, int reg, int bit)
{
	if (cpuid(leaf & 0x80000000, 0).eax < leaf)
		return false;
	struct cpuid r = cpuid(leaf, subleaf);
	uint32_t regs[] = { r.eax, r.ebx, r.ecx, r.edx };
	return (regs[reg] >> bit) & 1;
}

void tiny_lock(tiny_lock_t *l)
{
	while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
		while (l->v)
			cpu_relax();
}

void tiny_unlock(tiny_lock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}
