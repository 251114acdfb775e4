/*
 * Ring 3 for tiny guests: own page tables in which only the 2 MiB page at 4 MiB
 * (sections .user.text/.user.data, see guest.ld) is user-accessible, a TSS, and
 * SYSCALL/SYSRET with a Linux-like entry (swapgs, per-CPU kernel stack).
 */
#ifndef TINY_USER_H
#define TINY_USER_H

#include "tiny.h"

#define USER_TEXT __attribute__((section(".user.text")))
#define USER_DATA __attribute__((section(".user.data")))
#define USER_PAGE 0x400000UL
#define USER_PAGE_SIZE 0x200000UL
/* RFLAGS bits SYSCALL clears (IA32_FMASK): TF, IF, DF, IOPL, NT, AC, as Linux */
#define USER_SFMASK (RFLAGS_TF | RFLAGS_IF | RFLAGS_DF | RFLAGS_IOPL | RFLAGS_NT | RFLAGS_AC)
#define USER_RFLAGS (RFLAGS_FIXED | RFLAGS_IF) /* on entry to ring 3 */

/* Saved by the SYSCALL entry, lowest address first */
struct tiny_syscall_regs {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t kernel_rflags; /* RFLAGS at the first instructions of the entry */
	uint64_t user_rsp;
};
/* Handles one system call; what it leaves in r->rax is returned to ring 3. */
typedef void (*tiny_syscall_fn)(struct tiny_syscall_regs *r);

void tiny_user_init(tiny_syscall_fn fn);
__attribute__((noreturn)) void tiny_enter_user(uint64_t rip, uint64_t rsp);

#endif
