/*
 * kvmclock, as Linux uses it: CPUID 0x40000001 offers KVM_FEATURE_CLOCKSOURCE2, the
 * guest hands KVM the address of a pvclock_vcpu_time_info through
 * MSR_KVM_SYSTEM_TIME_NEW and of a pvclock_wall_clock through MSR_KVM_WALL_CLOCK_NEW,
 * and computes the time from them and the TSC. Checks that KVM fills both in, that
 * the clock advances and counts from about when the VM started, and that the wall
 * clock agrees with the host's UNIX time (now=SECONDS on the command line).
 * With cpus=N every vCPU registers its own structure and reads its clock after the
 * BSP read its own: each reading must be later (the clock is one across vCPUs).
 * Prints "tiny: cpu <i> ..." per vCPU and "tiny: wall ...".
 */
#include "smp.h"
#include "tiny.h"

TINY_GUEST("kvmclock");

#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (1u << 24)
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define PVCLOCK_TSC_STABLE_BIT (1u << 0)
#define NSEC_PER_SEC 1000000000UL
#define MAX_UPTIME_NS (60 * NSEC_PER_SEC) /* the VM started less than a minute ago */
#define DAY 86400L

/* The layouts KVM writes (Linux's asm/pvclock-abi.h) */
struct pvclock_vcpu_time_info {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
} __attribute__((packed));

struct pvclock_wall_clock {
	uint32_t version;
	uint32_t sec;
	uint32_t nsec;
} __attribute__((packed));

_Static_assert(sizeof(struct pvclock_vcpu_time_info) == 32, "pvclock_vcpu_time_info");
_Static_assert(sizeof(struct pvclock_wall_clock) == 12, "pvclock_wall_clock");

/* One per vCPU, 32-byte aligned as the ABI asks (so none crosses a page) */
static struct pvclock_vcpu_time_info pvti[TINY_MAX_CPUS] __attribute__((aligned(32)));
static struct pvclock_wall_clock wall __attribute__((aligned(32)));

struct reading {
	uint32_t version, mul;
	int8_t shift;
	uint8_t flags;
	uint64_t ns; /* system_time + the scaled TSC delta */
};

static unsigned int ncpus;
static volatile uint64_t bsp_ns; /* the BSP's last reading, before it starts the APs */
static volatile uint32_t done;

static uint64_t scale(uint64_t delta, uint32_t mul, int8_t shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* A consistent snapshot: retry while KVM is updating it (version odd or changed). */
static struct reading read_clock(volatile struct pvclock_vcpu_time_info *p)
{
	struct reading r;
	uint32_t v2;
	int tries = 0;

	do {
		CHECK(++tries < 1000);
		r.version = p->version;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint64_t ts = p->tsc_timestamp, st = p->system_time;
		r.mul = p->tsc_to_system_mul;
		r.shift = p->tsc_shift;
		r.flags = p->flags;
		uint64_t tsc = rdtsc();
		r.ns = st + scale(tsc - ts, r.mul, r.shift);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		v2 = p->version;
	} while ((r.version & 1) || r.version != v2);
	return r;
}

/* Registers this vCPU's structure, reads it twice a little apart; returns the second. */
static struct reading clock_cpu(unsigned int cpu)
{
	volatile struct pvclock_vcpu_time_info *p = &pvti[cpu];
	uint64_t gpa = (uint64_t)&pvti[cpu]; /* identity-mapped */

	CHECK_EQ(gpa & 31, 0);
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, gpa | 1);
	CHECK_EQ(rdmsr(MSR_KVM_SYSTEM_TIME_NEW), gpa | 1);
	struct reading a = read_clock(p);
	CHECK(a.version != 0); /* KVM wrote it at least once */
	CHECK_EQ(a.version & 1, 0);
	CHECK(a.mul != 0);
	CHECK(a.shift >= -32 && a.shift <= 32);
	/* TSC Hz = 1e9 * 2^32 / (mul * 2^shift): between 100 MHz and 10 GHz */
	uint64_t hz = scale(NSEC_PER_SEC, a.mul, a.shift);
	hz = hz ? (NSEC_PER_SEC * NSEC_PER_SEC) / hz : 0;
	CHECK(hz >= 100000000UL && hz <= 10000000000UL);
	CHECK(a.ns > 0 && a.ns < MAX_UPTIME_NS);
	tiny_delay_cycles(200000);
	struct reading b = read_clock(p);
	CHECK(b.ns > a.ns);
	CHECK(b.ns < MAX_UPTIME_NS);
	SAY("cpu %u version %u mul %u shift %d flags 0x%x tsc_mhz %lu ns %lu then %lu (+%lu)", cpu,
	    b.version, b.mul, b.shift, b.flags, hz / 1000000, a.ns, b.ns, b.ns - a.ns);
	return b;
}

