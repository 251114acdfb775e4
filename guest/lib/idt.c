/*
 * The IDT (vectors 0-31 and 0x80), the C side of exception entry, expected-fault
 * fix-ups (TINY_EXTABLE) and the report of an unexpected exception.
 */
#include "tiny.h"

#define NSTUBS 33 /* 0..31, then 0x80 */
#define VEC_SYSCALL_GATE 0x80

struct gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, reserved;
} __attribute__((packed));

struct extable_entry {
	uint64_t from, to;
};

extern const uint64_t tiny_isr_table[NSTUBS], tiny_isr_clac_table[NSTUBS];
extern const struct extable_entry __extable_start[], __extable_end[];
void tiny_printf_break_lock(void);
void tiny_trap(struct tiny_frame *f);

static struct gate idt[256] __attribute__((aligned(16)));
static tiny_handler handlers[256];
static bool idt_built, entry_clac;
static uint8_t stub_dpl[NSTUBS];
volatile struct tiny_fault tiny_last_fault = { .vector = -1 };

static void set_gate(unsigned int stub)
{
	unsigned int vec = stub < 32 ? stub : VEC_SYSCALL_GATE, dpl = stub_dpl[stub];
	uint64_t fn = entry_clac ? tiny_isr_clac_table[stub] : tiny_isr_table[stub];

	idt[vec] = (struct gate){
		.off0 = (uint16_t)fn,
		.sel = SEL_KCODE,
		.type = 0x8e | dpl << 5, /* present, 64-bit interrupt gate */
		.off1 = (uint16_t)(fn >> 16),
		.off2 = (uint32_t)(fn >> 32),
	};
}

void tiny_idt_load(void);
void tiny_idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) d = { sizeof(idt) - 1, (uint64_t)idt };

	if (!idt_built) {
		for (unsigned int i = 0; i < NSTUBS; i++)
			set_gate(i);
		idt_built = true;
	}
	asm volatile("lidt %0" : : "m"(d));
}

void tiny_set_handler(unsigned int vector, tiny_handler fn)
{
	handlers[vector & 255] = fn;
}

void tiny_set_user_gate(unsigned int vector)
{
	CHECK_EQ(vector, VEC_SYSCALL_GATE); /* the only vector >= 32 with a stub */
	stub_dpl[32] = 3;
	set_gate(32);
}

void tiny_set_entry_clac(bool on)
{
	entry_clac = on;
	for (unsigned int i = 0; i < NSTUBS; i++)
		set_gate(i);
}

void tiny_fault_clear(void)
{
	tiny_last_fault.vector = -1;
}

static const char *const names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE",  "#CP",
};

static __attribute__((noreturn)) void unexpected(struct tiny_frame *f)
{
	const char *name = f->vector < 32 && names[f->vector] ? names[f->vector] : "";

	tiny_printf_break_lock();
	SAY("unexpected exception %lu %s error 0x%lx at rip 0x%lx cs 0x%lx rflags 0x%lx "
	    "rsp 0x%lx ss 0x%lx",
	    f->vector, name, f->error, f->rip, f->cs, f->rflags, f->rsp, f->ss);
	if (f->vector == VEC_PF)
		SAY("cr2 0x%lx", read_cr2());
	tiny_exit(f->vector < 32 ? TINY_EXIT_EXCEPTION + (int)f->vector : TINY_EXIT_INTERRUPT);
}

void tiny_trap(struct tiny_frame *f)
{
	if (handlers[f->vector & 255]) {
		handlers[f->vector & 255](f);
		return;
	}
	for (const struct extable_entry *e = __extable_start; e < __extable_end; e++) {
		if (e->from == f->rip) {
			tiny_last_fault.vector = (int)f->vector;
			tiny_last_fault.error = f->error;
			tiny_last_fault.rip = f->rip;
			tiny_last_fault.cs = f->cs;
			f->rip = e->to;
			return;
		}
	}
	unexpected(f);
}
