/*
 * Exception stubs for vectors 0-31 and 0x80: each pushes a zero error code when
 * the CPU does not, then its vector, and joins the common entry, which saves the
 * registers as a struct tiny_frame and calls tiny_trap(). Each stub has a second
 * entry point one clac earlier: Linux's entries on SMAP-capable CPUs start so.
 */
	.text
	.code64

/* Vectors with a CPU-pushed error code: 8, 10-14, 17, 21, 29, 30 */
#define ERRCODE_MASK 0x60227d00

	.macro STUB vec
	.balign 16
isr_clac_\vec:
	clac
isr_\vec:
	.if ((ERRCODE_MASK >> (\vec & 31)) & 1) == 0
	pushq $0
	.endif
	pushq $\vec
	jmp isr_common
	.endm

	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
	STUB \v
	.endr

isr_common:
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
	cld
	call tiny_trap
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
	add $16, %rsp
	iretq

	.section .rodata
	.balign 8
	.globl tiny_isr_table
tiny_isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
	.quad isr_\v
	.endr
	.globl tiny_isr_clac_table
tiny_isr_clac_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
	.quad isr_clac_\v
	.endr

	.section .note.GNU-stack, "", @progbits
