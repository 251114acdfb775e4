/*
 * The runtime's GDT selectors (cpu.c), shared by C and assembly. The kernel ones
 * match tern's boot GDT (CS 0x10, DS 0x18); the user ones follow the order SYSRET
 * expects from STAR[63:48] = SEL_UCODE32 (32-bit code, data, 64-bit code).
 */
#ifndef TINY_SEGMENTS_H
#define TINY_SEGMENTS_H

#define SEL_KCODE32 0x08 /* the AP trampoline's 32-bit step */
#define SEL_KCODE 0x10
#define SEL_KDATA 0x18
#define SEL_UCODE32 0x20
#define SEL_UDATA 0x28
#define SEL_UCODE 0x30
#define SEL_TSS 0x38 /* two slots */

#endif
