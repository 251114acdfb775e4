/*
 * The tiny-guest runtime: what a guest in tiny/ can call. A guest defines
 * TINY_GUEST("name") and int main(void); main returning 0 prints "tiny: name ok"
 * and exits with status 0 through the debug-exit port.
 */
#ifndef TINY_TINY_H
#define TINY_TINY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segments.h"
#include "x86.h"

/* Exit statuses shared with tests/guest/tiny.py; 1 and 2 are left to tern-vmm's own errors */
#define TINY_EXIT_OK 0
#define TINY_EXIT_FAIL 33	 /* a CHECK failed */
#define TINY_EXIT_ALIVE 34	 /* still running after something that should have ended the VM */
#define TINY_EXIT_SKIP 77	 /* the CPU lacks what the guest tests */
#define TINY_EXIT_EXCEPTION 0x40 /* + vector (< 32): an exception nobody expected */
#define TINY_EXIT_INTERRUPT 0x60 /* an unexpected vector >= 32 */

#define TINY_GUEST(name) const char tiny_guest_name[] = name

extern const char tiny_guest_name[];
int main(void);

/* Serial console (COM1) */
void serial_putc(char c);
void tiny_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tiny_vprintf(const char *fmt, va_list ap);
/* One line "tiny: ...\n" */
#define SAY(fmt, ...) tiny_printf("tiny: " fmt "\n", ##__VA_ARGS__)

/* Ending the VM: the debug-exit port; halts forever if tern-vmm ignores it. */
__attribute__((noreturn)) void tiny_exit(int status);
__attribute__((noreturn)) void tiny_skip(const char *why);
__attribute__((noreturn)) void tiny_fail(const char *file, int line, const char *what);
__attribute__((noreturn)) void tiny_fail_eq(const char *file, int line, const char *what,
					    uint64_t a, uint64_t b);
__attribute__((noreturn)) void tiny_halt(void);
/* "tiny: NAME ok", then exit status 0: for guests that end somewhere other than main */
__attribute__((noreturn)) void tiny_ok(void);
/* Spins for at least the given number of TSC cycles */
void tiny_delay_cycles(uint64_t cycles);

#define CHECK(cond)                                           \
	do {                                                  \
		if (!(cond))                                  \
			tiny_fail(__FILE__, __LINE__, #cond); \
	} while (0)
#define CHECK_EQ(a, b)                                                          \
	do {                                                                    \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                \
		if (a_ != b_)                                                   \
			tiny_fail_eq(__FILE__, __LINE__, #a " == " #b, a_, b_); \
	} while (0)

/* Boot parameters: the kernel command line as "key=value" words. */
extern uint64_t tiny_boot_params; /* RSI at entry */
const char *tiny_cmdline(void);
/* Copies the value of key= into buf (NUL-terminated); false if key is absent. */
bool tiny_arg(const char *key, char *buf, size_t len);
bool tiny_arg_is(const char *key, const char *value);
long tiny_arg_num(const char *key, long dflt);

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));
unsigned int tiny_e820(const struct e820_entry **entries);

/* ACPI: the table with signature sig ("APIC", "DSDT", ...), or NULL. Not checksummed. */
const uint8_t *tiny_acpi_table(const char *sig);

/* Descriptor tables */
void tiny_cpu_init(void);	   /* loads the runtime's GDT, data segments and IDT on this CPU */
void tiny_tss_init(uint64_t rsp0); /* BSP only: the TSS used on entries from ring 3 */

/* Exceptions and interrupts */
struct tiny_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
typedef void (*tiny_handler)(struct tiny_frame *f);
void tiny_set_handler(unsigned int vector, tiny_handler fn);
/* Makes vector reachable with int $vector from ring 3 (gate DPL 3). */
void tiny_set_user_gate(unsigned int vector);
/* Entries start with clac (on), as Linux's do on SMAP-capable CPUs, or not (off: the default). */
void tiny_set_entry_clac(bool on);

/*
 * Expected faults: TINY_EXTABLE(from, to) in an asm statement says "a fault at
 * label from resumes at label to". The handler then records the fault below.
 * A fault at any other RIP (or a trap) is unexpected, so a wrong RIP shows.
 */
#define TINY_EXTABLE(from, to)                                                      \
	".pushsection .extable, \"a\"\n\t.balign 8\n\t.quad " #from ", " #to "\n\t" \
	".popsection\n\t"
struct tiny_fault {
	int vector; /* -1: none */
	uint64_t error, rip, cs;
};
extern volatile struct tiny_fault tiny_last_fault;
void tiny_fault_clear(void);
#define CHECK_FAULT(vec)                                 \
	do {                                             \
		CHECK_EQ(tiny_last_fault.vector, (vec)); \
		tiny_fault_clear();                      \
	} while (0)

/* Strings */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* CPUID feature tests */
bool cpu_has(uint32_t leaf, uint32_t subleaf, int reg, int bit);
enum { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };
#define HAS_POPCNT() cpu_has(1, 0, CPUID_ECX, 23)
#define HAS_RDRAND() cpu_has(1, 0, CPUID_ECX, 30)
#define HAS_FSGSBASE() cpu_has(7, 0, CPUID_EBX, 0)
#define HAS_RDSEED() cpu_has(7, 0, CPUID_EBX, 18)
#define HAS_SMAP() cpu_has(7, 0, CPUID_EBX, 20)

/* A spinlock for output shared by several vCPUs */
typedef struct {
	volatile uint32_t v;
} tiny_lock_t;
void tiny_lock(tiny_lock_t *l);
void tiny_unlock(tiny_lock_t *l);

#endif
