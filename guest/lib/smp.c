/* Application-processor bring-up: INIT, then SIPI (twice if needed), one AP at a time. */
#include "smp.h"
#include "tiny.h"

#define LAPIC_BASE 0xfee00000UL
#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define SVR_ENABLE 0x100
#define ICR_BUSY (1 << 12)
#define ICR_INIT_ASSERT 0xc500 /* level-triggered, assert, INIT */
#define ICR_INIT_DEASSERT 0x8500
#define ICR_STARTUP 0x4600
#define AP_STACK_SIZE 8192
/* TSC cycles to wait for an AP to check in: seconds on any CPU tern runs on */
#define AP_TIMEOUT_CYCLES 5000000000UL

extern const char tiny_tramp_start[], tiny_tramp_end[], tiny_tramp_gdtr[], tiny_tramp_cr3[],
	tiny_tramp_efer[], tiny_tramp_stack[], tiny_tramp_entry[];

static uint8_t ap_stacks[TINY_MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static tiny_ap_fn ap_fn;
static volatile unsigned int ap_booting; /* index the next AP takes */
static volatile unsigned int ap_alive;	 /* last index that checked in */

uint32_t tiny_apic_id(void)
{
	return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	mmio_write32(LAPIC_BASE + LAPIC_ICR_HI, apic_id << 24);
	mmio_write32(LAPIC_BASE + LAPIC_ICR_LO, icr);
	for (int i = 0; i < 100000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LO) & ICR_BUSY); i++)
		cpu_relax();
}

void tiny_ap_entry(void);
void tiny_ap_entry(void)
{
	unsigned int cpu = ap_booting;

	tiny_cpu_init();
	__atomic_store_n(&ap_alive, cpu, __ATOMIC_RELEASE);
	ap_fn(cpu);
	tiny_halt();
}

static void *tramp_field(const char *sym)
{
	return (void *)(TINY_TRAMP_BASE + (sym - tiny_tramp_start));
}

static bool wait_alive(unsigned int cpu)
{
	uint64_t t0 = rdtsc();

	while (__atomic_load_n(&ap_alive, __ATOMIC_ACQUIRE) != cpu)
		if (rdtsc() - t0 > AP_TIMEOUT_CYCLES)
			return false;
		else
			cpu_relax();
	return true;
}

void tiny_smp_start(const uint32_t *apic_ids, unsigned int n, tiny_ap_fn fn)
{
	uint32_t self = tiny_apic_id();
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) gdtr;

	CHECK(n <= TINY_MAX_CPUS);
	asm volatile("sgdt %0" : "=m"(gdtr));
	memcpy((void *)TINY_TRAMP_BASE, tiny_tramp_start, tiny_tramp_end - tiny_tramp_start);
	*(uint16_t *)tramp_field(tiny_tramp_gdtr) = gdtr.limit;
	*(uint32_t *)tramp_field(tiny_tramp_gdtr + 2) = (uint32_t)gdtr.base;
	*(uint64_t *)tramp_field(tiny_tramp_cr3) = read_cr3();
	*(uint64_t *)tramp_field(tiny_tramp_efer) = rdmsr(MSR_EFER) & ~EFER_LMA;
	*(uint64_t *)tramp_field(tiny_tramp_entry) = (uint64_t)tiny_ap_entry;
	ap_fn = fn;
	ap_alive = ~0u;
	mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | 0xff);

	for (unsigned int cpu = 0; cpu < n; cpu++) {
		if (apic_ids[cpu] == self)
			continue;
		ap_booting = cpu;
		*(uint64_t *)tramp_field(tiny_tramp_stack) =
			(uint64_t)(ap_stacks[cpu] + AP_STACK_SIZE);
		/* KVM's local APIC needs none of the delays the MP spec asks between these. */
		send_ipi(apic_ids[cpu], ICR_INIT_ASSERT);
		send_ipi(apic_ids[cpu], ICR_INIT_DEASSERT);
		send_ipi(apic_ids[cpu], ICR_STARTUP | TINY_TRAMP_BASE >> 12);
		if (!wait_alive(cpu)) {
			send_ipi(apic_ids[cpu], ICR_STARTUP | TINY_TRAMP_BASE >> 12);
			if (!wait_alive(cpu)) {
				SAY("FAIL %s: cpu %u (apic %u) did not start", tiny_guest_name, cpu,
				    apic_ids[cpu]);
				tiny_exit(TINY_EXIT_FAIL);
			}
		}
	}
}
