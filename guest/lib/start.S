/* Entry point: tern-vmm enters here in 64-bit mode with RSI = the zero page (boot_params). */
	.section .text.start, "ax"
	.code64
	.globl _start
_start:
	cli
	cld
	mov %rsi, tiny_boot_params(%rip)
	lea boot_stack_top(%rip), %rsp
	xor %ebp, %ebp
	call tiny_start
1:	hlt
	jmp 1b

	.bss
	.balign 16
boot_stack:
	.skip 16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
