/*
 * Fills guest RAM for the snapshot tests, then counts like counter.c.
 *
 * `mib=N` (command line) MiB from 16 MiB up get a non-zero pattern (each 8-byte word
 * holds its own address | 1), so a snapshot's memory file has that much data to write.
 * The fill runs in ring 3, where the software KVM backend runs code natively: a GiB
 * takes well under a second instead of minutes in the instruction emulator. The guest
 * image below 16 MiB is left alone. Then a system call brings it back to CPL0, which
 * prints "memfill: done" and prints "count N" every `every=` iterations, forever.
 */
#include "tiny.h"
#include "user.h"

TINY_GUEST("memfill");

#define FILL_START (16UL << 20)
#define DEFAULT_EVERY 30000
#define SYS_FILLED 1
#define PTE_P 0x1UL
#define PTE_RW 0x2UL
#define PTE_US 0x4UL
#define PTE_PS 0x80UL

/* The first 4 GiB in 2 MiB pages: user-accessible are the user page and the fill range. */
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[4][512] __attribute__((aligned(4096)));

static uint64_t user_stack[512] USER_DATA __attribute__((aligned(16)));
static uint64_t fill_from USER_DATA, fill_to USER_DATA;
static volatile uint64_t counter;

static void __attribute__((section(".user.text"), noreturn, used)) user_fill(void)
{
	for (uint64_t *p = (uint64_t *)fill_from; p < (uint64_t *)fill_to; p++)
		*p = (uint64_t)p | 1;
	asm volatile("syscall" : : "a"(SYS_FILLED) : "rcx", "r11", "memory");
	for (;;)
		asm volatile("pause");
}

static void on_syscall(struct tiny_syscall_regs *r)
{
	long every = tiny_arg_num("every", DEFAULT_EVERY);
	uint64_t lines = 0;

	if (r->rax != SYS_FILLED) {
		SAY("FAIL %s: unknown syscall %lu", tiny_guest_name, r->rax);
		tiny_exit(TINY_EXIT_FAIL);
	}
	if (every < 1)
		every = DEFAULT_EVERY;
	tiny_printf("memfill: done\n");
	tiny_printf("counter: every %ld\n", every);
	for (;;) {
		for (long i = 0; i < every; i++)
			counter++;
		tiny_printf("count %lu\n", ++lines);
	}
}

/* True if [from, to) lies within one usable RAM entry of the e820 map. */
static bool is_ram(uint64_t from, uint64_t to)
{
	const struct e820_entry *e;
	unsigned int n = tiny_e820(&e);

	for (unsigned int i = 0; i < n; i++)
		if (e[i].type == 1 && e[i].addr <= from && to <= e[i].addr + e[i].size)
			return true;
	return false;
}

int main(void)
{
	long mib = tiny_arg_num("mib", 0);
	uint64_t from = FILL_START, to = FILL_START + ((uint64_t)mib << 20);

	tiny_printf("memfill: %ld MiB from 0x%lx\n", mib, from);
	CHECK(mib >= 0 && to <= (4UL << 30));
	CHECK(mib == 0 || is_ram(from, to));
	tiny_user_init(on_syscall);
	/* As the user guest: tern catches the software backend's broken SYSCALL at a clac */
	tiny_set_entry_clac(HAS_SMAP());
	for (uint64_t i = 0; i < 4 * 512; i++) {
		uint64_t a = i << 21;
		bool user = a == USER_PAGE || (a + (1UL << 21) > from && a < to);
		pd[i / 512][i % 512] = a | PTE_PS | PTE_RW | PTE_P | (user ? PTE_US : 0);
	}
	for (int i = 0; i < 4; i++)
		pdpt[i] = (uint64_t)pd[i] | PTE_US | PTE_RW | PTE_P;
	pml4[0] = (uint64_t)pdpt | PTE_US | PTE_RW | PTE_P;
	write_cr3((uint64_t)pml4);
	fill_from = from;
	fill_to = to;
	tiny_enter_user((uint64_t)user_fill, (uint64_t)(user_stack + 512));
}
