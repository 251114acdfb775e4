/* Ring-3 set-up: page tables with one user page, TSS, SYSCALL MSRs, the per-CPU area. */
#include "user.h"

#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1
#define PTE_P 0x1UL
#define PTE_RW 0x2UL
#define PTE_US 0x4UL
#define PTE_PS 0x80UL

/* Read by the SYSCALL entry through %gs (user_entry.S): keep the offsets */
struct percpu {
	uint64_t kernel_rsp; /* 0 */
	uint64_t user_rsp;   /* 8 */
};

extern const char __user_start[], __user_end[];
void tiny_syscall_entry(void);
void tiny_syscall_dispatch(struct tiny_syscall_regs *r);

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint8_t kernel_stack[16384] __attribute__((aligned(16)));
static struct percpu percpu;
static tiny_syscall_fn syscall_fn;

void tiny_user_init(tiny_syscall_fn fn)
{
	uint64_t top = (uint64_t)(kernel_stack + sizeof(kernel_stack));

	CHECK((uint64_t)__user_start >= USER_PAGE &&
	      (uint64_t)__user_end <= USER_PAGE + USER_PAGE_SIZE);
	/* The first GiB, in 2 MiB pages; supervisor-only except the user page. */
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = i << 21 | PTE_PS | PTE_RW | PTE_P | (i << 21 == USER_PAGE ? PTE_US : 0);
	pdpt[0] = (uint64_t)pd | PTE_US | PTE_RW | PTE_P;
	pml4[0] = (uint64_t)pdpt | PTE_US | PTE_RW | PTE_P;
	write_cr3((uint64_t)pml4);

	/* Ring 3 runs with IF set: mask the 8259s, whose IRQ0 KVM's LINT0 would deliver. */
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	tiny_tss_init(top);
	percpu.kernel_rsp = top;
	syscall_fn = fn;
	wrmsr(MSR_GS_BASE, 0);
	wrmsr(MSR_KERNEL_GS_BASE, (uint64_t)&percpu);
	wrmsr(MSR_STAR, (uint64_t)(SEL_UCODE32 | 3) << 48 | (uint64_t)SEL_KCODE << 32);
	wrmsr(MSR_LSTAR, (uint64_t)tiny_syscall_entry);
	wrmsr(MSR_SFMASK, USER_SFMASK);
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
}

void tiny_syscall_dispatch(struct tiny_syscall_regs *r)
{
	syscall_fn(r);
}
