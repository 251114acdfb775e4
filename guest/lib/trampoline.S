/*
 * Real-mode start of an application processor. tiny_smp_start copies this page to
 * TINY_TRAMP_BASE and fills the data at its end; the AP goes through 32-bit
 * protected mode to long mode with the BSP's GDT, CR3 and EFER, then jumps to the
 * entry with its own stack. Not executed in place: every address is computed from
 * TINY_TRAMP_BASE.
 */
#include "segments.h"
#include "smp.h"

#define ABS(sym) (TINY_TRAMP_BASE + (sym) - tiny_tramp_start)

	.section .rodata
	.balign 16
	.globl tiny_tramp_start
tiny_tramp_start:
	.code16
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	lgdtl tiny_tramp_gdtr - tiny_tramp_start
	mov %cr0, %eax
	or $0x1, %eax /* PE */
	mov %eax, %cr0
	ljmpl $SEL_KCODE32, $ABS(1f)

	.code32
1:	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %cr4, %eax
	or $0x20, %eax /* PAE */
	mov %eax, %cr4
	mov ABS(tiny_tramp_cr3), %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx /* EFER: LME and whatever else the BSP has */
	mov ABS(tiny_tramp_efer), %eax
	xor %edx, %edx
	wrmsr
	mov %cr0, %eax
	or $0x80000000, %eax /* PG */
	mov %eax, %cr0
	ljmp $SEL_KCODE, $ABS(2f)

	.code64
2:	mov ABS(tiny_tramp_stack), %rsp
	mov ABS(tiny_tramp_entry), %rax
	jmp *%rax

	.balign 8
	.globl tiny_tramp_gdtr, tiny_tramp_cr3, tiny_tramp_efer, tiny_tramp_stack, tiny_tramp_entry
tiny_tramp_gdtr:
	.word 0
	.long 0
	.balign 8
tiny_tramp_cr3:
	.quad 0
tiny_tramp_efer:
	.quad 0
tiny_tramp_stack:
	.quad 0
tiny_tramp_entry:
	.quad 0
	.globl tiny_tramp_end
tiny_tramp_end:

	.section .note.GNU-stack, "", @progbits
