/*
 * The user guest's ring-3 program, in the user page. Each step checks what came
 * back and reports a failure with SYS_FAIL and the step number.
 */
#include "segments.h"
#include "user-abi.h"

	.section .user.text, "ax"
	.code64
	.globl user_main
user_main:
	/* 1. a loop in ring 3 (native on the software backend) */
	xor %eax, %eax
	mov $100000, %ecx
1:	add %rcx, %rax
	dec %ecx
	jnz 1b

	/* 2. syscall, with callee-saved registers and DF that must come back */
	mov %rax, %rdi
	mov $0x1111, %ebx
	mov $0x2222, %ebp
	mov $0x3333, %r12d
	mov $0x4444, %r13d
	mov $0x5555, %r14d
	mov $0x6666, %r15d
	std
	lea 2f(%rip), %rsi /* the RCX the kernel must see */
	pushfq
	pop %rdx /* the R11 it must see */
	mov $SYS_SUM, %eax
	syscall
2:	pushfq
	pop %r8
	cld
	mov $1, %edi
	bt $10, %r8 /* DF restored from R11 by sysretq */
	jnc fail
	mov $2, %edi
	mov %cs, %r9d
	cmp $(SEL_UCODE | 3), %r9d
	jne fail
	mov %ss, %r9d
	cmp $(SEL_UDATA | 3), %r9d
	jne fail
	mov $3, %edi
	cmp $0x1111, %rbx
	jne fail
	cmp $0x2222, %rbp
	jne fail
	cmp $0x3333, %r12
	jne fail
	cmp $0x4444, %r13
	jne fail
	cmp $0x5555, %r14
	jne fail
	cmp $0x6666, %r15
	jne fail
	mov $4, %edi
	movabs $(LOOP_SUM + 1), %r9
	cmp %r9, %rax
	jne fail

	/* 3. int $0x80 through a DPL-3 gate, back with iretq */
	lea 3f(%rip), %rsi /* the RIP the handler must see */
	mov %rsp, %rdx /* the RSP it must see */
	int $0x80
3:	mov $5, %edi
	cmp $INT80_MAGIC, %rax
	jne fail
	mov %cs, %r9d
	cmp $(SEL_UCODE | 3), %r9d
	jne fail

	/* 4. a privileged instruction: #GP, resumed at 5: through the extable */
4:	hlt
5:	lea 4b(%rip), %rdi
	mov $SYS_CHECK_GP, %eax
	syscall

	/* 5. done: the kernel ends the VM */
	mov $SYS_EXIT, %eax
	syscall
	mov $6, %edi
fail:
	mov $SYS_FAIL, %eax
	syscall
	jmp fail

	.pushsection .extable, "a"
	.balign 8
	.quad 4b, 5b
	.popsection

	.section .user.data, "aw"
	.balign 16
	.skip 4096
	.globl user_stack_top
user_stack_top:

	.section .note.GNU-stack, "", @progbits
