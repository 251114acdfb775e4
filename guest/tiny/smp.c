/*
 * SMP bring-up: the BSP starts every other vCPU with INIT-SIPI-SIPI; each prints
 * "tiny: cpu <index> apic <id>". The CPU list is APIC IDs 0..N-1 with cpus=N on
 * the command line, else the MADT's.
 */
#include "smp.h"
#include "tiny.h"

TINY_GUEST("smp");

static uint32_t ids[TINY_MAX_CPUS];
static volatile uint32_t seen[TINY_MAX_CPUS];
static volatile uint32_t reported;

static void report(unsigned int cpu)
{
	uint32_t id = tiny_apic_id();

	SAY("cpu %u apic %u", cpu, id);
	seen[cpu] = id;
	__atomic_add_fetch(&reported, 1, __ATOMIC_RELEASE);
}

int main(void)
{
	long want = tiny_arg_num("cpus", 0);
	unsigned int n, self = ~0u;

	if (want > 0) {
		CHECK(want <= TINY_MAX_CPUS);
		n = (unsigned int)want;
		for (unsigned int i = 0; i < n; i++)
			ids[i] = i;
		SAY("%u cpus from the command line", n);
	} else {
		n = tiny_acpi_apic_ids(ids, TINY_MAX_CPUS);
		SAY("%u cpus in the MADT", n);
		CHECK(n > 0);
	}
	for (unsigned int i = 0; i < n; i++)
		if (ids[i] == tiny_apic_id())
			self = i;
	CHECK(self != ~0u);
	report(self);
	tiny_smp_start(ids, n, report);

	uint64_t t0 = rdtsc();
	while (__atomic_load_n(&reported, __ATOMIC_ACQUIRE) < n && rdtsc() - t0 < 5000000000UL)
		cpu_relax();
	CHECK_EQ(reported, n);
	for (unsigned int i = 0; i < n; i++)
		CHECK_EQ(seen[i], ids[i]);
	SAY("all %u cpus reported", n);
	return 0;
}
