/*
 * Snapshot benchmark guest (bench/snapshot): a PVH ELF (Xen ELF note
 * XEN_ELFNOTE_PHYS32_ENTRY) that fills FILL_MIB MiB of its RAM, from 16 MiB up, with a
 * non-zero pattern, prints "F" on COM1 (port 0x3f8) and then reads one quadword of every
 * filled 4 KiB page, over and over, for ever.
 *
 * Why not simply `rep stosl` where PVH enters (32-bit protected mode, CPL0)? On the
 * software KVM backend of the project's machines CPL0 code is emulated, ~0.5 us per
 * stored dword: 2 GiB would take minutes. Code at CPL3 runs natively there. So the entry
 * code (a few thousand emulated instructions) switches to long mode with identity-mapped
 * 2 MiB pages over the first 4 GiB (user-accessible), and the fill and the read loop run
 * at CPL3. That backend does not honour IOPL 3 for user code, so the user code asks the
 * CPL0 side to print: with R15 = MAGIC it executes `hlt`, whose #GP the handler turns into
 * "F\n" on the serial port and a return to the next instruction. Any other exception
 * prints "E" and halts with interrupts off; the guest never enables interrupts.
 *
 * The read loop keeps touching every filled page, so a VM restored from a snapshot of
 * this guest maps the whole snapshot within its first pass (what the clone RSS figures
 * of bench/snapshot rely on). It keeps one host CPU busy while the VM runs.
 *
 * Build: cc -DFILL_MIB=N -c pvh-fill.S; ld -Ttext-segment=0x100000 (as bench/snapshot).
 */
#ifndef FILL_MIB
#error "build with -DFILL_MIB=N (MiB filled from 16 MiB up)"
#endif

#define FILL_BASE 0x01000000
#define PATTERN 0x5aa5c33c0ff0e11e /* non-zero in every byte */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_UDATA 0x18
#define SEL_UCODE64 0x20
#define SEL_TSS 0x28
#define COM1 0x3f8
#define MAGIC 0x46494c4c /* "FILL" */

	.section .note.pvh, "a", @note
	.balign 4
	.long 4			/* name size: "Xen\0" */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry

	.text
	.code32
	.globl _start
_start:
pvh_entry:
	cli
	cld
	mov $stack_top, %esp
	/* Page tables: PML4[0] -> PDPT; PDPT[0..3] -> 4 PDs of 512 x 2 MiB pages (0-4 GiB). */
	mov $pml4, %edi
	mov $(6 * 4096 / 4), %ecx
	xor %eax, %eax
	rep stosl
	movl $(pdpt + 0x7), pml4	/* present, writable, user */
	mov $pdpt, %edi
	mov $(pd + 0x7), %eax
	mov $4, %ecx
1:	mov %eax, (%edi)
	add $4096, %eax
	add $8, %edi
	loop 1b
	mov $pd, %edi
	mov $0x87, %eax			/* present, writable, user, 2 MiB page */
	xor %edx, %edx
	mov $2048, %ecx
2:	mov %eax, (%edi)
	mov %edx, 4(%edi)
	add $0x200000, %eax
	adc $0, %edx
	add $8, %edi
	loop 2b
	/* The TSS descriptor's base (the TSS is below 16 MiB: bytes 2-4 of the descriptor). */
	mov $tss, %eax
	mov %ax, gdt + SEL_TSS + 2
	shr $16, %eax
	mov %al, gdt + SEL_TSS + 4
	movl $stack_top, tss + 4	/* RSP0 */
	/* Long mode: PAE, CR3, EFER.LME, paging. */
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	lgdt gdt_ptr
	mov %cr0, %eax
	or $0x80000001, %eax
	mov %eax, %cr0
	ljmp $SEL_CODE64, $long64

	.code64
long64:
	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $stack_top, %rsp
	/* IDT: vectors 0-31 -> fault (64-bit interrupt gates, DPL 0). */
	mov $idt, %rdi
	mov $fault, %rax
	mov $32, %ecx
3:	mov %ax, (%rdi)
	movw $SEL_CODE64, 2(%rdi)
	movw $0x8e00, 4(%rdi)
	mov %rax, %rdx
	shr $16, %rdx
	mov %dx, 6(%rdi)
	shr $16, %rdx
	mov %edx, 8(%rdi)
	movl $0, 12(%rdi)
	add $16, %rdi
	loop 3b
	mov $gp_handler, %rax		/* vector 13, #GP: the print request */
	mov %ax, idt + 13 * 16
	shr $16, %rax
	mov %ax, idt + 13 * 16 + 6
	lidt idt_ptr
	mov $SEL_TSS, %ax
	ltr %ax
	/* To CPL3 with interrupts off. */
	push $(SEL_UDATA | 3)
	push $user_stack_top
	push $0x0002
	push $(SEL_UCODE64 | 3)
	push $user
	iretq

gp_handler:
	cmp $MAGIC, %r15
	jne fault
	xor %r15d, %r15d
	push %rax
	push %rdx
	mov $COM1, %dx
	mov $'F', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	pop %rdx
	pop %rax
	add $8, %rsp			/* the error code */
	incq (%rsp)			/* past the 1-byte hlt */
	iretq

fault:
	mov $COM1, %dx
	mov $'E', %al
	out %al, %dx
4:	cli
	hlt
	jmp 4b

user:
	mov $FILL_BASE, %rdi
	mov $(FILL_MIB * 131072), %rcx	/* quadwords */
	mov $PATTERN, %rax
	rep stosq
	mov $MAGIC, %r15
	hlt				/* #GP: the handler prints "F\n" and returns past it */
5:	mov $FILL_BASE, %rsi
	mov $(FILL_MIB * 256), %rcx	/* 4 KiB pages */
6:	add (%rsi), %rax
	add $4096, %rsi
	dec %rcx
	jnz 6b
	jmp 5b

	.data
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08 code, 64-bit, DPL 0 */
	.quad 0x00cf92000000ffff	/* 0x10 data, DPL 0 */
	.quad 0x00cff2000000ffff	/* 0x18 data, DPL 3 */
	.quad 0x00affa000000ffff	/* 0x20 code, 64-bit, DPL 3 */
	.quad 0x0000890000000067	/* 0x28 TSS (64-bit, available), limit 103; base set above */
	.quad 0
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 16
idt_ptr:
	.word 32 * 16 - 1
	.quad idt
	.balign 16
tss:
	.fill 102, 1, 0			/* RSP0 at offset 4, set above */
	.word 104			/* I/O map base beyond the limit: no bitmap */

	.bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
idt:	.skip 4096
	.skip 4096
stack_top:
	.skip 4096
user_stack_top:
