/*
 * Ring 3: enter with iretq, run a loop, syscall (checked at CPL0: RCX, R11,
 * masked RFLAGS), sysretq back (checked in ring 3), int $0x80 through a DPL-3
 * gate and iretq back, a #GP from ring 3, then a last syscall that ends the VM.
 * The ring-3 side is user-ring3.S. skip=sysflags leaves out the check that syscall
 * keeps the RFLAGS bits FMASK does not clear, for a CPU that clears them all (QEMU's
 * TCG; tests/guest/tiny.py).
 */
#include "user-abi.h"
#include "user.h"

TINY_GUEST("user");

void user_main(void); /* user-ring3.S */
extern char user_stack_top[];

static void on_syscall(struct tiny_syscall_regs *r)
{
	switch (r->rax) {
	case SYS_SUM:
		SAY("syscall from ring 3: cs 0x%x ss 0x%x rcx 0x%lx r11 0x%lx rflags 0x%lx",
		    read_cs(), read_ss(), r->rcx, r->r11, r->kernel_rflags);
		CHECK_EQ(read_cs(), SEL_KCODE);
		CHECK_EQ(read_ss(), SEL_KDATA);
		CHECK_EQ(r->rcx, r->rsi); /* the RIP after the syscall */
		CHECK_EQ(r->r11, r->rdx); /* ring 3's RFLAGS */
		CHECK(r->r11 & RFLAGS_DF);
		if (tiny_arg_is("skip", "sysflags"))
			SAY("not checked: RFLAGS after syscall is R11 & ~FMASK");
		else
			CHECK_EQ(r->kernel_rflags, r->r11 & ~USER_SFMASK);
		CHECK_EQ(r->rdi, LOOP_SUM);
		r->rax = r->rdi + 1;
		SAY("returning with sysretq");
		break;
	case SYS_CHECK_GP:
		SAY("hlt in ring 3: vector %d error 0x%lx rip 0x%lx cs 0x%lx",
		    tiny_last_fault.vector, tiny_last_fault.error, tiny_last_fault.rip,
		    tiny_last_fault.cs);
		CHECK_EQ(tiny_last_fault.rip, r->rdi);
		CHECK_EQ(tiny_last_fault.cs, SEL_UCODE | 3);
		CHECK_EQ(tiny_last_fault.error, 0);
		CHECK_FAULT(VEC_GP);
		break;
	case SYS_EXIT:
		SAY("last syscall from ring 3");
		tiny_ok();
	case SYS_FAIL:
		SAY("FAIL %s: ring-3 check %lu failed", tiny_guest_name, r->rdi);
		tiny_exit(TINY_EXIT_FAIL);
	default:
		SAY("FAIL %s: unknown syscall %lu", tiny_guest_name, r->rax);
		tiny_exit(TINY_EXIT_FAIL);
	}
}

static void on_int80(struct tiny_frame *f)
{
	SAY("int $0x80 from ring 3: cs 0x%lx ss 0x%lx rip 0x%lx rsp 0x%lx", f->cs, f->ss, f->rip,
	    f->rsp);
	CHECK_EQ(f->cs, SEL_UCODE | 3);
	CHECK_EQ(f->ss, SEL_UDATA | 3);
	CHECK_EQ(f->rip, f->rsi);
	CHECK_EQ(f->rsp, f->rdx);
	CHECK_EQ(read_cs(), SEL_KCODE);
	f->rax = INT80_MAGIC;
	SAY("returning with iretq");
}

int main(void)
{
	tiny_user_init(on_syscall);
	tiny_set_handler(0x80, on_int80);
	tiny_set_user_gate(0x80);
	/* As Linux on SMAP-capable CPUs: exception entries start with clac */
	tiny_set_entry_clac(HAS_SMAP());
	SAY("entering ring 3 with iretq (exception entries start with clac: %d)", HAS_SMAP());
	tiny_enter_user((uint64_t)user_main, (uint64_t)user_stack_top);
}