static void ap(unsigned int cpu)
{
	struct reading r = clock_cpu(cpu);

	/* The BSP read its clock before it sent this vCPU INIT; time cannot go back. */
	CHECK(r.ns > bsp_ns);
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
}

int main(void)
{
	static uint32_t ids[TINY_MAX_CPUS];
	struct cpuid sig = cpuid(KVM_CPUID_SIGNATURE, 0);
	long now = tiny_arg_num("now", 0), n = tiny_arg_num("cpus", 1);

	if (sig.ebx != 0x4b4d564b || sig.ecx != 0x564b4d56 || sig.edx != 0x4d ||
	    sig.eax < KVM_CPUID_FEATURES)
		tiny_skip("no KVM signature at CPUID 0x40000000");
	uint32_t features = cpuid(KVM_CPUID_FEATURES, 0).eax;
	SAY("KVM features 0x%x", features);
	if (!(features & KVM_FEATURE_CLOCKSOURCE2))
		tiny_skip("no KVM_FEATURE_CLOCKSOURCE2");
	CHECK(now > 0);
	CHECK(n >= 1 && n <= TINY_MAX_CPUS);
	ncpus = (unsigned int)n;

	SAY("system time");
	struct reading r = clock_cpu(0);
	if (features & KVM_FEATURE_CLOCKSOURCE_STABLE_BIT)
		SAY("stable bit offered; pvclock says %s",
		    r.flags & PVCLOCK_TSC_STABLE_BIT ? "stable" : "not stable");

	SAY("wall clock");
	uint64_t gpa = (uint64_t)&wall;
	wrmsr(MSR_KVM_WALL_CLOCK_NEW, gpa);
	/* KVM writes it once, at the wrmsr: it must be consistent by now */
	CHECK_EQ(wall.version & 1, 0);
	CHECK(wall.version != 0);
	CHECK(wall.nsec < NSEC_PER_SEC);
	long sec = (long)wall.sec;
	SAY("wall version %u sec %u nsec %u host %ld (boot %ld s)", wall.version, wall.sec,
	    wall.nsec, now, sec - now);
	/* sec is the UNIX time at which the system time was 0: about when the VM started */
	CHECK(sec > now - DAY && sec < now + DAY);
	struct reading t = read_clock(&pvti[0]);
	uint64_t unix_ns = (uint64_t)sec * NSEC_PER_SEC + wall.nsec + t.ns;
	SAY("wall now %lu.%09lu", unix_ns / NSEC_PER_SEC, unix_ns % NSEC_PER_SEC);

	if (ncpus > 1) {
		for (unsigned int i = 0; i < ncpus; i++)
			ids[i] = i;
		bsp_ns = read_clock(&pvti[0]).ns;
		tiny_smp_start(ids, ncpus, ap);
		uint64_t t0 = rdtsc();
		while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < ncpus - 1 &&
		       rdtsc() - t0 < 5000000000UL)
			cpu_relax();
		CHECK_EQ(done, ncpus - 1);
		SAY("all %u cpus agree", ncpus);
	}
	return 0;
}
