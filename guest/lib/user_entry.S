/*
 * The SYSCALL entry (LSTAR) and the first entry to ring 3. The entry does what
 * Linux's does first: swapgs to the per-CPU area, save the user RSP, switch to
 * the kernel stack; the way out restores it, swapgs back, sysretq.
 */
#include "segments.h"

#define PERCPU_KERNEL_RSP 0
#define PERCPU_USER_RSP 8

	.text
	.code64
	.globl tiny_syscall_entry
tiny_syscall_entry:
	swapgs
	mov %rsp, %gs:PERCPU_USER_RSP
	mov %gs:PERCPU_KERNEL_RSP, %rsp
	pushq %gs:PERCPU_USER_RSP
	pushfq
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	cld /* SFMASK should have done it; the handler checks kernel_rflags */
	call tiny_syscall_dispatch
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $8, %rsp /* kernel_rflags */
	pop %rsp /* user_rsp */
	swapgs
	sysretq

/* void tiny_enter_user(uint64_t rip, uint64_t rsp) */
	.globl tiny_enter_user
tiny_enter_user:
	pushq $(SEL_UDATA | 3)
	pushq %rsi
	pushq $0x202 /* USER_RFLAGS: IF */
	pushq $(SEL_UCODE | 3)
	pushq %rdi
	iretq

	.section .note.GNU-stack, "", @progbits
