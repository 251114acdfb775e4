/*
 * Smallest guest both tern-vmm and QEMU microvm boot the same way: a PVH ELF
 * (Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY), entered in 32-bit protected mode.
 * It writes 0 to the debug-exit port 0x501 at once; built with -DSTAY it halts
 * forever instead (interrupts stay off), for measuring a VMM that is idle.
 * The instructions encode the same in 32- and 64-bit mode.
 */
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
#ifndef STAY
	mov $0x501, %dx
	mov $0, %al
	out %al, %dx
#endif
1:	hlt
	jmp 1b
