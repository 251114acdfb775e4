/*
 * Decoder for the handful of x86 instructions the software-KVM module completes
 * itself. It recognises only those (anything else is INSN_UNKNOWN) and computes
 * ModRM/SIB effective addresses; it never touches guest state.
 */
#ifndef TERN_ARCH_X86_INSN_H
#define TERN_ARCH_X86_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum insn_op {
	INSN_UNKNOWN,
	INSN_INT3,
	INSN_UD2,
	INSN_FWAIT,
	INSN_STAC,
	INSN_CLAC,
	INSN_SWAPGS,
	INSN_SYSRET,
	INSN_IRET,
	INSN_POPCNT,
	INSN_RDRAND,
	INSN_RDSEED,
	INSN_RDFSBASE,
	INSN_RDGSBASE,
	INSN_WRFSBASE,
	INSN_WRGSBASE,
	INSN_LDMXCSR,
	INSN_STMXCSR,
	INSN_LAR,
	INSN_LSL,
	INSN_COUNT
};

/* GPR numbering as in the encoding: 0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8..15 r8..r15. */
struct insn {
	enum insn_op op;
	unsigned int len;    /* bytes, prefixes included */
	unsigned int opsize; /* 2, 4 or 8 */
	bool rex_w;
	int seg;	  /* segment override: -1 none, else 0 es,1 cs,2 ss,3 ds,4 fs,5 gs */
	bool mod_reg;	  /* ModRM names a register (mod == 3) */
	unsigned int reg; /* ModRM reg field (with REX.R) */
	unsigned int rm;  /* ModRM rm register (with REX.B) when mod_reg */
	/* memory operand when !mod_reg */
	int base, index; /* -1 when absent */
	unsigned int scale;
	int64_t disp;
	bool rip_rel;
	bool addr32;
};

/* Decodes from b[0..n); long64 = 64-bit code segment. Returns 0, or -EINVAL if truncated/unknown. */
int insn_decode(const uint8_t *b, size_t n, bool long64, struct insn *in);
/* Effective address of the memory operand (without segment base). */
uint64_t insn_ea(const struct insn *in, const uint64_t gpr[16], uint64_t next_rip);
const char *insn_name(enum insn_op op);

#endif
